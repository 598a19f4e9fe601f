"""XGBoost training that writes what a SageMaker built-in XGBoost job writes.

``<output>/<job-name>/output/model.tar.gz`` holding ``xgboost-model`` (saved
with ``Booster.save_model``), and final metrics in DescribeTrainingJob's
``FinalMetricDataList`` shape.

numpy, pandas and xgboost are imported where they are used: the Lambda
handlers import this module for ``metrics_by_name`` and have none of them.
"""

from __future__ import annotations

import os
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Mapping

from .errors import DataValidationError, PipelineError

MODEL_FILE = "xgboost-model"
#: hyper-parameters that are not XGBoost booster parameters
NON_BOOSTER = {"num_round"}
EXTRA_METRICS = ("error", "auc", "logloss")


def hyperparameters_from(params: Mapping[str, Any]) -> dict[str, str]:
    """The SageMaker hyper-parameter map (all strings) from pipeline parameters."""
    metrics = [m for m in [params["eval_metric"], *EXTRA_METRICS] if m]
    return {
        "max_depth": str(params["max_depth"]),
        "eta": str(params["eta"]),
        "gamma": str(params["gamma"]),
        "min_child_weight": str(params["min_child_weight"]),
        "subsample": str(params["subsample"]),
        "objective": params["objective"],
        "eval_metric": ",".join(dict.fromkeys(metrics)),
        "num_round": str(params["num_round"]),
    }


def _booster_params(hyperparameters: Mapping[str, str]) -> dict[str, Any]:
    booster: dict[str, Any] = {}
    for name, value in hyperparameters.items():
        if name in NON_BOOSTER:
            continue
        if name == "eval_metric":
            booster[name] = [m for m in str(value).split(",") if m]
            continue
        try:
            number = float(value)
            booster[name] = int(number) if number.is_integer() and name in ("max_depth",) else number
        except ValueError:
            booster[name] = value
    booster.setdefault("nthread", os.cpu_count() or 1)
    booster.setdefault("seed", 0)
    return booster


def channel_files(location: str | os.PathLike) -> list[Path]:
    """The data files of a channel, checked as the SageMaker XGBoost container (3.0-5) checks them.

    A file the container could not read fails here with the container's own
    error: a hidden file anywhere, an empty channel, an empty file (no delimiter
    to detect), or a ``_`` file such as Spark's ``_SUCCESS`` or S3's
    ``_$folder$`` (the container may take it as the file to detect the CSV
    delimiter from, so the job would fail at random).
    """
    path = Path(location)
    if path.is_file():
        return [path]
    files = sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if any(part.startswith(".") for part in file.relative_to(path).parts):
            raise DataValidationError(str(file), "Hidden file found in the data path! Remove that before training.")
    if not files or sum(f.stat().st_size for f in files) == 0:
        raise DataValidationError(str(location), f"No data in training channel path {location}")
    for file in files:
        if file.name.startswith("_"):
            raise DataValidationError(str(file), "the SageMaker XGBoost container may detect the CSV delimiter "
                                      "from this file and fail (Could not determine delimiter); a channel must "
                                      "hold only the CSV parts")
        if file.stat().st_size == 0:
            raise DataValidationError(str(file), "Could not determine delimiter on line :\n"
                                      "Could not determine delimiter")
    return files


def read_channel(location: str | os.PathLike):
    """Label-first CSV without header -> (features, labels) as float32 arrays."""
    import numpy as np
    import pandas as pd

    frames = [pd.read_csv(f, header=None) for f in channel_files(location)]
    if not frames:
        raise DataValidationError(str(location), "the channel holds no rows")
    matrix = pd.concat(frames, ignore_index=True).to_numpy(dtype=np.float32)
    return matrix[:, 1:], matrix[:, 0]


def train(train_location: str | os.PathLike, validation_location: str | os.PathLike,
          hyperparameters: Mapping[str, str]):
    """Train a booster; return it with the last value of each metric per channel."""
    import xgboost as xgb

    x_train, y_train = read_channel(train_location)
    x_val, y_val = read_channel(validation_location)
    if x_train.shape[1] != x_val.shape[1]:
        raise DataValidationError(str(validation_location),
                                  f"has {x_val.shape[1]} features, the train channel has {x_train.shape[1]}")
    dtrain = xgb.DMatrix(x_train, label=y_train)
    dval = xgb.DMatrix(x_val, label=y_val)
    history: dict[str, dict[str, list[float]]] = {}
    try:
        rounds = int(float(hyperparameters.get("num_round", "100")))
        booster = xgb.train(_booster_params(hyperparameters), dtrain, num_boost_round=rounds,
                            evals=[(dtrain, "train"), (dval, "validation")], evals_result=history,
                            verbose_eval=False)
    except xgb.core.XGBoostError as exc:
        raise PipelineError(f"XGBoost training failed: {exc}") from exc
    final = {f"{channel}:{metric}": float(values[-1])
             for channel, metrics in history.items() for metric, values in metrics.items()}
    return booster, final


def save_model_archive(booster, archive: str | os.PathLike) -> Path:
    """Write ``model.tar.gz`` holding ``xgboost-model``, atomically."""
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        model_path = os.path.join(scratch, MODEL_FILE + ".ubj")  # the extension picks UBJSON explicitly
        booster.save_model(model_path)
        tmp = archive.with_name(archive.name + ".partial")
        with tarfile.open(tmp, "w:gz") as tar:
            tar.add(model_path, arcname=MODEL_FILE)
        os.replace(tmp, archive)
    return archive


def load_model_archive(archive: str | os.PathLike):
    """Load the booster from a ``model.tar.gz`` as the SageMaker container does."""
    import xgboost as xgb

    with tarfile.open(archive, "r:gz") as tar:
        member = tar.getmember(MODEL_FILE)
        raw = tar.extractfile(member).read()
    booster = xgb.Booster()
    booster.load_model(bytearray(raw))
    return booster


def final_metric_data_list(final: Mapping[str, float], timestamp) -> list[dict[str, Any]]:
    return [{"MetricName": name, "Value": value, "Timestamp": timestamp} for name, value in sorted(final.items())]


def metrics_by_name(final_metric_data_list: list[Mapping[str, Any]]) -> dict[str, float]:
    """FinalMetricDataList -> {name: value}, with ``<channel>:accuracy`` derived from ``error``."""
    metrics = {m["MetricName"]: float(m["Value"]) for m in final_metric_data_list}
    for name, value in list(metrics.items()):
        channel, _, metric = name.partition(":")
        if metric == "error":
            metrics[f"{channel}:accuracy"] = 1.0 - value
    return metrics
