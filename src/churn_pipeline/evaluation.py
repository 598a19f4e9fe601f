"""Evaluation of a trained model on the held-out test split."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct score threshold."""
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    distinct = np.r_[np.flatnonzero(np.diff(scores)), labels.size - 1]
    true_pos = np.cumsum(labels)[distinct]
    false_pos = (distinct + 1) - true_pos
    positives, negatives = labels.sum(), labels.size - labels.sum()
    tpr = np.r_[0.0, true_pos / positives] if positives else np.zeros(distinct.size + 1)
    fpr = np.r_[0.0, false_pos / negatives] if negatives else np.zeros(distinct.size + 1)
    return fpr, tpr


def evaluate(labels: Sequence[float], probabilities: Sequence[float], cutoff: float = 0.5) -> dict[str, Any]:
    """Accuracy, AUC, precision, recall, F1 and the confusion matrix at ``cutoff``."""
    labels = np.asarray(labels, dtype=float)
    scores = np.asarray(probabilities, dtype=float)
    predicted = (scores > cutoff).astype(float)
    tp = int(((predicted == 1) & (labels == 1)).sum())
    tn = int(((predicted == 0) & (labels == 0)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    fpr, tpr = roc_curve(labels, scores)
    return {
        "rows": int(labels.size),
        "accuracy": (tp + tn) / labels.size if labels.size else 0.0,
        "auc": float(np.trapezoid(tpr, fpr)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "cutoff": cutoff,
        "confusion_matrix": {"true_negative": tn, "false_positive": fp, "false_negative": fn, "true_positive": tp},
    }


def feature_importance(booster, feature_names: Sequence[str], importance_type: str = "gain") -> list[tuple[str, float]]:
    """(feature, importance) pairs, largest first, with the manifest's feature names."""
    scores = booster.get_score(importance_type=importance_type)
    named = [(feature_names[int(key[1:])] if key.startswith("f") and key[1:].isdigit() else key, value)
             for key, value in scores.items()]
    return sorted(named, key=lambda item: -item[1])
