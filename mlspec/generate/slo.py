"""SLO burn-rate alerts after the SRE workbook (chapter 5, "Alerting on SLOs"), multi-window, multi-burn-rate.

The workbook's table is for a 30-day SLO: page when 2% of the budget burns in 1h (14.4x, checked
again over 5m so the alert resets soon after the burn stops) or 5% in 6h (6x, with 30m); open a
ticket when 10% burns in 3d (1x, with 6h). For another SLO window the alert windows are scaled by
window / 30d, so each row still means the same share of the budget (as Pyrra does); the burn
factors, and so the thresholds, stay the workbook's. Thresholds are exact decimals:
14.4 x (1 - 99.5/100) is printed 0.072, never 0.07200000000000001.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

from mlspec.generate.common import decimal_text, duration_text
from mlspec.spec.model import Slo
from mlspec.spec.units import duration_seconds

BASE_WINDOW = 30 * 86400
# (severity, long window s, short window s, burn factor) for a 30-day SLO.
WORKBOOK = (
    ("page", 3600, 300, "14.4"),
    ("page", 6 * 3600, 1800, "6"),
    ("ticket", 3 * 86400, 6 * 3600, "1"),
)
FOR = {"page": "2m", "ticket": "15m"}


@dataclass(frozen=True)
class BurnWindow:
    severity: str
    long: str  # Prometheus duration text, e.g. '1h'
    short: str
    long_seconds: int
    factor: str
    threshold: str  # error ratio, exact decimal text


def budget(slo: Slo) -> Decimal:
    """The error budget as a ratio: availability 99.5 -> 0.005."""
    return 1 - Decimal(slo.availability) / 100


def _scaled(seconds: int, window: int, floor: int) -> int:
    return max(floor, round(Fraction(seconds) * Fraction(window, BASE_WINDOW)))


def burn_windows(slo: Slo, scrape_interval: str) -> tuple[BurnWindow, ...]:
    # A rate needs a few scrapes in its range: never go below 1m or 4 scrape intervals.
    floor = max(60, int(4 * duration_seconds(scrape_interval)))
    window = int(duration_seconds(slo.window))
    out = []
    for severity, long_s, short_s, factor in WORKBOOK:
        long_s, short_s = _scaled(long_s, window, floor), _scaled(short_s, window, floor)
        threshold = decimal_text(Decimal(factor) * budget(slo))
        out.append(BurnWindow(severity, duration_text(long_s), duration_text(short_s), long_s, factor, threshold))
    return tuple(out)


def ratio_windows(slo: Slo, scrape_interval: str) -> tuple[str, ...]:
    """Every window an error ratio is recorded over: the alert windows and the SLO window itself."""
    seen: dict[int, str] = {}
    for w in burn_windows(slo, scrape_interval):
        seen[int(duration_seconds(w.long))] = w.long
        seen[int(duration_seconds(w.short))] = w.short
    seen[int(duration_seconds(slo.window))] = duration_text(int(duration_seconds(slo.window)))
    return tuple(seen[k] for k in sorted(seen))
