"""Server configuration: environment variables, optionally overridden by command-line flags."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

FRAMEWORKS = ("sklearn", "onnx")
_EXTENSIONS = {".joblib": "sklearn", ".pkl": "sklearn", ".pickle": "sklearn", ".onnx": "onnx"}


class ConfigError(Exception):
    """The server was started with a configuration it cannot run with."""


@dataclass(frozen=True)
class Config:
    model: str
    version: str
    artifact: str
    sha256: str
    framework: str
    host: str = "0.0.0.0"
    port: int = 8080
    features: tuple[str, ...] = ()
    max_body: int = 16 * 1024 * 1024
    drain_seconds: float = 10.0
    fail_rate: float = 0.0  # chaos hook: fraction of infer calls answered 500
    fail_ready: bool = False  # chaos hook: never become ready (a broken version)
    test_delay: float = 0.0  # test hook: sleep inside every infer call
    check_only: bool = False  # verify and load the artifact, then exit
    baseline: str = ""  # the version's baseline.json (feature buckets, class mix); "" = none
    workers: int = 0  # worker processes; 0 = one per CPU the container may use
    grpc_port: int | None = None  # the gRPC service's port; None = no gRPC, 0 = any free port


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python3 -m mlspec.serving",
        description="Open Inference Protocol v2 server for one model artifact. "
        "Every flag defaults to its MLSPEC_* environment variable.",
    )
    p.add_argument("--model", help="model name (MLSPEC_MODEL)")
    p.add_argument("--model-version", dest="version", help="model version (MLSPEC_VERSION)")
    p.add_argument("--artifact", help="artifact path (MLSPEC_ARTIFACT)")
    p.add_argument("--sha256", help="expected artifact sha256 (MLSPEC_ARTIFACT_SHA256)")
    p.add_argument("--framework", choices=FRAMEWORKS, help="MLSPEC_FRAMEWORK")
    p.add_argument("--host", help="listen address (MLSPEC_HOST, default 0.0.0.0)")
    p.add_argument("--port", help="listen port (MLSPEC_PORT, default 8080)")
    p.add_argument("--check", action="store_true",
                   help="verify the sha256, load the model, print its metadata and exit")
    return p


def _number(env: Mapping[str, str], key: str, default: float, lo: float, hi: float) -> float:
    raw = env.get(key, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key}={raw!r} is not a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{key}={raw!r} must be between {lo:g} and {hi:g}")
    return value


def load(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> Config:
    """Build the configuration; raise ConfigError naming the first missing or bad setting."""
    env = os.environ if env is None else env
    args = _parser().parse_args(argv)

    def pick(flag: str | None, key: str) -> str:
        return (flag if flag is not None else env.get(key, "")).strip()

    required = {
        "MLSPEC_MODEL": pick(args.model, "MLSPEC_MODEL"),
        "MLSPEC_VERSION": pick(args.version, "MLSPEC_VERSION"),
        "MLSPEC_ARTIFACT": pick(args.artifact, "MLSPEC_ARTIFACT"),
        "MLSPEC_ARTIFACT_SHA256": pick(args.sha256, "MLSPEC_ARTIFACT_SHA256").lower(),
    }
    missing = [k for k, v in required.items() if not v]
    if missing:
        raise ConfigError(f"missing required setting(s): {', '.join(missing)}")
    sha = required["MLSPEC_ARTIFACT_SHA256"]
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise ConfigError("MLSPEC_ARTIFACT_SHA256 must be 64 hexadecimal characters")

    artifact = required["MLSPEC_ARTIFACT"]
    framework = pick(args.framework, "MLSPEC_FRAMEWORK").lower()
    if not framework:
        framework = _EXTENSIONS.get(os.path.splitext(artifact)[1].lower(), "")
        if not framework:
            raise ConfigError(f"cannot tell the framework of {artifact!r} from its extension; "
                              f"set MLSPEC_FRAMEWORK to one of {', '.join(FRAMEWORKS)}")
    elif framework not in FRAMEWORKS:
        raise ConfigError(f"MLSPEC_FRAMEWORK={framework!r} must be one of {', '.join(FRAMEWORKS)}")

    port_env = dict(env, MLSPEC_PORT=pick(args.port, "MLSPEC_PORT"))
    if port_env["MLSPEC_PORT"] and not port_env["MLSPEC_PORT"].isdigit():
        raise ConfigError(f"MLSPEC_PORT={port_env['MLSPEC_PORT']!r} is not a port number")
    grpc = env.get("MLSPEC_GRPC_PORT", "").strip()
    if grpc and not grpc.isdigit():
        raise ConfigError(f"MLSPEC_GRPC_PORT={grpc!r} is not a port number")
    features = tuple(f.strip() for f in env.get("MLSPEC_FEATURES", "").split(",") if f.strip())
    return Config(
        model=required["MLSPEC_MODEL"],
        version=required["MLSPEC_VERSION"],
        artifact=artifact,
        sha256=sha,
        framework=framework,
        host=pick(args.host, "MLSPEC_HOST") or "0.0.0.0",
        port=int(_number(port_env, "MLSPEC_PORT", 8080, 0, 65535)),
        features=features,
        max_body=int(_number(env, "MLSPEC_MAX_BODY", 16 * 1024 * 1024, 1, 2**40)),
        drain_seconds=_number(env, "MLSPEC_DRAIN_SECONDS", 10.0, 0, 3600),
        fail_rate=_number(env, "MLSPEC_FAIL_RATE", 0.0, 0, 1),
        fail_ready=env.get("MLSPEC_FAIL_READY", "").strip().lower() in ("1", "true", "yes"),
        test_delay=_number(env, "MLSPEC_TEST_DELAY_SECONDS", 0.0, 0, 3600),
        check_only=args.check,
        baseline=env.get("MLSPEC_BASELINE", "").strip(),
        workers=int(_number(env, "MLSPEC_WORKERS", 0, 0, 64)),
        grpc_port=int(_number(env, "MLSPEC_GRPC_PORT", 0, 0, 65535)) if grpc else None,
    )
