"""An endpoint's data capture as a window of customers, read where it lies: every JSON line of the
capture files under a folder (SageMaker's layout, ``capture.CaptureWriter``'s too), each captured
request of raw records (``text/csv; header=present``) exploded into its rows by its own header, each row
beside the score the endpoint answered for it (CSV, JSON or JSON Lines answers)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote, urlparse

from .. import decisions
from ..errors import DataValidationError, PipelineError
from ..s3 import s3_storage
from ..storage import Storage
from .window import column_counts, score_aggregates

#: the fields of a capture line the monitor reads (row SM-DATA-CAPTURE)
SIDE = "struct<observedContentType: string, mode: string, data: string, encoding: string>"
CAPTURE_SCHEMA = f"captureData struct<endpointInput: {SIDE}, endpointOutput: {SIDE}>, eventVersion string"
CAPTURE_FILES = "*.jsonl"


def _text(side):
    """A captured body as text: base64 decoded when SageMaker encoded it so."""
    from pyspark.sql import functions as F

    return F.when(side.encoding == "BASE64", F.unbase64(side.data).cast("string")).otherwise(side.data)


def _lines(text):
    from pyspark.sql import functions as F

    return F.filter(F.split(text, "\r?\n"), lambda line: F.trim(line) != "")


def _answered_score(output, kind, position):
    """The score the endpoint answered for the row at ``position`` (0-based) of its request."""
    from pyspark.sql import functions as F

    lines = _lines(_text(output))
    predictions = F.from_json(_text(output), "struct<predictions: array<struct<score: double>>>").predictions
    return (
        F.when(kind.startswith("text/csv"), F.split(F.element_at(lines, position + 1), ",").getItem(0).cast("double"))
        .when(
            kind.startswith("application/jsonlines"),
            F.get_json_object(F.element_at(lines, position + 1), "$.score").cast("double"),
        )
        .when(kind.startswith("application/json"), F.element_at(predictions, position + 1).score)
    )


def capture_rows(spark, folder: str, columns: list[str]) -> tuple[Any, dict[str, int]]:
    """(the captured raw records as text columns ``columns`` and their ``score``, how many requests were
    read and how many held raw records). A line that is not a capture record raises, naming its file and
    line; requests of encoded rows (not raw records) are counted, not compared."""
    from pyspark.sql import functions as F

    storage = s3_storage()
    if not any(name.endswith(CAPTURE_FILES[1:]) for name in storage.objects_under(folder.rstrip("/") + "/")):
        raise PipelineError(f"{folder}: no capture files ({CAPTURE_FILES}) under it")
    text = spark.read.options(recursiveFileLookup="true", pathGlobFilter=CAPTURE_FILES).text(folder)
    parsed = text.select(F.input_file_name().alias("file"), F.from_json("value", CAPTURE_SCHEMA).alias("c"))
    request, answer = F.col("c.captureData.endpointInput"), F.col("c.captureData.endpointOutput")
    sound = request.data.isNotNull() & answer.data.isNotNull()
    kind_in = F.lower(F.regexp_replace(request.observedContentType, " ", ""))
    raw = sound & kind_in.startswith("text/csv") & kind_in.contains("header=present")
    summary = parsed.agg(
        F.count(F.lit(1)).alias("requests"),
        F.sum((~F.coalesce(sound, F.lit(False))).cast("long")).alias("bad"),
        F.sum(F.coalesce(raw, F.lit(False)).cast("long")).alias("raw"),
        F.min(F.when(~F.coalesce(sound, F.lit(False)), F.col("file"))).alias("bad_file"),
    ).first()
    if summary["bad"]:
        _raise_bad_line(storage, summary["bad_file"], summary["bad"])
    lines = _lines(_text(request))
    header = F.transform(F.split(F.element_at(lines, 1), ","), lambda name: F.trim(name))
    kind_out = F.lower(F.regexp_replace(answer.observedContentType, " ", ""))
    records = parsed.where(raw).select(
        header.alias("header"),
        F.posexplode(F.slice(lines, 2, F.greatest(F.size(lines) - 1, F.lit(1)))).alias("position", "row"),
        answer.alias("answer"),
        kind_out.alias("kind"),
    )
    fields = F.split("row", ",")
    by_name = F.when(F.size(fields) == F.size("header"), F.map_from_arrays("header", fields))
    rows = records.select(
        *[F.element_at(by_name, name).alias(name) for name in columns],
        _answered_score(F.col("answer"), F.col("kind"), F.col("position")).alias(decisions.SCORE),
    )
    return rows, {"requests": int(summary["requests"]), "raw_requests": int(summary["raw"] or 0)}


def _raise_bad_line(storage: Storage, file: str, bad: int) -> None:
    """The first line of ``file`` (as Spark names it: ``file:`` or ``s3://``) that is not a capture record
    (the file is an hour's capture: small)."""
    location = unquote(file) if file.startswith("s3://") else unquote(urlparse(file).path)  # Spark quotes keys
    lines = storage.lines(location)
    try:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
                record["captureData"]["endpointInput"]["data"]  # noqa: B018
                record["captureData"]["endpointOutput"]["data"]  # noqa: B018
            except (ValueError, KeyError, TypeError):
                raise DataValidationError(
                    location, f"not a data capture record ({bad:,} such lines in the window)", number
                ) from None
    finally:
        lines.close()
    raise DataValidationError(location, f"{bad:,} lines are not data capture records")


def capture_counts(spark, folder: str, statistics: dict[str, Any], score_statistics: dict[str, Any] | None):
    """(``monitoring.window_counts`` of the captured customers, their score counts, what was read)."""
    columns = [feature["name"] for feature in statistics["features"]]
    rows, read = capture_rows(spark, folder, columns)
    rows = rows.cache()  # read once: the captures are parsed for the columns and for the scores
    try:
        counted = column_counts(rows.drop(decisions.SCORE), statistics)
        scored = score_aggregates(rows, score_statistics)
    finally:
        rows.unpersist()
    return counted, scored, read
