"""Wait for the secret files mlspec writes after the container started (bounded).

On a ``type: docker`` target the files under /run/secrets are written through an exec right after
the start, and ``MLSPEC_SECRETS_READY`` names a marker written last; the model must not read a
``*_FILE`` before it exists. On swarm (Docker secrets) the files exist at start and no marker is set.
"""

from __future__ import annotations

import os
import time
from typing import Callable, Mapping

DEFAULT_TIMEOUT = 60.0
POLL = 0.05


class SecretsMissing(Exception):
    """The marker did not appear in time: the files will not come (e.g. the engine restarted us)."""


def wait(env: Mapping[str, str] | None = None, exists: Callable[[str], bool] = os.path.exists,
         clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> bool:
    """True once the marker exists (False when no marker is expected); SecretsMissing after the bound."""
    env = os.environ if env is None else env
    marker = env.get("MLSPEC_SECRETS_READY", "").strip()
    if not marker:
        return False
    try:
        timeout = float(env.get("MLSPEC_SECRETS_TIMEOUT", "") or DEFAULT_TIMEOUT)
    except ValueError:
        timeout = DEFAULT_TIMEOUT
    deadline = clock() + timeout
    while not exists(marker):
        if clock() >= deadline:
            raise SecretsMissing(f"the secret files did not arrive within {timeout:g} s ({marker} is "
                                 "missing); a container the engine restarted has lost them: run "
                                 "`mlspec apply`, which replaces it")
        sleep(POLL)
    return True
