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
# The container configuration the config hash was computed from (canonical JSON of
# mlspec.plan.hashing.container_config: secrets by reference only). The planner diffs it attribute
# by attribute against the spec, and checks the live container against it to find drift.
CONFIG = PREFIX + "config"
# 'true' when the deployment was prevent_destroy when its containers were made: a deployment that
# has left the spec has lost its spec setting, so pruning honours this label instead.
PREVENT_DESTROY = PREFIX + "prevent-destroy"
# The replica count the container was made for: with it, fewer containers than the spec asks
# for reads as "removed outside mlspec" when the spec did not change since (issue 3 drift).
REPLICAS = PREFIX + "replicas"
# 'model' for serving containers; on docker targets 'front' and 'pod' for the target's shared front
# and network namespace (mlspec/apply/infra.py); on swarm targets 'proxy' for a deployment's front.
ROLE = PREFIX + "role"
# The port a model container listens on inside its target's pod (docker targets): the front's
# routing table names backends by it.
SERVING_PORT = PREFIX + "serving-port"
INFRA_ROLES = ("front", "pod")

ALL = (PROJECT, MODEL, VERSION, TARGET, DEPLOYMENT, CONFIG_HASH, BUILD_HASH, COMMIT)
