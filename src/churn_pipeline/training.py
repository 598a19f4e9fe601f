"""XGBoost training that writes what a SageMaker built-in XGBoost job writes.

``<output>/<job-name>/output/model.tar.gz`` holding ``xgboost-model`` (saved
with ``Booster.save_model``), and final metrics in DescribeTrainingJob's
``FinalMetricDataList`` shape.

numpy, pandas and xgboost are imported where they are used: the Lambda
handlers import this module for ``metrics_by_name`` and have none of them.
"""

from __future__ import annotations

import json
import os
import tarfile
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import DataValidationError, PipelineError
from .storage import atomic_file
from .tuning import OBJECTIVE_HYPERPARAMETER
from .workspace import TRAINING_THREADS_ENV

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
        if name == OBJECTIVE_HYPERPARAMETER:  # a tuning job's: its metric is evaluated, as the container does
            continue
        try:
            number = float(value)
            booster[name] = int(number) if number.is_integer() and name in ("max_depth",) else number
        except ValueError:
            booster[name] = value
    objective = str(hyperparameters.get(OBJECTIVE_HYPERPARAMETER, "")).partition(":")[2]
    if objective and objective not in booster.setdefault("eval_metric", []):
        booster["eval_metric"].append(objective)
    # a process of its own uses every core, unless the jobs it runs beside share them (a tuning job's)
    booster.setdefault("nthread", int(os.environ.get(TRAINING_THREADS_ENV) or 0) or os.cpu_count() or 1)
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
            raise DataValidationError(
                str(file),
                "the SageMaker XGBoost container may detect the CSV delimiter "
                "from this file and fail (Could not determine delimiter); a channel must "
                "hold only the CSV parts",
            )
        if file.stat().st_size == 0:
            raise DataValidationError(
                str(file), "Could not determine delimiter on line :\nCould not determine delimiter"
            )
    return files


#: bytes of CSV parsed per batch when a channel is streamed
BATCH_BYTES = 64 * 2**20


def iter_channel(location: str | os.PathLike, batch_bytes: int = BATCH_BYTES):
    """Stream a label-first CSV channel (no header): ``(features, labels)`` float32 batches, part by
    part, each of about ``batch_bytes`` of text, so memory never holds the channel whole."""
    import numpy as np
    import pyarrow as pa
    from pyarrow import csv

    for file in channel_files(location):
        with open(file, newline="") as handle:
            width = len(handle.readline().split(","))
        columns = [f"c{i}" for i in range(width)]
        options = csv.ReadOptions(column_names=columns, block_size=batch_bytes)
        convert = csv.ConvertOptions(column_types={name: pa.float32() for name in columns})
        try:
            with csv.open_csv(file, read_options=options, convert_options=convert) as reader:
                for batch in reader:  # features as one C-contiguous block (XGBoost copies strided views)
                    yield (
                        np.column_stack([column.to_numpy(zero_copy_only=False) for column in batch.columns[1:]]),
                        batch.column(0).to_numpy(zero_copy_only=False),
                    )
        except pa.ArrowInvalid as exc:
            raise DataValidationError(str(file), f"is not label-first numeric CSV: {exc}") from None


