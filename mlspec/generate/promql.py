"""The PromQL check lives with the spec (it runs at load time, located); generators use the same one."""

from mlspec.spec.promql import promql_problems

__all__ = ["promql_problems"]
