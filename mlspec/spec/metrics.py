"""The built-in evaluation metrics and which way each one is better.

The figures are computed inside the serving image (``mlspec.serving.evaluate``); the host only
judges them, so a ``<=`` gate and a ``no_regression`` allowance read the right way for a metric
where lower is better (an error, a loss).
"""

from __future__ import annotations

CLASSIFICATION = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
REGRESSION = ("rmse", "mae", "r2", "mape")
BUILTIN = CLASSIFICATION + REGRESSION
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae", "mape"})
AVERAGES = ("binary", "micro", "macro", "weighted")


def higher_is_better(metric: str, custom: dict[str, bool] | None = None) -> bool:
    """Built-in metrics know their direction; a custom one says it in the spec."""
    if custom and metric in custom:
        return custom[metric]
    return metric not in LOWER_IS_BETTER
