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
import collections
import math
import re
from typing import Any

from .data import NUMBER_PATTERN
from .errors import PipelineError

_NUMBER = re.compile(NUMBER_PATTERN)

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


# --- drift: a window's counts against the baseline's ----------------------------------------------------
#: a numeric column drifts when its population stability index over the baseline's deciles exceeds this
#: (0.1-0.25: "some change", over 0.25 "major change", the usual reading); a categorical column when the
#: chi-squared test of homogeneity of its counts and the baseline's rejects at DRIFT_P_VALUE (Bonferroni over
#: the categorical columns checked)
PSI_THRESHOLD = 0.1
DRIFT_P_VALUE = 0.01
#: a share a window never saw is taken as this, so the index stays finite
PSI_FLOOR = 1e-4


def _percentiles(feature: dict[str, Any]) -> list[float]:
    return feature["numerical_statistics"]["distribution"]["kll"]["sketch"]["data"][0]


def deciles(feature: dict[str, Any]) -> list[float]:
    """The 9 inner decile edges of a numeric baseline column, from its percentile sketch."""
    return [_percentiles(feature)[10 * i] for i in range(1, 10)]


def expected_shares(feature: dict[str, Any]) -> list[float]:
    """The baseline's share in each decile interval: each of the 100 gaps between its percentiles holds
    1 % of its rows, counted where the window's rule puts a value in it (a tenth each for a continuous
    column; a whole-number column's tied gaps land where its values do)."""
    percentiles = _percentiles(feature)
    edges = deciles(feature)
    shares = [0.0] * 10
    for low, high in zip(percentiles, percentiles[1:]):
        where = low if low == high else (low + high) / 2  # a tied gap is that value's rows
        shares[decile_counts([where], edges).index(1)] += 1 / (len(percentiles) - 1)
    return shares


def decile_counts(values, edges: list[float]) -> list[int]:
    """How many ``values`` fall in each of the 10 intervals the edges cut (a value on an edge goes
    right), as a Spark job or numpy counts them."""
    import numpy as np

    return np.bincount(
        np.searchsorted(np.asarray(edges), np.asarray(values, dtype=float), side="right"), minlength=10
    ).tolist()


def population_stability(expected_shares: list[float], counts: list[int]) -> float:
    """PSI = sum((a - e) * ln(a / e)) over the intervals: ``counts`` (the window's) against the
    baseline's ``expected_shares``."""
    total = sum(counts)
    if total == 0:
        raise PipelineError("a window with no rows has no distribution to compare")
    index = 0.0
    for expected, count in zip(expected_shares, counts):
        actual = max(count / total, PSI_FLOOR)
        expected = max(expected, PSI_FLOOR)
        index += (actual - expected) * math.log(actual / expected)
    return index


def categorical_drift(feature: dict[str, Any], counts: dict[str, int]) -> dict[str, Any]:
    """The chi-squared test of homogeneity of the baseline's and the window's value counts (both are
    samples: the baseline's shares are not taken as exact), and the values the baseline never saw."""
    from scipy import stats

    buckets = feature["string_statistics"]["distribution"]["categorical"]["buckets"]
    known = {bucket["value"]: bucket["count"] for bucket in buckets}
    if sum(counts.values()) == 0:
        raise PipelineError("a window with no rows has no distribution to compare")
    values = sorted(set(known) | set(counts))
    table = [[known.get(value, 0) for value in values], [counts.get(value, 0) for value in values]]
    statistic, p_value, _, _ = stats.chi2_contingency(table, correction=False)
    unseen = sorted(value for value in counts if value not in known)
    return {"statistic": float(statistic), "p_value": float(p_value), "unseen_values": unseen}


def feature_drift(statistics: dict[str, Any], window: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column of the baseline: its drift measure and whether it drifted. ``window`` is a window's
    counts (``window_counts``): decile counts per numeric column, value counts per categorical one."""
    features = {feature["name"]: feature for feature in statistics["features"]}
    columns = window["columns"]
    missing = [name for name in features if name not in columns]
    if missing:
        raise PipelineError(f"the window has no counts for {', '.join(missing)}")
    p_value = DRIFT_P_VALUE / max(1, sum(1 for f in features.values() if f["inferred_type"] == "String"))
    report = {}
    for name, feature in features.items():
        if feature["inferred_type"] in NUMERIC_TYPES:
            psi = population_stability(expected_shares(feature), columns[name]["deciles"])
            report[name] = {"method": "psi", "value": psi, "threshold": PSI_THRESHOLD, "drifted": psi > PSI_THRESHOLD}
        else:
            test = categorical_drift(feature, columns[name]["values"])
            report[name] = {"method": "chi-squared", **test, "threshold": p_value, "drifted": test["p_value"] < p_value}
    return report


def window_counts(statistics: dict[str, Any], columns: dict[str, Any]) -> dict[str, Any]:
    """A window's counts, from its columns in memory (the monitor's Spark job gives the same counts for a
    window of any size): rows, and per column its present and missing values and, for a numeric one, the
    values that are not numbers of its type, the negative ones and its decile counts; for a categorical
    one, its value counts."""
    import numpy as np

    counts: dict[str, Any] = {}
    items = len(next(iter(columns.values())))
    for feature in statistics["features"]:
        text = [str(v).strip() for v in columns[feature["name"]]]
        present = [v for v in text if v]
        entry: dict[str, Any] = {"present": len(present), "missing": items - len(present)}
        if feature["inferred_type"] in NUMERIC_TYPES:
            numbers = np.array([_number(v) for v in present], dtype=float)
            valid = numbers[~np.isnan(numbers)]
            wrong_type = int(np.isnan(numbers).sum())
            if feature["inferred_type"] == "Integral":
                wrong_type += int((valid != np.round(valid)).sum())
            entry.update(mismatched=wrong_type, negative=int((valid < 0).sum()))
            entry["deciles"] = decile_counts(valid, deciles(feature))
        else:
            entry["values"] = dict(collections.Counter(present))
        counts[feature["name"]] = entry
    return {"items": items, "columns": counts}


def _number(text: str) -> float:
    """A value as a number by the data's rule (``data.NUMBER_PATTERN``, as the ETL checks it), else NaN:
    "NaN", "inf" or "1_000" are not numbers here, though Python's ``float`` reads them."""
    return float(text) if _NUMBER.fullmatch(text) else math.nan


