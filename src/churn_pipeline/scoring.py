"""Batch scoring: every customer of a file scored where the data is, in input order.

The rows are checked by the run's rules, encoded with the encoding in the
model's manifest and scored on Spark: ``mapInPandas`` hands each task Arrow
batches, and each Python worker loads the model once, so memory does not grow
with the file. Spark's parts, written in input order, are joined into one CSV:

``<identifier>,score,decision[,reason_1,contribution_1,...]``

beside a description of the scoring (``<out stem>.json``: model, cutoff, control
group, counts) and the scored input itself (``<out stem>.input<suffix>``, a hard
link where the file system allows): a score file is a window the monitor reads.

The identifier is ``Phone`` for raw customer records and ``row`` (the line in
the file) for pre-encoded rows; ``score`` is the churn probability (six
decimals), ``decision`` is 1 when the score is above the model's cutoff (an offer),
0 below it, and ``holdout`` for the control group (``decisions.Holdout``), and
``--explain K`` adds the K largest reasons (``explain.top_columns``): a raw
column and its signed contribution in log-odds, positive towards churn.

On AWS the same columns come from a SageMaker Batch Transform
(``pipeline.scoring``): the ETL job, in its scoring mode
(``encode_for_transform``), checks and encodes the rows into
``<identifier>,<held>,<features>`` parts in input order (``held``: the control
group, drawn as here), and the container runs ``container``'s script-mode
functions on them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
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
#: the column after the identifier in the encoded customers: 1 for the control group (``held_column``)
HELD = "_held"
CSV_WRITE = {"escape": '"', "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}


@dataclass(frozen=True)
class ScoredFile:
    path: Path
    rows: int
    offers: int
    holdouts: int
    cutoff: float
    columns: list[str]
    #: the description beside the scores (``decisions.window_files``)
    description: Path


def _output_schema(identifier: str, explain_count: int) -> str:
    """Numbers are formatted by the batch (fixed decimals; Spark would write 1.0E-4)."""
    return ", ".join(
        f"{name} {'long' if name == formats.ROW_NUMBER else 'string'}"
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
    model_path: str,
    manifest: dict[str, Any],
    cutoff: float,
    identifier: str,
    explain_count: int,
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function ``mapInPandas`` runs: (identifier, held, features...) batches -> output rows."""

    def score(batches):
        import numpy as np
        import pandas as pd

        booster = _booster(model_path)
        for batch in batches:
            matrix = batch.iloc[:, 2:].to_numpy(dtype=np.float32)
            columns = decisions.decided(booster, matrix, manifest, cutoff, explain_count)
            columns["decision"] = decisions.decided_with_holdout(columns["decision"], batch.iloc[:, 1].to_numpy())
            yield pd.DataFrame({identifier: batch.iloc[:, 0].to_numpy(), **columns})

    return score


def held_column(holdout: decisions.Holdout, identifier):
    """1 for a customer in ``holdout``'s control group if eligible, else 0: ``decisions.Holdout``'s draw
    (the first 8 bytes of SHA-256 of the salted identifier, unsigned) with Spark's own functions."""
    from pyspark.sql import functions as F

    if not holdout.fraction:
        return F.lit(0)
    digest = F.sha2(F.concat(F.lit(holdout.salt), identifier), 256)
    draw = F.conv(F.substring(digest, 1, 16), 16, 10).cast("decimal(20,0)")
    return F.when(draw < F.lit(Decimal(holdout.threshold)), 1).otherwise(0)


def encoded_customers(
    spark, data_location: str, manifest: dict[str, Any], holdout: decisions.Holdout, storage: Storage | None = None
):
    """(identifier name, Spark frame of identifier, held (``held_column``) and features): every row
    checked by the run's rules (a bad row raises, naming its line), then encoded by the model's
    encoding, in input order."""
    source = Source(spark, data_location, storage, labelled=False)
    encoding = source.format.scoring_encoding(manifest, source.location)
    check_rows(source)  # the run's rules, the run's words; nothing is written for a bad file
    identifier = source.format.identifier
    customer = source.format.spark_identifier(source)
    held = held_column(holdout, customer).alias(HELD)
    return identifier, feature_frame(source, encoding, customer.alias(identifier), held)


