"""``mlspec gc [--keep N] [--yes]``: remove images of versions no spec deploys, beyond the last N
of each model, from the build engine, every docker target's engine and the registry; never one a
container uses. A dry run unless ``--yes``: it lists what would go first, as destroy asks first. ``--all`` (after
``mlspec destroy``) removes every image of the project no container uses, deployed versions too.
"""

from __future__ import annotations

from pathlib import Path
from typing import TextIO

from mlspec.apply import gc
from mlspec.state.docker_reader import ClientFactory, client_for


def _engines(spec, factory: ClientFactory) -> dict[str, object]:
    """Each distinct engine once: the build engine and the docker targets' (a target may be it)."""
    from mlspec.apply.wiring import Engines

    engines = Engines(spec, factory)
    out, seen = {}, set()
    for name in [None, *(t.name for t in spec.project.targets if t.type == "docker")]:
        client = engines.client(name)
        ident = client.info().get("ID")
        if ident not in seen:
            seen.add(ident)
            out[name or "local"] = client
    return out


def run_gc(root, out: TextIO, *, keep: int = 3, yes: bool = False, everything: bool = False,
           factory: ClientFactory = client_for) -> int:
    from mlspec.commands.plan import load

    spec, _ = load(Path(root))
    engines = _engines(spec, factory)
    found: list[tuple[object, gc.Image]] = []
    for where, client in engines.items():
        found += [(client, i) for i in gc.engine_images(client, spec.project.name, where)]
    reg = None
    if spec.project.registry:
        reg, images = gc.registry_images(spec)
        found += [(reg, i) for i in images]
    doomed = gc.removable([i for _, i in found], spec, 0 if everything else keep, everything)
    in_use = sorted({i.ref for _, i in found if i.in_use})
    if not doomed:
        out.write(f"Nothing to remove: every image is deployed, among the last {keep} versions or in use.\n")
        return 0
    for i in doomed:
        out.write(f"  - {i.ref} ({i.model}@{i.version}, {i.where})\n")
    for ref in in_use:
        out.write(f"  kept (a container uses it): {ref}\n")
    if not yes:
        out.write(f"\n{len(doomed)} image(s) would be removed. Run again with --yes to remove them.\n")
        return 0
    by_ref = {id(i): owner for owner, i in found}
    for i in doomed:
        owner = by_ref[id(i)]
        if i.where == "registry":
            gc.remove_from_registry(owner, i)
        else:
            gc.remove_from_engine(owner, i)
        out.write(f"removed {i.ref}\n")
    out.write(f"\n{len(doomed)} image(s) removed.\n")
    return 0