def constraint_violations(constraints: dict[str, Any], window: dict[str, Any]) -> dict[str, Any]:
    """Model Monitor's ``constraint_violations.json`` of a window's counts against ``constraints.json``
    (its thresholds from the document's ``monitoring_config``). A negative value where the baseline had
    none is reported as a ``data_type_check``: the documented check types have none of its own."""
    config = constraints.get("monitoring_config", MONITORING_CONFIG)
    violations = []

    def violation(name: str, check: str, description: str) -> None:
        violations.append({"feature_name": name, "constraint_check_type": check, "description": description})

    items = window["items"]
    for constraint in constraints["features"]:
        name = constraint["name"]
        counts = window["columns"].get(name)
        if counts is None:
            violation(name, "missing_column_check", f"the window has no column {name!r}; the baseline has")
            continue
        completeness = counts["present"] / items if items else 0.0
        if completeness < constraint.get("completeness", 0.0):
            violation(
                name,
                "completeness_check",
                f"completeness {completeness:.4f} is below the baseline's {constraint['completeness']:.4f}",
            )
        if constraint["inferred_type"] in NUMERIC_TYPES:
            share = counts["mismatched"] / counts["present"] if counts["present"] else 0.0
            if share > config["datatype_check_threshold"]:
                violation(
                    name,
                    "data_type_check",
                    f"{share:.1%} of the values are not {constraint['inferred_type']} (threshold "
                    f"{config['datatype_check_threshold']:.0%})",
                )
            if constraint.get("num_constraints", {}).get("is_non_negative") and counts["negative"]:
                violation(name, "data_type_check", f"{counts['negative']:,} negative values; the baseline has none")
        elif "string_constraints" in constraint:
            domain = set(constraint["string_constraints"]["domains"])
            unknown = sum(n for value, n in counts["values"].items() if value not in domain)
            share = unknown / counts["present"] if counts["present"] else 0.0
            if share > config["domain_content_threshold"]:
                violation(
                    name,
                    "categorical_values_check",
                    f"{share:.1%} of the values are outside the baseline's domain (threshold "
                    f"{config['domain_content_threshold']:.0%})",
                )
    known = {constraint["name"] for constraint in constraints["features"]}
    for name in window["columns"]:
        if name not in known:
            violation(name, "extra_column_check", f"the window has a column {name!r} the baseline has not")
    return {"violations": violations}


def drift_violations(report: dict[str, dict[str, Any]]) -> list[dict[str, str]]:
    """The drifted columns as ``baseline_drift_check`` violations, each naming the method and its figure."""
    violations = []
    for name, found in report.items():
        if found["drifted"]:
            figure = (
                f"population stability index {found['value']:.3f} > {found['threshold']:g}"
                if found["method"] == "psi"
                else f"chi-squared p-value {found['p_value']:.2g} < {found['threshold']:.2g}"
            )
            violations.append(
                {"feature_name": name, "constraint_check_type": "baseline_drift_check", "description": figure}
            )
    return violations


def statistics_of(columns: dict[str, Any], numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """statistics.json of columns in memory: what the ETL job computes with Spark, for a sample small
    enough to hold (tests, the drift benchmark)."""
    import numpy as np

    features = []
    items = len(next(iter(columns.values())))
    for name in numeric:
        values = np.asarray(columns[name], dtype=float)
        figures = {
            "present": len(values),
            "missing": items - len(values),
            "sum": float(values.sum()),
            "mean": float(values.mean()),
            "std_dev": float(values.std()),
            "min": float(values.min()),
            "max": float(values.max()),
            "integral": bool((values == np.round(values)).all()),
            "quantiles": np.quantile(values, SKETCH_QUANTILES, method="inverted_cdf").tolist(),
        }
        features.append(numeric_feature(name, figures))
    for name in categorical:
        present = [value for value in (str(v).strip() for v in columns[name]) if value]  # blank: missing
        values, counts = np.unique(np.asarray(present, dtype=str), return_counts=True)
        features.append(
            string_feature(
                name, int(counts.sum()), items - int(counts.sum()), dict(zip(values.tolist(), counts.tolist()))
            )
        )
    return statistics_document(items, features)
