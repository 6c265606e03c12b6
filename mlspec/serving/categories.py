"""Categorical input features (text columns), counted by category for drift (DESIGN.md §6).

``mlspec_feature_category_total{model,version,feature,category}``: one counter per category the
baseline lists for the feature (its most frequent values in the evaluation dataset, at most 20;
mlspec/generate/baseline.py) and ``OTHER``, which counts every value the baseline does not list,
so cardinality stays bounded and a category never seen in the dataset shows up as drift. Every
counter exists from the start at 0, so a category that stops arriving has a share of 0.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter

OTHER = "(other)"  # mlspec.generate.baseline.OTHER


class Categories:
    def __init__(self, ids: tuple[str, str], features: list[dict], registry: CollectorRegistry):
        self._features = []  # (name, column index, {category: counter}, other counter)
        if not features:
            return
        counter = Counter("mlspec_feature_category", "Input rows by category of a categorical feature.",
                          ("model", "version", "feature", "category"), registry=registry)
        for f in features:
            known = {c: counter.labels(*ids, f["name"], c) for c in f["categories"]}
            self._features.append((f["name"], int(f["index"]), known, counter.labels(*ids, f["name"], OTHER)))

    def observe(self, x: Any) -> None:
        """Count the categories of one batch: a DataFrame (by column name) or a 2-D array (by index)."""
        for name, index, known, other in self._features:
            columns = getattr(x, "columns", None)
            if columns is not None and name in columns:
                column = x[name].to_numpy()
            else:
                array = np.asarray(x)
                if array.ndim != 2 or index >= array.shape[1]:
                    continue
                column = array[:, index]
            values, counts = np.unique(np.asarray(column, dtype=object).astype(str), return_counts=True)
            for value, n in zip(values.tolist(), counts.tolist()):
                known.get(value, other).inc(n)
