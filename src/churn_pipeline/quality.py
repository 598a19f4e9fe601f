"""A deployed model judged on its customers' outcomes, and the verdict of a monitor.

Offers change who churns, so a model looks worse on the customers it treated
when its offers work. Only the untreated tell the truth: everyone below the
cutoff, and the control group (``decisions.Holdout``) standing for every
customer above it, each weighted by 1 / ``holdout_fraction``. The same control
group against the offered customers measures the offers' effect: both were
above the cutoff and only a random draw told them apart.

Figures come from counts per (decision, outcome, score bin), which the monitor's
Spark job sums over any number of rows; memory is the bins', never the rows'.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import decisions
from .errors import PipelineError

#: score bins of the outcome counts: a score s is in bin floor(s x BINS)
BINS = 10_000
#: calibration is shown in this many equal-width score bands
CALIBRATION_BANDS = 10
#: the normal quantile of a two-sided 95 % interval
Z95 = 1.959963984540054
VERDICTS = ("ok", "drift", "degraded")
#: what ``churn-pipeline monitor`` exits with for each verdict (1: the notebook failed; 2: an input refused)
EXIT_STATUS = {"ok": 0, "drift": 3, "degraded": 4}
#: the verdict's thresholds, each a parameter of the monitor
THRESHOLDS = {
    # drift: more than this share of the baseline's columns drifted (0: any column), or the score drifted
    "max_drifted_share": 0.0,
    # degraded: the untreated customers' AUC or accuracy this far below the test split's
    "max_auc_drop": 0.05,
    "max_accuracy_drop": 0.05,
}


def check_thresholds(values: dict[str, Any]) -> dict[str, float]:
    unknown = sorted(set(values) - set(THRESHOLDS))
    if unknown:
        raise PipelineError(
            f"unknown monitor threshold {', '.join(unknown)}; the thresholds are {', '.join(THRESHOLDS)}"
        )
    merged = {**THRESHOLDS, **values}
    for name, value in merged.items():
        if not isinstance(value, (int, float)) or not 0 <= value <= 1:
            raise PipelineError(f"monitor threshold {name} must be a number between 0 and 1; got {value!r}")
    return {name: float(value) for name, value in merged.items()}


def empty_counts() -> dict[str, np.ndarray]:
    """Outcome counts per decision: [churned 0/1, score bin]."""
    return {decision: np.zeros((2, BINS), dtype=np.int64) for decision in decisions.DECISIONS}


def score_bins(scores) -> np.ndarray:
    return np.clip((np.asarray(scores, dtype=float) * BINS).astype(np.int64), 0, BINS - 1)


def counts_of(decided, scores, churned) -> dict[str, np.ndarray]:
    """Outcome counts of rows in memory (a Spark job sums the same counts over a window of any size)."""
    counts = empty_counts()
    decided, churned = np.asarray(decided), np.asarray(churned, dtype=bool)
    bins = score_bins(scores)
    for decision in decisions.DECISIONS:
        for label in (0, 1):
            chosen = (decided == decision) & (churned == bool(label))
            counts[decision][label] += np.bincount(bins[chosen], minlength=BINS)
    return counts


def hanley_mcneil(auc: float, positives: float, negatives: float) -> float:
    """The standard error of an AUC from its positives and negatives (Hanley and McNeil, 1982)."""
    if positives < 1 or negatives < 1:
        return math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))


def _interval(value: float, error: float) -> list[float]:
    return [value - Z95 * error, value + Z95 * error]


def binned_auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """The AUC of weighted counts per score bin (scores in one bin count as ties)."""
    below = np.cumsum(negatives) - negatives
    total = positives.sum() * negatives.sum()
    return float((positives * (below + 0.5 * negatives)).sum() / total) if total else math.nan


def _kish(counts: np.ndarray, weights: np.ndarray) -> float:
    """The effective number of rows of a weighted sample: (sum of weights)^2 / sum of squared weights."""
    squares = (counts * weights**2).sum()
    return float((counts * weights).sum() ** 2 / squares) if squares else 0.0


def untreated_quality(counts: dict[str, np.ndarray], holdout_fraction: float, cutoff: float) -> dict[str, Any]:
    """AUC, accuracy at the cutoff and calibration on the untreated customers: those below the cutoff
    (weight 1) and the control group (weight 1 / ``holdout_fraction``), with 95 % intervals from the
    weighted sample's effective size (Kish)."""
    below, held = counts[decisions.NO_OFFER], counts[decisions.HOLDOUT]
    if not held.sum() or not holdout_fraction:
        raise PipelineError(
            "the window has no control group (no customer held out above the cutoff): the model cannot be judged on "
            "its untreated customers; score with a holdout_fraction above 0"
        )
    weight = 1.0 / holdout_fraction
    weighted = below + weight * held  # [churned, bin]
    auc = binned_auc(weighted[0], weighted[1])
    per_class = [_kish(np.array([below[label].sum(), held[label].sum()]), np.array([1.0, weight])) for label in (0, 1)]
    # below the cutoff the model says "stays": right for those who stayed; above it "churns"
    right = below[0].sum() + weight * held[1].sum()
    accuracy = float(right / weighted.sum())
    effective = _kish(np.array([below.sum(), held.sum()]), np.array([1.0, weight]))
    return {
        "customers": int(below.sum() + held.sum()),
        "weighted_customers": float(weighted.sum()),
        "effective_customers": effective,
        "auc": auc,
        "auc_interval": _interval(auc, hanley_mcneil(auc, per_class[1], per_class[0])),
        "accuracy": accuracy,
        "accuracy_interval": _interval(accuracy, math.sqrt(accuracy * (1 - accuracy) / effective)),
        "cutoff": cutoff,
        "calibration": calibration(weighted),
    }


