"""Batch scoring: every customer of a file scored where the data is, in input order.

The rows are checked by the run's rules, encoded with the encoding in the
model's manifest and scored on Spark: ``mapInPandas`` hands each task Arrow
batches, and each Python worker loads the model once, so memory does not grow
with the file. Spark's parts, written in input order, are joined into one CSV:

``<identifier>,score,decision[,reason_1,contribution_1,...]``

The identifier is ``Phone`` for raw customer records and ``row`` (the line in
the file) for pre-encoded rows; ``score`` is the churn probability (six
decimals), ``decision`` is 1 when the score is above the model's cutoff, and
``--explain K`` adds the K largest reasons (``explain.top_columns``): a raw
column and its signed contribution in log-odds, positive towards churn.

On AWS the same columns come from a SageMaker Batch Transform
(``pipeline.scoring``): the ETL job, in its scoring mode
(``encode_for_transform``), checks and encodes the rows into
``<identifier>,<features>`` parts in input order, and the container runs
``container``'s script-mode functions on them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import decisions, formats, training
from .errors import PipelineError
from .etl.encoding import feature_frame
from .etl.source import Source
from .etl.validation import check_rows
from .s3 import s3_storage
from .storage import Storage, atomic_file

#: Spark's CSV writes as RFC 4180 (a quote in a field doubled, as Batch Transform and Python's csv read
#: it), values as they are (Spark trims white space by default)
CSV_WRITE = {"escape": '"', "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}


@dataclass(frozen=True)
class ScoredFile:
    path: Path
    rows: int
    offers: int
    cutoff: float
    columns: list[str]


def _output_schema(identifier: str, explain_count: int) -> str:
    """Numbers are formatted by the batch (fixed decimals; Spark would write 1.0E-4)."""
    return ", ".join(
        f"{name} {'long' if name == formats.ROW_NUMBER else 'int' if name == 'decision' else 'string'}"
        for name in decisions.output_columns(identifier, explain_count)
    )


_BOOSTERS: dict[str, Any] = {}


def _booster(model_path: str):
    """The model, loaded once per Python worker (Spark reuses workers across tasks)."""
    if model_path not in _BOOSTERS:
        booster = training.load_model_archive(model_path)
        booster.set_param({"nthread": 1})  # Spark runs one task per core
        _BOOSTERS[model_path] = booster
    return _BOOSTERS[model_path]


def batch_scorer(
    model_path: str, manifest: dict[str, Any], cutoff: float, identifier: str, explain_count: int
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function ``mapInPandas`` runs: (identifier, features...) batches -> output rows."""

    def score(batches):
        import numpy as np
        import pandas as pd

        booster = _booster(model_path)
        for batch in batches:
            matrix = batch.iloc[:, 1:].to_numpy(dtype=np.float32)
            yield pd.DataFrame(
                {
                    identifier: batch.iloc[:, 0].to_numpy(),
                    **decisions.decided(booster, matrix, manifest, cutoff, explain_count),
                }
            )

    return score


def encoded_customers(spark, data_location: str, manifest: dict[str, Any], storage: Storage | None = None):
    """(identifier name, Spark frame of identifier and features): every row checked by the run's rules
    (a bad row raises, naming its line), then encoded by the model's encoding, in input order."""
    source = Source(spark, data_location, storage, labelled=False)
    encoding = source.format.scoring_encoding(manifest, source.location)
    check_rows(source)  # the run's rules, the run's words; nothing is written for a bad file
    identifier = source.format.identifier
    return identifier, feature_frame(source, encoding, source.format.spark_identifier(source).alias(identifier))


def encode_for_transform(
    spark, data_location: str, manifest: dict[str, Any], dest: str, storage: Storage | None = None
) -> dict[str, Any]:
    """The ETL job's scoring mode: ``<identifier>,<features>`` parts without a header under ``dest``,
    in input order (part names sort as the input), what the scoring Batch Transform reads."""
    identifier, frame = encoded_customers(spark, data_location, manifest, storage)
    frame.write.mode("overwrite").options(**CSV_WRITE).csv(dest, header=False)
    (storage or s3_storage()).keep_only_csv_parts(dest)
    return {"identifier": identifier, "features": len(frame.columns) - 1}


def join_parts(folder: Path, header: str, target: Path, explain_count: int) -> tuple[int, int]:
    """Spark's CSV parts, in order, into one file with ``header``; (rows, decisions to offer). The
    decision is read from the right: an identifier may hold a (quoted) comma, reasons and numbers
    do not."""
    rows = offers = 0
    from_right = 2 * explain_count + 1
    with atomic_file(target) as out:
        out.write(header.encode() + b"\n")
        for part in sorted(folder.glob("part-*.csv")):
            with open(part, "rb") as lines:
                for line in lines:
                    out.write(line)
                    rows += 1
                    offers += line.rsplit(b",", from_right)[1].strip() == b"1"
    return rows, offers


def score_file(
    spark,
    model_path: str | os.PathLike,
    manifest: dict[str, Any],
    cutoff: float,
    data_location: str,
    out: str | os.PathLike,
    explain_count: int = 0,
    overwrite: bool = False,
) -> ScoredFile:
    """Score every row of ``data_location`` into the CSV ``out`` (see the module's docstring)."""
    if "://" in str(out):
        raise PipelineError(
            f"--out {out}: scoring on this machine writes a local file; score into s3:// with "
            "--batch-transform (or the aws backend)"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise PipelineError(
            f"{out} exists; scores are not written over an earlier file (choose another --out, or pass --overwrite)"
        )
    decisions.check_explain_count(explain_count, manifest)
    identifier, frame = encoded_customers(spark, data_location, manifest)
    scored = frame.mapInPandas(
        batch_scorer(str(model_path), manifest, cutoff, identifier, explain_count),
        _output_schema(identifier, explain_count),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        scored.write.mode("overwrite").options(**CSV_WRITE).csv(str(staging / "parts"), header=False)
        columns = decisions.output_columns(identifier, explain_count)
        rows, offers = join_parts(staging / "parts", ",".join(columns), out, explain_count)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ScoredFile(out, rows, offers, cutoff, columns)


# --- Batch Transform (aws): what the container runs, and how SageMaker joins its answers ------------
