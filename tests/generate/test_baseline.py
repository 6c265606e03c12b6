"""Baseline math: deciles, bucket fractions, the epsilon floor, determinism, and PSI."""

from __future__ import annotations

import math

import pytest

from mlspec.generate import baseline as B


def csv_bytes(header, rows) -> bytes:
    return ("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n").encode()


def test_deciles_of_1_to_100_are_the_tens():
    assert B.edges_of([float(i) for i in range(1, 101)]) == [10, 20, 30, 40, 50, 60, 70, 80, 90]


def test_edges_are_rounded_and_deduplicated():
    assert B.edges_of([0.0] * 50 + [1.0] * 50) == [0.0, 1.0]
    assert B.edges_of([1.23456789] * 10) == [1.235]


def test_fractions_follow_le_semantics_and_the_floor():
    # 1 <= 1 (first bucket), 2 in (1, 2], 3 above the last edge; no value <= 0.5 at all.
    assert B.fractions_of([1.0, 2.0, 3.0, 3.0], [0.5, 1.0, 2.0]) == [B.EPSILON, 0.25, 0.25, 0.5]


def test_dataset_baseline_features_classes_and_skips():
    header = ["a", "b c", "city", "label"] + [f"f{i}" for i in range(25)]
    rows = [[i, i % 2, "x", i % 3] + [0] * 25 for i in range(30)]
    got = B.compute(csv_bytes(header, rows), "label")
    names = [f["name"] for f in got["features"]]
    assert names[:2] == ["a", "col1"]  # 'b c' cannot be a label value in a matcher as it is
    assert len(names) == B.MAX_FEATURES
    assert {s["reason"] for s in got["skipped"]} == {f"over {B.MAX_FEATURES} features"}
    assert got["features"][1]["index"] == 1 and got["features"][2]["index"] == 2  # model input order
    assert got["features"][2] == {"name": "city", "index": 2, "kind": "categorical", "categories": ["x"],
                                  "fractions": [1.0, B.EPSILON]}
    assert got["prediction"] == {"kind": "class", "classes": ["0", "1", "2"], "fractions": [0.333333] * 3}
    assert B.to_json(got) == B.to_json(B.compute(csv_bytes(header, rows), "label"))


def test_ignored_columns_are_not_features_and_do_not_shift_the_input_order():
    got = B.compute(csv_bytes(["id", "a", "label", "b"], [[i, i, i % 2, -i] for i in range(10)]), "label", ("id",))
    assert [(f["name"], f["index"]) for f in got["features"]] == [("a", 0), ("b", 1)]


def test_numeric_labels_with_many_values_are_a_regression_target():
    rows = [[i, i / 7] for i in range(100)]
    got = B.compute(csv_bytes(["x", "y"], rows), "y")
    assert got["prediction"]["kind"] == "numeric"
    assert len(got["prediction"]["edges"]) == 9


def test_a_missing_label_column_is_an_error():
    with pytest.raises(B.BaselineError, match="no column 'label'"):
        B.compute(csv_bytes(["x", "y"], [[1, 2]]), "label")


def test_psi_is_zero_on_the_baseline_and_grows_with_a_shift():
    expected = [0.1] * 10
    assert B.psi(expected, [10] * 10) == 0
    shifted = B.psi(expected, [0] * 5 + [20] * 5)
    # Five buckets at 0.2 (0.1 * ln 2 each), five empty ones floored at EPSILON.
    want = 5 * 0.1 * math.log(2) + 5 * (B.EPSILON - 0.1) * math.log(B.EPSILON / 0.1)
    assert shifted == pytest.approx(want)
    assert shifted > 0.25  # the usual "significant shift" line


def test_a_text_column_is_categorical_with_its_top_categories_and_other():
    cities = ["ams"] * 40 + ["ber"] * 30 + [f"c{i:02d}" for i in range(25)] + ['say "hi"'] * 3 + [""] * 2
    got = B.compute(csv_bytes(["city", "label"], [[c, i % 2] for i, c in enumerate(cities)]), "label")
    [f] = got["features"]
    assert f["kind"] == "categorical" and len(f["categories"]) == B.MAX_CATEGORIES
    assert f["categories"][:2] == ["ams", "ber"] and 'say "hi"' not in f["categories"] and "" not in f["categories"]
    # 40 + 30 + 18 singletons listed; 7 singletons, 3 quoted and 2 empty values are "other".
    assert f["fractions"][:2] == [0.4, 0.3] and f["fractions"][-1] == 0.12
    assert len(f["fractions"]) == B.MAX_CATEGORIES + 1 and math.isclose(sum(f["fractions"]), 1.0)
    # Live rows all in a category the baseline never had: all "other", a large index.
    live = [0] * B.MAX_CATEGORIES + [100]
    assert B.psi(f["fractions"], live) > 1
