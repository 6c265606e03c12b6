"""One canary rollout on the swarm target in a process of its own, so a test can SIGKILL it in
the middle of a pause as a dying CI runner would (run by tests/swarm/test_swarm_canary.py):
``python canary_child.py '{"project", "base_image", "images", "port", "version", "prometheus"}'``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[2])]

import docker  # noqa: E402

from mlspec.apply.swarm_target import SwarmTarget  # noqa: E402
from mlspec.spec import load_spec  # noqa: E402
from tests.engine_helpers import QUICKSTART, with_project  # noqa: E402
from test_swarm_canary import TARGET, rollout  # noqa: E402


def main(args: dict) -> None:
    spec = with_project(load_spec(QUICKSTART), base_image=args["base_image"], name=args["project"])
    target = SwarmTarget(docker.from_env(), args["project"], TARGET, args["base_image"],
                         on_log=lambda line: print(line, flush=True), prometheus_url=args["prometheus"])
    images = {v: tuple(t) for v, t in args["images"].items()}
    target.deploy(rollout(spec, images, args["port"], args["version"], first_pause=args["pause"]))


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
