"""Evaluation of a trained model on the held-out test split, in bounded memory.

Scores are tallied per class in fine bins as batches stream past: the
confusion matrix at the cutoff is exact, the ROC curve is drawn at the bin
edges (scores in one bin count as ties), and memory does not grow with rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

#: score bins of the tally: a ROC point every 1/BINS of probability
BINS = 10_000


class ScoreTally:
    """Counts of test rows per (class, score bin), and the exact confusion matrix at ``cutoff``."""

    def __init__(self, cutoff: float = 0.5, bins: int = BINS):
        self.cutoff = cutoff
        self.bins = bins
        self.counts = np.zeros((2, bins), dtype=np.int64)  # [label, bin]
        self.confusion = {"true_negative": 0, "false_positive": 0, "false_negative": 0, "true_positive": 0}

    def add(self, labels: Sequence[float], scores: Sequence[float]) -> None:
        labels = np.asarray(labels, dtype=float)
        scores = np.asarray(scores, dtype=float)
        positive = labels == 1
        predicted = scores > self.cutoff
        self.confusion["true_positive"] += int(np.count_nonzero(predicted & positive))
        self.confusion["false_positive"] += int(np.count_nonzero(predicted & ~positive))
        self.confusion["false_negative"] += int(np.count_nonzero(~predicted & positive))
        self.confusion["true_negative"] += int(np.count_nonzero(~predicted & ~positive))
        index = np.clip((scores * self.bins).astype(np.int64), 0, self.bins - 1)
        self.counts[1] += np.bincount(index[positive], minlength=self.bins)
        self.counts[0] += np.bincount(index[~positive], minlength=self.bins)

    def roc(self) -> tuple[np.ndarray, np.ndarray]:
        """False- and true-positive rates with the threshold lowered bin by bin (highest scores first)."""
        negatives, positives = self.counts.sum(axis=1)
        occupied = self.counts.sum(axis=0)[::-1] > 0
        true_pos = np.cumsum(self.counts[1][::-1])[occupied]
        false_pos = np.cumsum(self.counts[0][::-1])[occupied]
        tpr = np.r_[0.0, true_pos / positives] if positives else np.zeros(true_pos.size + 1)
        fpr = np.r_[0.0, false_pos / negatives] if negatives else np.zeros(false_pos.size + 1)
        return fpr, tpr

    def expected_costs(self, offer_cost: float, churn_loss: float) -> tuple[np.ndarray, np.ndarray]:
        """Expected cost of each cutoff i/BINS (i = 0 .. BINS): every customer scored above it gets a
        retention offer (``offer_cost`` each), every churner at or below it is lost (``churn_loss``).
        A score in bin i counts as above the cutoff i/BINS: they differ only for a score equal to it."""
        offered = np.r_[np.cumsum(self.counts.sum(axis=0)[::-1])[::-1], 0]  # rows in bins >= i
        churners_offered = np.r_[np.cumsum(self.counts[1][::-1])[::-1], 0]
        lost = self.counts[1].sum() - churners_offered
        cutoffs = np.arange(self.bins + 1) / self.bins
        return cutoffs, offer_cost * offered + churn_loss * lost

    def cost_cutoff(self, offer_cost: float, churn_loss: float) -> dict[str, float]:
        """The cutoff with the least expected cost, its cost, and the costs of offering to nobody and to
        everybody beside it. Cutoffs with no test score between them cost the same: of the highest run
        of least-cost cutoffs (the fewest offers) the middle is taken, as far from the scores on either
        side as the test rows allow."""
        cutoffs, costs = self.expected_costs(offer_cost, churn_loss)
        least = np.flatnonzero(costs == costs.min())
        gaps = np.flatnonzero(np.diff(least) > 1)
        first = least[gaps[-1] + 1] if gaps.size else least[0]
        best = int((first + least[-1]) // 2)
        rows, churners = int(self.counts.sum()), int(self.counts[1].sum())
        return {
            "cutoff": float(cutoffs[best]),
            "expected_cost": float(costs[best]),
            "expected_cost_per_customer": float(costs[best] / rows) if rows else 0.0,
            "share_offered": float(self.counts[:, best:].sum() / rows) if rows else 0.0,
            "share_of_churners_offered": float(self.counts[1, best:].sum() / churners) if churners else 0.0,
            "cost_offering_nobody": float(costs[-1]),
            "cost_offering_everybody": float(costs[0]),
            "retention_offer_cost": offer_cost,
            "churn_loss": churn_loss,
        }

    def score_figures(self, quantiles: Sequence[float]) -> dict[str, Any]:
        """The scores' figures as ``monitoring.numeric_feature`` takes them (with these ``quantiles``), each
        score taken as the middle of its bin (within 1/(2 x BINS) of it): the distribution a monitor
        compares a window's with."""
        per_bin = self.counts.sum(axis=0)
        rows = int(per_bin.sum())
        middles = (np.arange(self.bins) + 0.5) / self.bins
        occupied = np.flatnonzero(per_bin)
        cumulative = np.cumsum(per_bin)
        mean = float((per_bin * middles).sum() / rows) if rows else 0.0
        quantiles = [float(middles[min(np.searchsorted(cumulative, q * rows), self.bins - 1)]) for q in quantiles]
        return {
            "present": rows,
            "missing": 0,
            "sum": float((per_bin * middles).sum()),
            "mean": mean,
            "std_dev": float(np.sqrt((per_bin * (middles - mean) ** 2).sum() / rows)) if rows else 0.0,
            "min": float(middles[occupied[0]]) if rows else 0.0,
            "max": float(middles[occupied[-1]]) if rows else 0.0,
            "integral": False,
            "quantiles": quantiles,
        }

    def result(self) -> dict[str, Any]:
        """Accuracy, AUC, precision, recall, F1 and the confusion matrix at the cutoff."""
        tp, tn = self.confusion["true_positive"], self.confusion["true_negative"]
        fp, fn = self.confusion["false_positive"], self.confusion["false_negative"]
        rows = tp + tn + fp + fn
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        fpr, tpr = self.roc()
        return {
            "rows": rows,
            "accuracy": (tp + tn) / rows if rows else 0.0,
            "auc": float(np.trapezoid(tpr, fpr)),
            "precision": precision,
            "recall": recall,
            "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "cutoff": self.cutoff,
            "confusion_matrix": dict(self.confusion),
        }


def evaluate(labels: Sequence[float], probabilities: Sequence[float], cutoff: float = 0.5) -> dict[str, Any]:
    """``ScoreTally.result`` for scores held in memory."""
    tally = ScoreTally(cutoff)
    tally.add(labels, probabilities)
    return tally.result()


def feature_importance(booster, feature_names: Sequence[str], importance_type: str = "gain") -> list[tuple[str, float]]:
    """(feature, importance) pairs, largest first, with the manifest's feature names."""
    scores = booster.get_score(importance_type=importance_type)
    named = [
        (feature_names[int(key[1:])] if key.startswith("f") and key[1:].isdigit() else key, value)
        for key, value in scores.items()
    ]
    return sorted(named, key=lambda item: -item[1])