def calibration(weighted: np.ndarray) -> list[dict[str, float]]:
    """Per score band: customers (weighted), their mean score and their churn rate."""
    middles = (np.arange(BINS) + 0.5) / BINS
    bands = []
    width = BINS // CALIBRATION_BANDS
    for band in range(CALIBRATION_BANDS):
        part = slice(band * width, (band + 1) * width)
        total = weighted[:, part].sum()
        if total:
            bands.append(
                {
                    "band": f"{band / CALIBRATION_BANDS:.1f}-{(band + 1) / CALIBRATION_BANDS:.1f}",
                    "customers": float(total),
                    "mean_score": float((weighted[:, part].sum(axis=0) * middles[part]).sum() / total),
                    "churn_rate": float(weighted[1, part].sum() / total),
                }
            )
    return bands


def offer_effect(counts: dict[str, np.ndarray]) -> dict[str, Any]:
    """The offers' effect on the churn rate of the customers above the cutoff: the control group's rate
    minus the offered customers' (positive when offers keep customers), with a 95 % Wald interval."""
    offered, held = counts[decisions.OFFER], counts[decisions.HOLDOUT]
    groups = {}
    for name, group in (("offered", offered), ("holdout", held)):
        customers = int(group.sum())
        groups[name] = {"customers": customers, "churn_rate": float(group[1].sum() / customers) if customers else None}
    if not groups["offered"]["customers"] or not groups["holdout"]["customers"]:
        return {**groups, "effect": None, "interval": None, "half_width": None}
    rates = [groups[name]["churn_rate"] for name in ("holdout", "offered")]
    sizes = [groups[name]["customers"] for name in ("holdout", "offered")]
    effect = rates[0] - rates[1]
    error = math.sqrt(sum(rate * (1 - rate) / size for rate, size in zip(rates, sizes)))
    return {**groups, "effect": effect, "interval": _interval(effect, error), "half_width": Z95 * error}


def realised_cost(counts: dict[str, np.ndarray], decision: dict[str, float]) -> dict[str, float]:
    """What the window's decisions cost against what the cutoff was chosen for: an offer costs
    ``retention_offer_cost``, every churner ``churn_loss`` (offered or not: the expected cost assumed an
    offer keeps its customer; the control group is left out, being no one's policy)."""
    offered, below = counts[decisions.OFFER], counts[decisions.NO_OFFER]
    customers = int(offered.sum() + below.sum())
    cost = decision["retention_offer_cost"] * offered.sum() + decision["churn_loss"] * (
        offered[1].sum() + below[1].sum()
    )
    return {
        "customers": customers,
        "realised_cost_per_customer": float(cost / customers) if customers else math.nan,
        "expected_cost_per_customer": float(decision["expected_cost_per_customer"]),
    }


def registered_figures(test: dict[str, Any]) -> dict[str, Any]:
    """The test split's AUC and accuracy with their 95 % intervals, as the model was registered."""
    confusion = test["confusion_matrix"]
    positives = confusion["true_positive"] + confusion["false_negative"]
    negatives = confusion["true_negative"] + confusion["false_positive"]
    accuracy, rows = test["accuracy"], test["rows"]
    return {
        "rows": rows,
        "auc": test["auc"],
        "auc_interval": _interval(test["auc"], hanley_mcneil(test["auc"], positives, negatives)),
        "accuracy": accuracy,
        "accuracy_interval": _interval(accuracy, math.sqrt(accuracy * (1 - accuracy) / rows)),
    }


def verdict(
    drifted_share: float, score_drifted: bool, quality: dict[str, Any] | None, test: dict[str, Any], thresholds
) -> tuple[str, list[str]]:
    """``degraded`` when the untreated customers' AUC or accuracy fell below the test split's by more than
    the thresholds; else ``drift`` when more than ``max_drifted_share`` of the columns, or the score,
    drifted; else ``ok``. With the reasons, in words."""
    reasons = []
    if quality is not None:
        for figure in ("auc", "accuracy"):
            drop = test[figure] - quality[figure]
            if drop > thresholds[f"max_{figure}_drop"]:
                reasons.append(
                    f"{figure} on the untreated customers {quality[figure]:.3f} is {drop:.3f} below the test "
                    f"split's {test[figure]:.3f} (max_{figure}_drop {thresholds[f'max_{figure}_drop']:g})"
                )
        if reasons:
            return "degraded", reasons
    if drifted_share > thresholds["max_drifted_share"]:
        reasons.append(
            f"{drifted_share:.0%} of the columns drifted (max_drifted_share {thresholds['max_drifted_share']:g})"
        )
    if score_drifted:
        reasons.append("the score distribution drifted from the test split's")
    return ("drift", reasons) if reasons else ("ok", ["no column and no score drift beyond the thresholds"])
