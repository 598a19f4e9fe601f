"""``churn-pipeline monitor``: a registered model's scored windows against its baseline, and, with
outcomes, its untreated customers, its offers and its costs; a verdict.

Notebook 04 calls ``monitor_windows`` and draws what it returns; the counts come
from Spark (``etl.monitor_pass``: local Spark for windows on this machine, the
ETL job for windows in S3), so a window of any size costs the monitor a few
thousand numbers. Written beside the executed notebook: ``monitoring.json``
(everything, with the verdict) and ``constraint_violations.json`` (Model
Monitor's format).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from .. import decisions, monitoring, names, quality, scoring, serving, synthetic, workspace
from ..backends import open_backend
from ..errors import PipelineError
from ..etl import monitor_pass, spark_worker
from ..storage import Storage, write_atomic
from . import monitor_job
from .run import Run
from .scoring import SCORES_DESCRIPTION

#: what the monitor writes beside its executed notebook
MONITORING = "monitoring.json"
VIOLATIONS = "constraint_violations.json"
#: notebook 04's own parameters (besides the pipeline's): with no window it monitors a demonstration
MONITOR_PARAMETERS = {"model": "", "windows": [], "outcomes": "", "monitor_id": "", **quality.THRESHOLDS}
#: the demonstration window: synthetic customers with day minutes up 15 %, scored with a control group, and
#: their outcomes under offers that prevent 30 % of churn (the truth the monitor should find)
DEMONSTRATION = {"rows": 20_000, "seed": 7, "shifts": ("day-mins-up",), "date": "2026-01-01", "effect": 0.3}


def monitor_folder(monitor_id: str) -> Path:
    """``artifacts/monitor-<id>/``, new (a monitor's artifacts are never written over)."""
    monitor_id = workspace.check_run_id(monitor_id or workspace.new_run_id())
    folder = workspace.artifacts_root() / f"monitor-{monitor_id}"
    if (folder / MONITORING).exists():
        raise PipelineError(f"monitor {monitor_id!r} has run already ({folder}); choose another monitor id")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def current_model(params: dict[str, Any], model: str, windows: list[str]) -> str:
    """``model``; else, for windows, none (each score file names the model that scored it); else (the
    demonstration) the run id of the parameters, or the run notebook 01 started last."""
    if model or windows:
        return model
    if params["run_id"]:
        return params["run_id"]
    marker = workspace.home() / names.CURRENT_RUN
    if not marker.exists():
        raise PipelineError("no model named and no current run: name the model (a run id) to monitor")
    return marker.read_text().strip()


def demonstration_window(spark, params: dict[str, Any], model: str, folder: Path) -> dict[str, Any]:
    """``DEMONSTRATION`` scored by ``model`` into ``folder/demonstration/``, with simulated outcomes."""
    backend = open_backend(params)
    source = serving.resolve_model(model, backend, backend.registry(names.registry_table(params)))
    target = folder / "demonstration"
    target.mkdir(parents=True, exist_ok=True)
    shown = DEMONSTRATION
    customers = synthetic.generate_file(target / "customers.csv", shown["rows"], shown["seed"], shown["shifts"]).path
    manifest = json.loads(source.manifest.read_text())
    holdout = decisions.Holdout(params["holdout_fraction"], shown["date"])
    scored = scoring.score_file(
        spark,
        source.model,
        manifest,
        source.cutoff,
        str(customers),
        target / "scores.csv",
        0,
        True,
        holdout,
        {"model": model, "cutoff_origin": source.cutoff_origin},
    )
    simulated = synthetic.simulate_outcomes(scored.path, target / "outcomes.csv", shown["effect"], shown["seed"])
    return {"scores": str(scored.path), "outcomes": str(simulated.path), "true_effect": simulated.true_effect}


def _sum_counts(counted: list[dict[str, Any]]) -> dict[str, Any]:
    """The counts of several windows as one window's."""
    total: dict[str, Any] = {"items": sum(c["items"] for c in counted), "columns": {}}
    for name, first in counted[0]["columns"].items():
        entry = {
            key: sum(c["columns"][name][key] for c in counted) for key in first if key not in ("deciles", "values")
        }
        if "deciles" in first:
            entry["deciles"] = [sum(c["columns"][name]["deciles"][k] for c in counted) for k in range(10)]
        if "values" in first:
            values: dict[str, int] = {}
            for c in counted:
                for value, n in c["columns"][name]["values"].items():
                    values[value] = values.get(value, 0) + n
            entry["values"] = values
        total["columns"][name] = entry
    return total


def model_documents(params: dict[str, Any], model: str) -> dict[str, Any]:
    """The registry record of ``model`` (a run id) and the documents a monitor compares with: the training
    split's statistics and constraints, and the test split's figures and score distribution."""
    run = Run(params, model, open_backend(params), Path("."))
    record = run.registry().get(model)
    baseline = record.extra.get("baseline")
    if not baseline:
        raise PipelineError(f"run {model!r} has no baseline in its registry record: it was trained before baselines")
    store = run.backend.store
    documents: dict[str, Any] = {"record": record}
    for key in ("statistics", "constraints"):
        text = store.read_text(baseline[key])
        if text is None:
            raise PipelineError(f"run {model!r}: its baseline {baseline[key]} is missing")
        documents[key] = json.loads(text)
    monitoring.check_statistics(documents["statistics"], baseline["statistics"])
    evaluated = store.read_text(f"{run.run_prefix(model)}/{names.EVALUATION}")
    documents["evaluation"] = json.loads(evaluated) if evaluated else None
    return documents


def monitor_windows(
    spark,
    params: dict[str, Any],
    windows: list[str],
    outcomes: str = "",
    model: str = "",
    thresholds: dict[str, Any] | None = None,
    out: Path | None = None,
) -> dict[str, Any]:
    """Monitor ``windows`` (score outputs, or capture folders of an endpoint; on this machine, counted by
    ``spark``, or in S3, counted by the ETL job) with the model that scored them (or ``model``); with
    ``outcomes`` (one score output's), judge the untreated customers, the offers and the costs. Writes
    ``MONITORING`` and ``VIOLATIONS`` into ``out`` (nothing is written when an input is refused); the
    report."""
    thresholds = quality.check_thresholds(thresholds or {})
    remote, described, model = _windows_and_model(params, windows, outcomes, model)
    documents = model_documents(params, model)
    statistics, evaluation = documents["statistics"], documents["evaluation"]
    if outcomes and evaluation is None:
        raise PipelineError(f"run {model!r} has no test figures ({names.EVALUATION}): evaluate it in notebook 03")
    score_statistics = evaluation["scores"] if evaluation else None
    found = _counted(spark, params, remote, described, (statistics, score_statistics), outcomes, out)
    each = [_entry(d, c) for d, c in zip(described, found["windows"], strict=True)]
    counted = _sum_counts([c["columns"] for c in found["windows"]])
    scored = [c["scores"] for c in found["windows"]]
    drift = monitoring.feature_drift(statistics, counted)
    report: dict[str, Any] = {
        "model": model,
        "windows": each,
        "items": counted["items"],
        "drift": drift,
        "drifted_share": sum(column["drifted"] for column in drift.values()) / len(drift),
        "thresholds": thresholds,
    }
    report["score_drift"] = _score_drift(score_statistics, scored)
    violations = monitoring.constraint_violations(documents["constraints"], counted)
    violations["violations"] += monitoring.drift_violations(drift)
    report["violations"] = len(violations["violations"])
    report["test"] = quality.registered_figures(evaluation["test"]) if evaluation else None
    if outcomes:
        report.update(_outcomes(described[0], outcomes, found["outcomes"], documents["record"]))
    report["verdict"], report["reasons"] = quality.verdict(
        report["drifted_share"],
        bool(report["score_drift"] and report["score_drift"]["drifted"]),
        report.get("quality"),
        report["test"],
        thresholds,
    )
    if out is not None:
        write_atomic(Path(out) / VIOLATIONS, json.dumps(violations, indent=2))
        write_atomic(Path(out) / MONITORING, json.dumps(report, indent=2, default=float))
    return {**report, "counts": counted, "score_counts": scored, "statistics": statistics}


def _windows_and_model(params, windows: list[str], outcomes: str, model: str) -> tuple[bool, list[dict], str]:
    """(whether the windows lie in S3, their descriptions, the model that scored them), or a clear refusal."""
    if not windows:
        raise PipelineError("no window to monitor: name one or more score files or capture folders")
    remote = monitor_job.in_s3(windows)
    if outcomes.startswith("s3://") and not remote:
        raise PipelineError(f"--outcomes {outcomes}: the outcomes of windows on this machine are a file here too")
    store = open_backend(params).store
    described = [describe_window(w, store) for w in windows]
    model = model or next((d["model"] for d in described if d.get("model")), "")
    others = sorted({d["model"] for d in described if d.get("model")} - {model})
    if not model or others:
        raise PipelineError(f"the windows were scored by different models or none ({others}); name the model")
    if outcomes and (len(described) > 1 or described[0]["kind"] != "scores"):
        raise PipelineError("outcomes belong to one score file (captures have no control group): monitor it alone")
    return remote, described, model


def _counted(spark, params, remote: bool, described, baselines, outcomes: str, out: Path | None) -> dict[str, Any]:
    """``monitor_pass.count_windows`` of the windows: in the ETL job for windows in S3, else on ``spark``."""
    if remote:
        monitor_id = out.name.removeprefix("monitor-") if out is not None else workspace.new_run_id()
        artifacts = out if out is not None else workspace.artifacts_root() / f"monitor-{monitor_id}"
        return monitor_job.job_counts(params, monitor_id, described, *baselines, outcomes, artifacts)
    spark = spark or spark_worker.local_session(params["spark_master"])
    return monitor_pass.count_windows(spark, described, *baselines, outcomes)


def describe_window(location: str, store: Storage) -> dict[str, Any]:
    """A window by its location: on this machine a folder is an endpoint's capture and a file a score
    file of ``score`` (``decisions.read_window``); in S3 a folder with ``_scores.json`` is a Batch
    Transform's scores, any other folder a capture."""
    if location.startswith("s3://"):
        folder = location.rstrip("/") + "/"
        description = store.read_text(folder + SCORES_DESCRIPTION)
        if description is not None:
            return transform_window(folder, description)
        if not store.objects_under(folder):
            raise PipelineError(f"{location}: nothing there (neither scores of `score` nor an endpoint's captures)")
        return {"kind": "capture", "path": folder}
    if Path(location).is_dir():
        return {"kind": "capture", "path": str(location)}
    return {"kind": "scores", **decisions.read_window(location)}


def transform_window(folder: str, description: str) -> dict[str, Any]:
    """A Batch Transform's scores as a window: its ``.out`` parts (no header, ``columns``), its input."""
    try:
        document = json.loads(description)
        columns, holdout, cutoff = document["columns"], document["holdout"], document["cutoff"]
        holdout["fraction"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{folder}{SCORES_DESCRIPTION}: not a scoring's description ({exc})") from None
    return {
        "kind": "scores",
        "model": document.get("model", ""),
        "scores": folder.rstrip("/").rsplit("/", 1)[-1],
        "identifier": columns[0],
        "columns": columns,
        "header": False,
        "cutoff": cutoff,
        "holdout": holdout,
        "scores_path": f"{folder}*.out",
        "input_path": folder + document["input"],
    }


def _entry(window: dict[str, Any], counted: dict[str, Any]) -> dict[str, Any]:
    """A window's entry in the report."""
    rows = counted["columns"]["items"]
    if window["kind"] == "capture":
        return {"capture": window["path"].rstrip("/").rsplit("/", 1)[-1], **counted["read"], "rows": rows}
    scores = counted["scores"]
    return {
        "scores": window["scores"],
        "rows": rows,
        "cutoff": window["cutoff"],
        "holdout": window["holdout"],
        "decisions": decisions.named_counts(scores["decisions"]),
    }


def _score_drift(score_statistics: dict[str, Any] | None, scored: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The window's scores against the test split's, by the numeric columns' method; None for a model
    evaluated before the score distribution was kept."""
    if score_statistics is None:
        return None
    feature = score_statistics["features"][0]
    counts = [sum(s["deciles"][k] for s in scored) for k in range(10)]
    psi = monitoring.population_stability(monitoring.expected_shares(feature), counts)
    return {
        "method": "psi",
        "value": psi,
        "threshold": monitoring.PSI_THRESHOLD,
        "drifted": psi > monitoring.PSI_THRESHOLD,
        "deciles": counts,
    }


def _outcomes(described: dict[str, Any], outcomes: str, found: dict[str, Any], record) -> dict[str, Any]:
    """Model quality on the untreated customers, the offers' effect and the realised cost, from the
    outcome counts (``window.outcome_counts``)."""
    counts = {decision: np.asarray(table, dtype=np.int64) for decision, table in found["counts"].items()}
    if not any(group.sum() for group in counts.values()):
        raise PipelineError(f"{outcomes}: no outcome of a customer this window scored")
    result: dict[str, Any] = {
        "outcomes": {
            "file": outcomes.rstrip("/").rsplit("/", 1)[-1],
            "customers": int(sum(group.sum() for group in counts.values())),
            "without_outcome": found["without_outcome"],
            "shared_identifier": found["shared_identifier"],
        },
        "quality": quality.untreated_quality(counts, described["holdout"]["fraction"], described["cutoff"]),
        "offers": quality.offer_effect(counts),
    }
    if record.decision is not None:
        result["cost"] = quality.realised_cost(counts, record.decision)
    return result


def retraining_data(spark, params: dict[str, Any], model: str, scores: str, outcomes: str, target: Path) -> dict:
    """A new training file: the data ``model`` was trained on, then the window's untreated customers with
    their outcomes (``monitor_pass.retraining_part``), at ``target`` (on this machine), or, for a window
    in S3, written by the ETL job beside the monitor's request (``target``'s folder names the monitor).
    Nothing is left at ``target`` if a step fails."""
    backend = open_backend(params)
    record = backend.registry(names.registry_table(params)).get(model)
    window = describe_window(scores, backend.store)
    if monitor_job.in_s3([scores]):
        monitor_id = target.parent.name.removeprefix("monitor-")
        return monitor_job.job_retraining(params, monitor_id, record.data_uri, window, outcomes, target.parent)
    training = str(backend.store.local_path(record.data_uri))
    parts = target.with_name(f".{target.name}.parts")
    try:
        spark = spark or spark_worker.local_session(params["spark_master"])
        added = monitor_pass.retraining_part(spark, training, window, outcomes, str(parts))
        (part,) = parts.glob("part-*")
        os.replace(part, target)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return {"path": str(target), "training_data": record.data_uri, "added": added}
