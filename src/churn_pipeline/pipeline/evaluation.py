"""The registered model judged on the held-out test split, and the decision's cutoff chosen by cost."""

from __future__ import annotations

import json
from typing import Any

from .. import decisions, evaluation, explain, monitoring, names, training
from ..errors import PipelineError, RecordNotFound
from ..names import FEATURE_MANIFEST
from ..registry import check_decision
from .run import Run


def registry_record(run: Run):
    """The registry record of this run; a clear error when the gate did not let it through."""
    try:
        return run.registry().get(run.run_id)
    except RecordNotFound:
        status = run.state.get("execution_status", "not run")
        raise PipelineError(
            f"run {run.run_id!r} has no registry record (execution status: {status}); "
            "only a model that passes the accuracy gate is registered"
        ) from None


#: test rows whose SHAP contributions make notebook 03's summary (the split is in seeded-hash order,
#: so its first rows are a random sample)
REASONS_SAMPLE_ROWS = 2000


#: points of the cost curve notebook 03 draws
COST_CURVE_POINTS = 200


def evaluate_model(run: Run, record) -> dict[str, Any]:
    """Score the held-out test split with the registered model, batch by batch; choose the cutoff by cost
    and summarise the reasons on a sample; keep ``metrics.json``.

    A run whose record holds another decision (other costs) is refused before anything is written."""
    import numpy as np

    manifest = json.loads(run.backend.store.local_path(f"{run.own_etl_output_uri}/{FEATURE_MANIFEST}").read_text())
    rows = sum(manifest["rows"].values())  # every row, counted by the ETL job
    run.state.update(data_rows=rows, data_rows_counted=True, churn_rate=round(manifest["positives"] / rows, 4))
    run.save()
    booster = training.load_model_archive(run.backend.store.local_path(record.model_data_url))
    tally, sample, sampled = evaluation.ScoreTally(), [], 0
    for features, labels in training.iter_channel(run.backend.store.local_path(run.channel_uri("test"))):
        tally.add(labels, booster.inplace_predict(features))
        if sampled < REASONS_SAMPLE_ROWS:
            sample.append(features[: REASONS_SAMPLE_ROWS - sampled])
            sampled += len(sample[-1])
    decision = tally.cost_cutoff(run.params["retention_offer_cost"], run.params["churn_loss"])
    if record.decision is not None:
        check_decision(record, decision, "the registry")
    cutoffs, costs = tally.expected_costs(run.params["retention_offer_cost"], run.params["churn_loss"])
    step = max(1, tally.bins // COST_CURVE_POINTS)
    per_column, _ = explain.contributions(booster, np.concatenate(sample), manifest)
    fpr, tpr = tally.roc()
    importance = evaluation.feature_importance(booster, manifest["features"])
    metrics = {
        "run_id": run.run_id,
        "threshold": record.threshold,
        "training": record.metrics,
        "test": tally.result(),
        "decision": decision,
        "reasons": {
            "rows": sampled,
            "mean_abs_contribution": [
                {"column": c, "value": v}
                for c, v in explain.mean_absolute(per_column, explain.reason_columns(manifest))
            ],
        },
        "feature_importance": [{"feature": f, "gain": g} for f, g in importance[:20]],
    }
    run.write_artifact("metrics.json", metrics)
    score_feature = monitoring.numeric_feature(decisions.SCORE, tally.score_figures(monitoring.SKETCH_QUANTILES))
    test_rows = int(tally.counts.sum())
    evaluated = {"test": metrics["test"], "scores": monitoring.statistics_document(test_rows, [score_feature])}
    run.backend.store.put(f"{run.prefix}/{names.EVALUATION}", json.dumps(evaluated, indent=2).encode())
    rows = max(1, int(tally.counts.sum()))
    return {
        **metrics,
        "roc": {"fpr": fpr.tolist(), "tpr": tpr.tolist()},
        "manifest": manifest,
        "cost_curve": {"cutoff": cutoffs[::step].tolist(), "cost_per_customer": (costs[::step] / rows).tolist()},
    }


def record_decision(run: Run, decision: dict[str, float]):
    """Write the cost-chosen cutoff into the registry record (once), the run's state, and the run's
    folder, where the model Save Model created reads it (``inference.model_fn``); the record."""
    record = run.registry().record_decision(run.run_id, decision)
    text = json.dumps(record.decision, indent=2, sort_keys=True) + "\n"
    if run.backend.store.read_text(run.decision_uri) != text:
        run.backend.store.put(run.decision_uri, text.encode())
    run.state["decision"] = decision
    run.save()
    return record
