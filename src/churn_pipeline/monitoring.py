"""A model's baseline in SageMaker Model Monitor's open formats: ``statistics.json`` and
``constraints.json`` of the data it was trained on (row MONITOR-FORMATS).

Model Monitor is no longer open to new AWS customers, but its file formats are
documented and read by other tools; the pipeline writes them so a monitor (its
own, or Model Monitor where an account still has it) compares new customers
with the training split. The numbers come from the ETL job (Spark); this module
only shapes them, so the documents are the same whoever computed the figures.
"""

from __future__ import annotations

import bisect
from typing import Any

from .errors import PipelineError

#: "By default, the distribution is materialized in 10 buckets" (statistics.json)
BUCKETS = 10
#: the percentiles each numeric column's sketch keeps (0, 1, ..., 100)
SKETCH_QUANTILES = [i / 100 for i in range(101)]
#: a categorical column keeps its domain in constraints.json up to this many distinct values
DOMAIN_LIMIT = 1000
#: Model Monitor's documented defaults
MONITORING_CONFIG = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 0.1,
    "domain_content_threshold": 0.1,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
}
NUMERIC_TYPES = ("Integral", "Fractional")


def buckets_from_quantiles(quantiles: list[float], count: int, low: float, high: float) -> list[dict[str, float]]:
    """``BUCKETS`` equal-width buckets from ``low`` to ``high`` with the rows each holds, estimated from
    the column's percentiles (as a KLL sketch's buckets are estimated from the sketch)."""
    if count == 0:
        return []
    if high <= low:
        return [{"lower_bound": low, "upper_bound": high, "count": float(count)}]
    width = (high - low) / BUCKETS
    edges = [low + i * width for i in range(BUCKETS)] + [high]
    below = [round(_share_below(quantiles, edge) * count) for edge in edges]  # whole rows, summing to count
    below[0], below[-1] = 0, count
    return [
        {"lower_bound": edges[i], "upper_bound": edges[i + 1], "count": below[i + 1] - below[i]} for i in range(BUCKETS)
    ]


def _share_below(quantiles: list[float], value: float) -> float:
    """The share of rows below ``value``, interpolated between the percentiles around it."""
    if value <= quantiles[0]:
        return 0.0
    if value >= quantiles[-1]:
        return 1.0
    step = 1 / (len(quantiles) - 1)
    right = bisect.bisect_right(quantiles, value)
    left = right - 1
    span = quantiles[right] - quantiles[left]
    within = 0.0 if span == 0 else (value - quantiles[left]) / span
    return (left + within) * step


def numeric_feature(name: str, figures: dict[str, Any]) -> dict[str, Any]:
    """One numeric column's entry: ``figures`` has present, missing, sum, mean, std_dev, min, max,
    integral (every value a whole number) and quantiles (``SKETCH_QUANTILES``)."""
    present = int(figures["present"])
    statistics: dict[str, Any] = {"common": {"num_present": present, "num_missing": int(figures["missing"])}}
    if present:
        statistics.update(
            mean=figures["mean"],
            sum=figures["sum"],
            std_dev=figures["std_dev"],
            min=figures["min"],
            max=figures["max"],
            distribution={
                "kll": {
                    "buckets": buckets_from_quantiles(figures["quantiles"], present, figures["min"], figures["max"]),
                    # one level: the column's percentiles (Spark's percentile_approx), not Deequ's compactors
                    "sketch": {"parameters": {"c": 0.64, "k": 2048.0}, "data": [list(figures["quantiles"])]},
                }
            },
        )
    inferred = "Integral" if figures["integral"] else "Fractional"
    return {"name": name, "inferred_type": inferred, "numerical_statistics": statistics}


def string_feature(name: str, present: int, missing: int, counts: dict[str, int]) -> dict[str, Any]:
    """One categorical column's entry: its values and how often each occurs."""
    buckets = [{"value": value, "count": counts[value]} for value in sorted(counts)]
    return {
        "name": name,
        "inferred_type": "String",
        "string_statistics": {
            "common": {"num_present": present, "num_missing": missing},
            "distinct_count": float(len(counts)),
            "distribution": {"categorical": {"buckets": buckets}},
        },
    }


def statistics_document(item_count: int, features: list[dict[str, Any]]) -> dict[str, Any]:
    return {"version": 0.0, "dataset": {"item_count": item_count}, "features": features}


def constraints_document(statistics: dict[str, Any]) -> dict[str, Any]:
    """What new data must keep, suggested from the baseline's statistics as Model Monitor suggests them:
    each column's type and completeness, non-negativity, and a small categorical column's domain."""
    items = statistics["dataset"]["item_count"]
    constraints = []
    for feature in statistics["features"]:
        kind = "numerical_statistics" if feature["inferred_type"] in NUMERIC_TYPES else "string_statistics"
        common = feature[kind]["common"]
        entry: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": common["num_present"] / items if items else 0.0,
        }
        if kind == "numerical_statistics":
            entry["num_constraints"] = {"is_non_negative": common["num_present"] > 0 and feature[kind]["min"] >= 0}
        else:
            values = [bucket["value"] for bucket in feature[kind]["distribution"]["categorical"]["buckets"]]
            if len(values) <= DOMAIN_LIMIT:
                entry["string_constraints"] = {"domains": values}
        constraints.append(entry)
    return {"version": 0.0, "features": constraints, "monitoring_config": MONITORING_CONFIG}


def check_statistics(document: dict[str, Any], where: str) -> dict[str, Any]:
    """``document`` as statistics.json must be (the fields Model Monitor documents), or a clear error."""
    try:
        if not isinstance(document["dataset"]["item_count"], int):
            raise TypeError("dataset.item_count is not an integer")
        for feature in document["features"]:
            kind = "numerical_statistics" if feature["inferred_type"] in NUMERIC_TYPES else "string_statistics"
            if feature["inferred_type"] not in (*NUMERIC_TYPES, "String"):
                raise ValueError(f"{feature['name']}: inferred_type {feature['inferred_type']!r}")
            common = feature[kind]["common"]
            if not all(isinstance(common[key], int) for key in ("num_present", "num_missing")):
                raise TypeError(f"{feature['name']}: num_present and num_missing must be integers")
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"{where} is not a Model Monitor statistics.json: {exc}") from None
    return document
