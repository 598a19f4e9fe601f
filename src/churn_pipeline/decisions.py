"""What a model's scores become: a decision at a cutoff and the largest reasons, as the columns batch
scoring writes (on Spark and in the Batch Transform container alike)."""

from __future__ import annotations

from typing import Any

from . import explain
from .errors import PipelineError

#: decimals of the written score
SCORE_DECIMALS = 6


def output_columns(identifier: str, explain_count: int) -> list[str]:
    reasons = [name for i in range(1, explain_count + 1) for name in (f"reason_{i}", f"contribution_{i}")]
    return [identifier, "score", "decision", *reasons]


def _decimals(values):
    import numpy as np

    return np.char.mod(f"%.{SCORE_DECIMALS}f", values.astype(np.float64))


def decided(
    booster, matrix, manifest: dict[str, Any], cutoff: float, explain_count: int, per_column=None
) -> dict[str, Any]:
    """The output columns after the identifier, for a matrix of encoded rows: ``score`` (fixed
    decimals), ``decision`` (1 above ``cutoff``) and the reasons (from ``per_column``, the rows'
    contributions per raw column, when the caller has them already)."""
    import numpy as np

    scores = booster.inplace_predict(matrix, validate_features=False) if len(matrix) else np.zeros(0)
    scores = scores.astype(np.float64)  # compared as the endpoint and the evaluation compare them
    columns = {"score": _decimals(scores), "decision": (scores > cutoff).astype(np.int32)}
    if explain_count and len(matrix):
        names = np.asarray(explain.reason_columns(manifest), dtype=object)
        if per_column is None:
            per_column = explain.contributions(booster, matrix, manifest)[0]
        order, values = explain.top_columns(per_column, explain_count)
        for i in range(explain_count):
            columns[f"reason_{i + 1}"] = names[order[:, i]]
            columns[f"contribution_{i + 1}"] = _decimals(values[:, i])
    return columns


def check_explain_count(explain_count: int, manifest: dict[str, Any]) -> int:
    """``--explain K``: 0 (no reasons) up to the model's number of raw columns."""
    columns = len(explain.reason_columns(manifest))
    if not 0 <= explain_count <= columns:
        raise PipelineError(f"--explain must be between 0 and {columns} (the model's columns); got {explain_count}")
    return explain_count
