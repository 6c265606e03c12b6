"""``python3 -m mlspec.serving``: verify the artifact, load it, serve it."""

from __future__ import annotations

import json
import sys

from . import config, model, secretfiles
from .logs import log


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = config.load(argv)
    except config.ConfigError as e:
        log("error", f"configuration: {e}")
        return 2
    try:
        secretfiles.wait()  # files mlspec writes after the start: before anything reads them
    except secretfiles.SecretsMissing as e:
        log("error", f"refusing to start: {e}")
        return 1
    try:
        loaded = model.load(cfg.artifact, cfg.sha256, cfg.framework, cfg.features)
    except model.ArtifactError as e:
        log("error", f"refusing to start: {e}")
        return 1
    if cfg.check_only:
        from .protocol import model_metadata

        print(json.dumps(model_metadata(cfg.model, cfg.version, loaded)))
        return 0
    from .process import serve  # after the checks: a bad artifact never opens a port

    return serve(cfg, loaded)


if __name__ == "__main__":
    sys.exit(main())