def read_channel(location: str | os.PathLike):
    """Label-first CSV without header -> (features, labels) as float32 arrays, whole (small data)."""
    import numpy as np

    batches = list(iter_channel(location))
    if not batches:
        raise DataValidationError(str(location), "the channel holds no rows")
    return np.vstack([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def _quantile_matrix(location, scratch: str | os.PathLike, reference=None, max_bin: int = 256):
    """A QuantileDMatrix fed batch by batch: memory is the quantised matrix, about one byte per value,
    not the CSV. XGBoost reads its input several times (shape, sketch, bins): the CSV is parsed once
    and each batch kept in ``scratch`` as a binary array for the later passes."""
    import numpy as np
    import xgboost as xgb

    class ChannelBatches(xgb.DataIter):
        def __init__(self):
            self._saved: list[Path] = []
            self._complete = False
            self._batches = None
            super().__init__(release_data=True)

        def _parse_and_keep(self):
            for index, (features, labels) in enumerate(iter_channel(location)):
                path = Path(scratch) / f"batch-{index}.npz"
                np.savez(path, features=features, labels=labels)
                self._saved.append(path)
                yield features, labels
            self._complete = True

        def _kept(self):
            for path in self._saved:
                with np.load(path) as kept:
                    yield kept["features"], kept["labels"]

        def next(self, input_data) -> bool:
            batch = next(self._batches, None)
            if batch is None:
                return False
            input_data(data=batch[0], label=batch[1])
            return True

        def reset(self) -> None:
            if self._complete:
                self._batches = self._kept()
            else:
                self._saved.clear()
                self._batches = self._parse_and_keep()

    scratch = tempfile.mkdtemp(dir=scratch)  # a folder of its own per matrix
    batches = ChannelBatches()
    batches.reset()
    matrix = xgb.QuantileDMatrix(batches, ref=reference, max_bin=max_bin)
    if matrix.num_row() == 0:
        raise DataValidationError(str(location), "the channel holds no rows")
    return matrix


def train(
    train_location: str | os.PathLike, validation_location: str | os.PathLike, hyperparameters: Mapping[str, str]
):
    """Train a booster on the streamed channels; return it with the last value of each metric per channel."""
    import xgboost as xgb

    booster_params = _booster_params(hyperparameters)
    max_bin = int(booster_params.get("max_bin", 256))
    try:
        with tempfile.TemporaryDirectory(prefix="channels-") as scratch:
            dtrain = _quantile_matrix(train_location, scratch, max_bin=max_bin)
            dval = _quantile_matrix(validation_location, scratch, reference=dtrain, max_bin=max_bin)
    except xgb.core.XGBoostError as exc:
        raise DataValidationError(
            str(validation_location), f"cannot be read beside the train channel: {str(exc).splitlines()[0]}"
        ) from None
    if dtrain.num_col() != dval.num_col():
        raise DataValidationError(
            str(validation_location), f"has {dval.num_col()} features, the train channel has {dtrain.num_col()}"
        )
    try:
        rounds = int(float(hyperparameters.get("num_round", "100")))
        # the metrics are those of the final model: evaluated once, not after every round (AUC sorts
        # every row; on the train channel that was most of the training time)
        booster = xgb.train(booster_params, dtrain, num_boost_round=rounds, verbose_eval=False)
        final = parse_evaluation(booster.eval_set([(dtrain, "train"), (dval, "validation")]))
    except xgb.core.XGBoostError as exc:
        raise PipelineError(f"XGBoost training failed: {exc}") from exc
    return booster, final


def parse_evaluation(line: str) -> dict[str, float]:
    """``[0]\ttrain-error:0.1\tvalidation-auc:0.9`` (XGBoost's evaluation line) -> ``{"train:error": 0.1, ...}``."""
    final = {}
    for field in line.split("\t")[1:]:
        name, _, value = field.rpartition(":")
        channel, _, metric = name.partition("-")
        final[f"{channel}:{metric}"] = float(value)
    return final


def save_model(booster, model_dir: str | os.PathLike) -> Path:
    """Save the booster as ``<model_dir>/xgboost-model`` (UBJSON), what the container leaves in
    ``/opt/ml/model``."""
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / MODEL_FILE
    staged = model_dir / (MODEL_FILE + ".ubj")  # the extension picks UBJSON explicitly
    booster.save_model(str(staged))
    os.replace(staged, path)
    return path


def archive_model_dir(model_dir: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Write ``model.tar.gz`` from a model folder, atomically (what SageMaker uploads from ``/opt/ml/model``)."""
    archive = Path(archive)
    with atomic_file(archive) as out, tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path in sorted(Path(model_dir).iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def save_model_archive(booster, archive: str | os.PathLike) -> Path:
    """Write ``model.tar.gz`` holding ``xgboost-model``, atomically."""
    with tempfile.TemporaryDirectory() as scratch:
        save_model(booster, scratch)
        return archive_model_dir(scratch, archive)


# --- a training job's own process -----------------------------------------------------------------
# The folders a SageMaker training container sees under /opt/ml, relative to a job folder.
HYPERPARAMETERS_FILE = "input/config/hyperparameters.json"
DATA_DIR = "input/data"
MODEL_DIR = "model"
FAILURE_FILE = "output/failure"
METRICS_FILE = "output/metrics.json"


def run_job(job_dir: str | os.PathLike) -> int:
    """Train as the SageMaker XGBoost container does, in its folder layout: hyper-parameters from
    ``input/config``, channels from ``input/data/<channel>``, the model into ``model/``; a failure's
    reason into ``output/failure`` (SageMaker's FailureReason) and the final metrics into
    ``output/metrics.json``. Returns the exit status."""
    job = Path(job_dir)
    (job / "output").mkdir(parents=True, exist_ok=True)
    try:
        hyperparameters = json.loads((job / HYPERPARAMETERS_FILE).read_text())
        booster, final = train(job / DATA_DIR / "train", job / DATA_DIR / "validation", hyperparameters)
        save_model(booster, job / MODEL_DIR)
    except PipelineError as exc:
        (job / FAILURE_FILE).write_text(str(exc))
        return 1
    (job / METRICS_FILE).write_text(json.dumps(final, sort_keys=True))
    return 0


def load_model_dir(model_dir: str | os.PathLike):
    """Load the booster from a model folder (``/opt/ml/model`` once the container extracted the archive)."""
    import xgboost as xgb

    booster = xgb.Booster()
    booster.load_model(str(Path(model_dir) / MODEL_FILE))
    return booster


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


if __name__ == "__main__":
    import sys

    sys.exit(run_job(sys.argv[1]))
