"""A custom evaluation metric, run inside the serving image by the gates (evaluation.metrics).

Under-pricing a house costs the business more than over-pricing it: each unit of under-estimate
counts three times. Called with numpy arrays: y_true, y_pred, and proba (None for regressors).
"""


def business_cost(y_true, y_pred, proba):
    error = y_pred - y_true
    under = -error[error < 0].sum() * 3.0
    over = error[error > 0].sum()
    return float((under + over) / len(y_true))
