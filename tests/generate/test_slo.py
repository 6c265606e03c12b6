"""Burn-rate windows and thresholds: the SRE workbook's table for 30 days, scaled for other windows,
thresholds as exact decimals."""

from __future__ import annotations

from decimal import Decimal

import pytest

from mlspec.generate.slo import budget, burn_windows, ratio_windows
from mlspec.spec.model import Slo


def rows(availability: str, window: str, scrape: str = "15s"):
    return [(w.severity, w.long, w.short, w.factor, w.threshold, w.long_seconds)
            for w in burn_windows(Slo(availability, window), scrape)]


def test_a_30_day_slo_gets_the_workbook_table():
    assert rows("99.5", "30d") == [
        ("page", "1h", "5m", "14.4", "0.072", 3600),
        ("page", "6h", "30m", "6", "0.03", 21600),
        ("ticket", "3d", "6h", "1", "0.005", 259200),
    ]
    assert ratio_windows(Slo("99.5", "30d"), "15s") == ("5m", "30m", "1h", "6h", "3d", "30d")


def test_other_windows_scale_every_row_and_keep_the_factors():
    # 7/30 of each workbook window; 5m x 7/30 = 70s is raised to 4 scrapes of 30s.
    assert rows("99.9", "7d", "30s") == [
        ("page", "14m", "2m", "14.4", "0.0144", 840),
        ("page", "1h24m", "7m", "6", "0.006", 5040),
        ("ticket", "16h48m", "1h24m", "1", "0.001", 60480),
    ]
    # With a 15s scrape the short page window is the scaled 70s.
    assert rows("99.9", "7d")[0][2] == "1m10s"


@pytest.mark.parametrize("availability, page, ticket", [
    ("99.5", "0.072", "0.005"), ("99.9", "0.0144", "0.001"), ("99.99", "0.00144", "0.0001"),
    ("99.95", "0.0072", "0.0005"), ("97", "0.432", "0.03"),
])
def test_thresholds_are_exact_decimals(availability, page, ticket):
    windows = burn_windows(Slo(availability, "30d"), "15s")
    assert (windows[0].threshold, windows[2].threshold) == (page, ticket)
    assert budget(Slo(availability, "30d")) * 100 + Decimal(availability) == 100
