"""Sum the /metrics texts of several worker processes into one, exactly.

Each worker keeps its own registry, collectors included (the model-quality histograms have
buckets per label set that prometheus_client's multiprocess files cannot hold), and a scrape
answers with the merge of every worker's text: counters, histograms and summaries add up
sample by sample; a gauge adds up too (memory, open files) unless its meaning says otherwise.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

# Gauges that do not add up across workers of one server.
GAUGE_MIN = {"mlspec_model_ready", "process_start_time_seconds"}  # ready only when all are
GAUGE_MAX = {"mlspec_model_info", "process_max_fds"}


def _combine(kind: str, name: str, old: float, new: float) -> float:
    if kind == "gauge" and name in GAUGE_MIN:
        return min(old, new)
    if kind == "gauge" and name in GAUGE_MAX:
        return max(old, new)
    return old + new


class _Merged:
    """A collector yielding already-merged families, in the order they were first seen."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self):
        return iter(self.families)


def merge(texts: list[str]) -> bytes:
    """One exposition text holding the sum of ``texts`` (Prometheus text format 0.0.4)."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple, Sample]] = {}
    for text in texts:
        for fam in text_string_to_metric_families(text):
            if fam.name not in families:
                families[fam.name] = Metric(fam.name, fam.documentation, fam.type, fam.unit)
                values[fam.name] = {}
            seen = values[fam.name]
            for s in fam.samples:
                key = (s.name, tuple(sorted(s.labels.items())))
                old = seen.get(key)
                seen[key] = s if old is None else old._replace(
                    value=_combine(fam.type, fam.name, old.value, s.value))
    for name, fam in families.items():
        fam.samples = list(values[name].values())
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(list(families.values())))
    return generate_latest(registry)
