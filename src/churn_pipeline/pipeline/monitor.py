"""``churn-pipeline monitor``: a registered model's scored windows against its baseline, and, with
outcomes, its untreated customers, its offers and its costs; a verdict.

Notebook 04 calls ``monitor_windows`` and draws what it returns; the counts come
from Spark (``etl.window``), so a window of any size costs the monitor a few
thousand numbers. Written beside the executed notebook: ``monitoring.json``
(everything, with the verdict) and ``constraint_violations.json`` (Model
Monitor's format).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from .. import data, decisions, monitoring, names, quality, scoring, serving, synthetic, workspace
from ..backends import open_backend
from ..errors import PipelineError
from ..etl import captures
from ..etl import window as window_counts
from ..storage import atomic_file, write_atomic
from .run import Run

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
    """Monitor ``windows`` (score files, or capture folders of an endpoint) with the model that scored
    them (or ``model``); with ``outcomes`` (one score file's), judge the untreated customers, the offers
    and the costs. Writes ``MONITORING`` and ``VIOLATIONS`` into ``out`` (nothing is written when an
    input is refused); the report."""
    thresholds = quality.check_thresholds(thresholds or {})
    if not windows:
        raise PipelineError("no window to monitor: name one or more score files or capture folders")
    described = [describe_window(w) for w in windows]
    model = model or next((d["model"] for d in described if d.get("model")), "")
    others = sorted({d["model"] for d in described if d.get("model")} - {model})
    if not model or others:
        raise PipelineError(f"the windows were scored by different models or none ({others}); name the model")
    if outcomes and (len(described) > 1 or described[0]["kind"] != "scores"):
        raise PipelineError("outcomes belong to one score file (captures have no control group): monitor it alone")
    documents = model_documents(params, model)
    statistics, evaluation = documents["statistics"], documents["evaluation"]
    score_statistics = evaluation["scores"] if evaluation else None
    each = [_count(spark, d, statistics, score_statistics) for d in described]
    counted = _sum_counts([c for c, _, _ in each])
    scored = [s for _, s, _ in each]
    drift = monitoring.feature_drift(statistics, counted)
    report: dict[str, Any] = {
        "model": model,
        "windows": [entry for _, _, entry in each],
        "items": counted["items"],
        "drift": drift,
        "drifted_share": sum(found["drifted"] for found in drift.values()) / len(drift),
        "thresholds": thresholds,
    }
    report["score_drift"] = _score_drift(score_statistics, scored)
    violations = monitoring.constraint_violations(documents["constraints"], counted)
    violations["violations"] += monitoring.drift_violations(drift)
    report["violations"] = len(violations["violations"])
    report["test"] = quality.registered_figures(evaluation["test"]) if evaluation else None
    if outcomes and report["test"] is None:
        raise PipelineError(f"run {model!r} has no test figures ({names.EVALUATION}): evaluate it in notebook 03")
    if outcomes:
        report.update(_outcomes(spark, described[0], outcomes, documents["record"]))
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


def describe_window(path: str) -> dict[str, Any]:
    """A window by its path: a folder is an endpoint's capture, a file a score file (``decisions.read_window``)."""
    if Path(path).is_dir():
        return {"kind": "capture", "path": str(path)}
    return {"kind": "scores", **decisions.read_window(path)}


def _count(spark, window: dict[str, Any], statistics, score_statistics):
    """(column counts, score counts, the window's entry in the report) of one window."""
    if window["kind"] == "capture":
        counted, scored, read = captures.capture_counts(spark, window["path"], statistics, score_statistics)
        return counted, scored, {"capture": Path(window["path"]).name, **read, "rows": counted["items"]}
    counted = window_counts.input_counts(spark, window["input_path"], statistics)
    entry = {k: window[k] for k in ("scores", "rows", "cutoff", "holdout", "decisions")}
    return counted, window_counts.score_counts(spark, window, score_statistics), entry


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


def _outcomes(spark, described: dict[str, Any], outcomes: str, record) -> dict[str, Any]:
    """Model quality on the untreated customers, the offers' effect and the realised cost."""
    counted = window_counts.outcome_counts(spark, described, outcomes)
    counts = counted["counts"]
    if not any(group.sum() for group in counts.values()):
        raise PipelineError(f"{outcomes}: no outcome of a customer this window scored")
    result: dict[str, Any] = {
        "outcomes": {
            "file": Path(outcomes).name,
            "customers": int(sum(group.sum() for group in counts.values())),
            "without_outcome": counted["without_outcome"],
            "shared_identifier": counted["shared_identifier"],
        },
        "quality": quality.untreated_quality(counts, described["holdout"]["fraction"], described["cutoff"]),
        "offers": quality.offer_effect(counts),
    }
    if record.decision is not None:
        result["cost"] = quality.realised_cost(counts, record.decision)
    return result


def retraining_data(spark, params: dict[str, Any], model: str, scores: str, outcomes: str, target: Path) -> dict:
    """A new training file (raw format) at ``target``: the data ``model`` was trained on, then the
    window's untreated customers with their outcomes; nothing is left at ``target`` if a step fails."""
    backend = open_backend(params)
    record = backend.registry(names.registry_table(params)).get(model)
    training = backend.store.local_path(record.data_uri)
    with open(training, encoding="utf-8") as lines:
        header = lines.readline()
    if header.strip().split(",") != list(data.RAW_COLUMNS):
        raise PipelineError(f"run {model!r} was trained on {record.data_uri}, not raw records: nothing to add to")
    parts = target.with_name(f".{target.name}.parts")
    try:
        added = window_counts.untreated_records(spark, decisions.read_window(scores), outcomes, str(parts))
        with atomic_file(target) as out:
            with open(training, "rb") as source:
                shutil.copyfileobj(source, out, 1 << 20)
            if training.stat().st_size and _last_byte(training) != b"\n":
                out.write(b"\n")
            for part in sorted(parts.glob("part-*")):
                with open(part, "rb") as source:
                    shutil.copyfileobj(source, out, 1 << 20)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    return {"path": str(target), "training_data": record.data_uri, "added": added}


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, 2)
        return handle.read(1)
