"""The monitor's Spark work as one request, run where the windows lie: on local Spark for windows on
this machine, in the ETL job's monitor and retrain modes (Glue's workers) for windows in S3.

A request names its windows, outcomes and training data by location relative to a root (the
environment's folder), so the same request reads ``s3://`` in Glue and the local store's folder when
the local Glue service runs the job; what comes back is JSON: a few thousand numbers, or one text part.
"""

from __future__ import annotations

import json
from typing import Any

from .. import data
from ..errors import DataValidationError, PipelineError
from ..s3 import s3_storage
from . import captures
from .source import Lines
from .window import input_counts, outcome_counts, score_counts, untreated_records

#: the keys of a window description that hold a location
LOCATION_KEYS = ("path", "scores_path", "input_path")
#: in a request's folder: the request, and what the monitor and retrain modes write
REQUEST, COUNTS, RETRAINING, RETRAINING_SUMMARY = "request.json", "counts.json", "retraining/", "retraining.json"
MODES = ("monitor", "retrain")


def run_request(spark, mode: str, root: str, folder: str) -> dict[str, Any]:
    """The request in ``folder`` (locations relative to ``root``): ``monitor`` writes ``COUNTS``,
    ``retrain`` the new training file under ``RETRAINING`` and its ``RETRAINING_SUMMARY``."""
    storage = s3_storage()
    root, folder = root.rstrip("/") + "/", folder.rstrip("/") + "/"
    request = json.loads(storage.read_text(folder + REQUEST) or "null")
    if request is None:
        raise PipelineError(f"no request at {folder}{REQUEST}")
    windows = [rebased(window, "", root) for window in request["windows"]]
    outcomes = root + request["outcomes"] if request.get("outcomes") else ""
    if mode == "monitor":
        result = count_windows(spark, windows, request["statistics"], request["score_statistics"], outcomes)
        storage.write_text(folder + COUNTS, json.dumps(result))
    elif mode == "retrain":
        added = retraining_part(spark, root + request["training_data"], windows[0], outcomes, folder + RETRAINING)
        result = {"added": added}
        storage.write_text(folder + RETRAINING_SUMMARY, json.dumps(result))
    else:
        raise PipelineError(f"a request's mode is one of {MODES}; got {mode!r}")
    return result


def rebased(window: dict[str, Any], old_root: str, new_root: str) -> dict[str, Any]:
    """``window`` with its locations moved from under ``old_root`` to under ``new_root``."""
    moved = dict(window)
    for key in LOCATION_KEYS:
        if key in moved:
            moved[key] = relocated(moved[key], old_root, new_root)
    return moved


def relocated(location: str, old_root: str, new_root: str) -> str:
    if not location.startswith(old_root):
        raise PipelineError(f"{location} is not under {old_root}")
    return new_root + location[len(old_root) :]


def count_windows(
    spark,
    windows: list[dict[str, Any]],
    statistics: dict[str, Any],
    score_statistics: dict[str, Any] | None,
    outcomes: str = "",
) -> dict[str, Any]:
    """Per window, ``monitoring.window_counts`` of its customers, its score counts and what was read;
    with ``outcomes`` (the one window's), its outcome counts. JSON: it crosses from a Glue job."""
    result: dict[str, Any] = {}
    if outcomes:  # first: a bad outcomes file is refused before anything else is counted
        found = outcome_counts(spark, windows[0], outcomes, score_statistics)
        result["outcomes"] = {k: v for k, v in found.items() if k not in ("counts", "scores")}
        result["outcomes"]["counts"] = {d: c.tolist() for d, c in found["counts"].items()}
    counted = []
    for number, window in enumerate(windows):
        if window["kind"] == "capture":
            columns, scores, read = captures.capture_counts(spark, window["path"], statistics, score_statistics)
        else:
            columns, read = input_counts(spark, window["input_path"], statistics), {}
            # with outcomes, the window's scores were counted in the same pass as its outcomes
            scores = found["scores"] if outcomes and number == 0 else score_counts(spark, window, score_statistics)
        counted.append({"columns": columns, "scores": scores, "read": read})
    return {"windows": counted, **result}


def retraining_part(spark, training_data: str, window: dict[str, Any], outcomes: str, folder: str) -> int:
    """A new training file as the one text part under ``folder``: the lines of ``training_data`` (a raw
    file, header first) in their order, then the window's untreated customers with their outcomes
    (``untreated_records``); how many customers were added. One partition, sorted within it: the order
    holds on any number of workers."""
    from pyspark.sql import functions as F

    training = Lines(spark, training_data)
    if [name.strip() for name in training.first.split(",")] != list(data.RAW_COLUMNS):
        raise DataValidationError(training_data, "not raw records (the model's header): nothing to add to", 1)
    added_folder = folder.rstrip("/") + ".added"
    added = untreated_records(spark, window, outcomes, added_folder)
    records = spark.read.text(added_folder).withColumn("_id", F.monotonically_increasing_id())
    ordered = training.text.select(F.lit(0).alias("source"), "_id", "value").unionByName(
        records.select(F.lit(1).alias("source"), "_id", "value")
    )
    ordered.repartition(1).sortWithinPartitions("source", "_id").select("value").write.mode("overwrite").text(folder)
    s3_storage().remove_prefix(added_folder + "/")
    return added
