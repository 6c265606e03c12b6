"""The labels every object mlspec creates carries (DESIGN.md §3): state is read back by them."""

PREFIX = "io.mlspec."
PROJECT = PREFIX + "project"
MODEL = PREFIX + "model"
VERSION = PREFIX + "version"
TARGET = PREFIX + "target"
DEPLOYMENT = PREFIX + "deployment"
CONFIG_HASH = PREFIX + "config-hash"
BUILD_HASH = PREFIX + "build-hash"
COMMIT = PREFIX + "commit"
ROLE = PREFIX + "role"  # 'model' for serving containers, 'proxy' for the per-deployment front

ALL = (PROJECT, MODEL, VERSION, TARGET, DEPLOYMENT, CONFIG_HASH, BUILD_HASH, COMMIT)
