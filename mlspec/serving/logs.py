"""One JSON object per line on stdout (errors on stderr), so container logs stay parseable."""

from __future__ import annotations

import json
import sys
import threading
import time

_lock = threading.Lock()


def log(level: str, msg: str, **fields) -> None:
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    line = json.dumps({"ts": stamp, "level": level, "msg": msg, **fields}, default=str)
    stream = sys.stderr if level == "error" else sys.stdout
    with _lock:  # one write per line, so lines from handler threads never interleave
        stream.write(line + "\n")
        stream.flush()
