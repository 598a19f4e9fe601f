"""Batch scoring: every customer of a file scored where the data is, in input order.

The rows are checked by the run's rules, encoded with the transform in the
model's manifest and scored on Spark: ``mapInPandas`` hands each task Arrow
batches, and each Python worker loads the model once, so memory does not grow
with the file. Spark's parts, written in input order, are joined into one CSV:

``<identifier>,score,decision[,reason_1,contribution_1,...]``

The identifier is ``Phone`` for raw customer records and ``row`` (the line in
the file) for pre-encoded rows; ``score`` is the churn probability (six
decimals), ``decision`` is 1 when the score is above the model's cutoff, and
``--explain K`` adds the K largest reasons (``explain.top_columns``): a raw
column and its signed contribution in log-odds, positive towards churn.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import data, etl, explain, features
from .errors import DataValidationError, PipelineError

#: the identifier column of pre-encoded input: the row's line in the file
ROW_NUMBER = "row"
#: decimals of the written score
SCORE_DECIMALS = 6


@dataclass(frozen=True)
class ScoredFile:
    path: Path
    rows: int
    offers: int
    cutoff: float
    columns: list[str]


def output_columns(identifier: str, explain_count: int) -> list[str]:
    reasons = [name for i in range(1, explain_count + 1) for name in (f"reason_{i}", f"contribution_{i}")]
    return [identifier, "score", "decision", *reasons]


def _output_schema(identifier: str, explain_count: int) -> str:
    """Numbers are formatted by the batch (fixed decimals; Spark would write 1.0E-4)."""
    return ", ".join(f"{name} {'long' if name == ROW_NUMBER else 'int' if name == 'decision' else 'string'}"
                     for name in output_columns(identifier, explain_count))


def _decimals(values):
    import numpy as np

    return np.char.mod(f"%.{SCORE_DECIMALS}f", values.astype(np.float64))


_BOOSTERS: dict[str, Any] = {}


def _booster(model_path: str):
    """The model, loaded once per Python worker (Spark reuses workers across tasks)."""
    if model_path not in _BOOSTERS:
        from .training import load_model_archive

        booster = load_model_archive(model_path)
        booster.set_param({"nthread": 1})  # Spark runs one task per core
        _BOOSTERS[model_path] = booster
    return _BOOSTERS[model_path]


def batch_scorer(model_path: str, manifest: dict[str, Any], cutoff: float, identifier: str,
                 explain_count: int) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function ``mapInPandas`` runs: (identifier, features...) batches -> output rows."""
    columns = explain.reason_columns(manifest)

    def score(batches):
        import numpy as np
        import pandas as pd

        names = np.asarray(columns, dtype=object)
        booster = _booster(model_path)
        for batch in batches:
            matrix = batch.iloc[:, 1:].to_numpy(dtype=np.float32)
            scores = booster.inplace_predict(matrix, validate_features=False) if len(batch) else np.zeros(0)
            out = pd.DataFrame({identifier: batch.iloc[:, 0].to_numpy(),
                                "score": _decimals(scores),
                                "decision": (scores > cutoff).astype(np.int32)})
            if explain_count and len(batch):
                order, values = explain.top_columns(explain.contributions(booster, matrix, manifest)[0],
                                                    explain_count)
                for i in range(order.shape[1]):
                    out[f"reason_{i + 1}"] = names[order[:, i]]
                    out[f"contribution_{i + 1}"] = _decimals(values[:, i])
            yield out

    return score


def _transform_for(source: etl.Source, manifest: dict[str, Any]) -> features.Transform:
    """The manifest's transform for raw records; by position for pre-encoded rows of the model's width."""
    trained_on_raw = manifest.get("format", "raw") == "raw"
    if source.format == "raw":
        if not trained_on_raw:
            raise DataValidationError(source.location, "raw customer records, but the model was trained on "
                                      "pre-encoded rows: score rows encoded the same way", line=1)
        return manifest["transform"]
    if source.width - 1 != len(manifest["features"]):
        raise DataValidationError(source.location, f"pre-encoded rows have {source.width - 1} features after "
                                  f"the label, the model takes {len(manifest['features'])}", line=1)
    return features.encoded_transform(source.width)


def join_parts(folder: Path, header: str, target: Path) -> tuple[int, int]:
    """Spark's CSV parts, in order, into one file with ``header``; (rows, decisions to offer)."""
    rows = offers = 0
    with open(target, "wb") as out:
        out.write(header.encode() + b"\n")
        for part in sorted(folder.glob("part-*.csv")):
            with open(part, "rb") as lines:
                for line in lines:
                    out.write(line)
                    rows += 1
                    offers += line.split(b",", 3)[2].strip() == b"1"
    return rows, offers


def score_file(spark, model_path: str | os.PathLike, manifest: dict[str, Any], cutoff: float, data_location: str,
               out: str | os.PathLike, explain_count: int = 0, overwrite: bool = False) -> ScoredFile:
    """Score every row of ``data_location`` into the CSV ``out`` (see the module's docstring)."""
    from pyspark.sql import functions as F

    out = Path(out)
    if out.exists() and not overwrite:
        raise PipelineError(f"{out} exists; scores are not written over an earlier file (choose another --out, "
                            "or pass --overwrite)")
    if explain_count < 0:
        raise PipelineError(f"--explain must be 0 or more; got {explain_count}")
    source = etl.Source(spark, data_location, labelled=False)
    transform_spec = _transform_for(source, manifest)
    etl.check_rows(source)  # the run's rules, the run's words; nothing is written for a bad file
    if source.format == "raw":
        identifier, key = data.IDENTIFIER[0], F.trim(F.col(f"`{data.IDENTIFIER[0]}`"))
    else:
        identifier, key = ROW_NUMBER, source.line_number(source.partition_offsets())
    frame = etl.feature_frame(source, transform_spec, key.alias(identifier))
    scored = frame.mapInPandas(batch_scorer(str(model_path), manifest, cutoff, identifier, explain_count),
                               _output_schema(identifier, explain_count))
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        scored.write.mode("overwrite").csv(str(staging / "parts"), header=False)
        columns = output_columns(identifier, explain_count)
        partial = staging / out.name
        rows, offers = join_parts(staging / "parts", ",".join(columns), partial)
        os.replace(partial, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ScoredFile(out, rows, offers, cutoff, columns)