def encode_for_transform(
    spark,
    data_location: str,
    manifest: dict[str, Any],
    dest: str,
    holdout: decisions.Holdout,
    storage: Storage | None = None,
) -> dict[str, Any]:
    """The ETL job's scoring mode: ``<identifier>,<held>,<features>`` parts without a header under
    ``dest``, in input order (part names sort as the input), what the scoring Batch Transform reads
    (``held``: 1 for the control group, ``held_column``)."""
    identifier, frame = encoded_customers(spark, data_location, manifest, holdout, storage)
    frame.write.mode("overwrite").options(**CSV_WRITE).csv(dest, header=False)
    (storage or s3_storage()).keep_only_csv_parts(dest)
    return {"identifier": identifier, "features": len(frame.columns) - 2}


def join_parts(folder: Path, header: str, target: Path, explain_count: int) -> dict[str, int]:
    """Spark's CSV parts, in order, into one file with ``header``; how many rows got each decision. The
    decision is read from the right: an identifier may hold a (quoted) comma, reasons and numbers
    do not."""
    tally = {decisions.OFFER: 0, decisions.NO_OFFER: 0, decisions.HOLDOUT: 0}
    from_right = 2 * explain_count + 1
    with atomic_file(target) as out:
        out.write(header.encode() + b"\n")
        for part in sorted(folder.glob("part-*.csv")):
            with open(part, "rb") as lines:
                for line in lines:
                    out.write(line)
                    tally[line.rsplit(b",", from_right)[1].strip().decode()] += 1
    return tally


def capture_input(data_location: str, target: Path) -> None:
    """The scored customers kept beside their scores: a hard link (no copy) where the file system
    allows, a copy where it does not."""
    target.unlink(missing_ok=True)
    try:
        os.link(data_location, target)
    except OSError:
        with atomic_file(target) as out, open(data_location, "rb") as source:
            shutil.copyfileobj(source, out, 1 << 20)


def _description(model, cutoff, out, captured, data_location, identifier, columns, tally, holdout) -> dict:
    """What a score file's ``.json`` says: the model, the decisions and the control group."""
    return {
        **(model or {}),
        "cutoff": cutoff,
        "scores": out.name,
        "input": captured.name,
        "input_source": os.path.abspath(data_location),
        "identifier": identifier,
        "columns": columns,
        "rows": sum(tally.values()),
        "decisions": decisions.named_counts(tally),
        "holdout": holdout.to_dict(),
    }


def score_file(
    spark,
    model_path: str | os.PathLike,
    manifest: dict[str, Any],
    cutoff: float,
    data_location: str,
    out: str | os.PathLike,
    explain_count: int = 0,
    overwrite: bool = False,
    holdout: decisions.Holdout | None = None,
    model: dict[str, Any] | None = None,
) -> ScoredFile:
    """Score every row of ``data_location`` into the CSV ``out``, with its description and captured input
    (see the module's docstring); ``model`` (which model, where its cutoff comes from) goes into the
    description."""
    if "://" in str(out):
        raise PipelineError(
            f"--out {out}: scoring on this machine writes a local file; score into s3:// with "
            "--batch-transform (or the aws backend)"
        )
    out = Path(out)
    holdout = holdout or decisions.Holdout(0.0, "")
    description, captured = decisions.window_files(out)
    if out.suffix == ".json":
        raise PipelineError(f"--out {out}: the scores are a CSV; {out.name} would be taken by their description")
    existing = [path for path in (out, description, captured) if path.exists()]
    if existing and not overwrite:
        raise PipelineError(
            f"{existing[0]} exists; scores are not written over an earlier file (choose another --out, or "
            "pass --overwrite)"
        )
    decisions.check_explain_count(explain_count, manifest)
    identifier, frame = encoded_customers(spark, data_location, manifest, holdout)
    scored = frame.mapInPandas(
        batch_scorer(str(model_path), manifest, cutoff, identifier, explain_count),
        _output_schema(identifier, explain_count),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    columns = decisions.output_columns(identifier, explain_count)
    try:
        scored.write.mode("overwrite").options(**CSV_WRITE).csv(str(staging / "parts"), header=False)
        tally = join_parts(staging / "parts", ",".join(columns), out, explain_count)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    capture_input(data_location, captured)
    document = _description(model, cutoff, out, captured, data_location, identifier, columns, tally, holdout)
    with atomic_file(description) as written:
        written.write(json.dumps(document, indent=2).encode() + b"\n")
    return ScoredFile(
        out, document["rows"], tally[decisions.OFFER], tally[decisions.HOLDOUT], cutoff, columns, description
    )


# --- Batch Transform (aws): what the container runs, and how SageMaker joins its answers ------------
