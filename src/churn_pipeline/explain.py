"""Why a customer is at risk: XGBoost's own SHAP contributions, per raw column.

``pred_contribs`` gives one contribution per model feature plus the bias, and
they add up to the row's margin (log-odds). A raw categorical column is one-hot
encoded into several features; its contribution is the sum of theirs, so a
reason names a column a person knows (``State``, not ``State_NJ``). A total
(``Total Charge``: the customer's bill) is a reason of its own, by its name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import features


def reason_columns(manifest: Mapping[str, Any]) -> list[str]:
    """The raw columns the model's features come from, in first-seen order (the feature itself for a
    total and for pre-encoded input)."""
    return list(dict.fromkeys(step.get("column", step["feature"]) for step in features.encoding_of(manifest)))


def column_matrix(manifest: Mapping[str, Any]) -> np.ndarray:
    """A 0/1 matrix (features x raw columns) that sums feature contributions into their raw column."""
    columns = reason_columns(manifest)
    index = {name: i for i, name in enumerate(columns)}
    encoding = features.encoding_of(manifest)
    matrix = np.zeros((len(encoding), len(columns)), dtype=np.float32)
    for row, step in enumerate(encoding):
        matrix[row, index[step.get("column", step["feature"])]] = 1.0
    return matrix


def contributions(booster, features: np.ndarray, manifest: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(per raw column contributions, bias) for each row, in log-odds; with the bias they add up to
    the row's margin."""
    import xgboost as xgb

    raw = booster.predict(xgb.DMatrix(features), pred_contribs=True, validate_features=False)
    return raw[:, :-1] @ column_matrix(manifest), raw[:, -1]


def top_columns(per_column: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(column positions, signed contributions) of each row's ``k`` largest contributions by size."""
    k = max(0, min(k, per_column.shape[1]))
    order = np.argsort(-np.abs(per_column), axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(per_column, order, axis=1)


def top_reasons(per_column: np.ndarray, columns: Sequence[str], k: int) -> list[list[dict[str, Any]]]:
    """The ``k`` columns with the largest contributions by size, signed (positive: towards churn)."""
    order, values = top_columns(per_column, k)
    return [
        [{"column": columns[j], "contribution": round(float(v), 6)} for j, v in zip(picked, row)]
        for picked, row in zip(order, values)
    ]


def mean_absolute(per_column: np.ndarray, columns: Sequence[str]) -> list[tuple[str, float]]:
    """Mean |contribution| per raw column over rows, largest first (the SHAP summary)."""
    means = np.abs(per_column).mean(axis=0) if len(per_column) else np.zeros(len(columns))
    return sorted(zip(columns, means.tolist()), key=lambda item: -item[1])
