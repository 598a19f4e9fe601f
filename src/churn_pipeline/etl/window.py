"""A scored window's counts, computed where the data is: a pass over its customers (per column: present,
missing, wrong-type and negative values, decile counts against the baseline, category counts), one over
its scores (score deciles, decisions) and, with outcomes, one joining them (counts per decision, outcome
and score bin). What comes back is a few thousand numbers whatever the window's size."""

from __future__ import annotations

from typing import Any

from .. import data, decisions, monitoring, quality
from ..errors import DataValidationError
from .baseline import categorical_counts
from .source import Lines, Source

#: outcome values, read case-insensitively
CHURNED = ("yes", "true", "true.", "1")
STAYED = ("no", "false", "false.", "0")
#: bad outcome lines named in an error, besides the first
BAD_LINES_SHOWN = 5


def _decile(value, edges: list[float]):
    """A value's interval among the 10 the edges cut (a value on an edge goes right), as ``decile_counts``."""
    from pyspark.sql import functions as F

    index = F.lit(0)
    for edge in edges:
        index = index + F.when(value >= F.lit(edge), 1).otherwise(0)
    return index


def input_counts(spark, location: str, statistics: dict[str, Any]) -> dict[str, Any]:
    """``monitoring.window_counts`` of the customers at ``location``, for the baseline's columns."""
    from pyspark.sql import functions as F

    source = Source(spark, location, labelled=False)
    rows = source.rows.select(*source.format.spark_named())
    numeric = [f for f in statistics["features"] if f["inferred_type"] in monitoring.NUMERIC_TYPES]
    categorical = [f["name"] for f in statistics["features"] if f["inferred_type"] == "String"]
    aggregates = [F.count(F.lit(1)).alias("items")]
    for i, feature in enumerate(numeric):
        text = F.trim(F.col(feature["name"]))
        number = text.cast("double")
        present = text != ""
        wrong = present & number.isNull()
        if feature["inferred_type"] == "Integral":
            wrong = wrong | (number != F.floor(number))
        aggregates += [
            F.sum(present.cast("long")).alias(f"present{i}"),
            F.sum(wrong.cast("long")).alias(f"wrong{i}"),
            F.sum((number < 0).cast("long")).alias(f"negative{i}"),
            *[
                F.sum((_decile(number, monitoring.deciles(feature)) == k).cast("long")).alias(f"d{i}_{k}")
                for k in range(10)
            ],
        ]
    figures = rows.agg(*aggregates).first()
    items = int(figures["items"])
    columns: dict[str, Any] = {}
    for i, feature in enumerate(numeric):
        present = int(figures[f"present{i}"] or 0)
        columns[feature["name"]] = {
            "present": present,
            "missing": items - present,
            "mismatched": int(figures[f"wrong{i}"] or 0),
            "negative": int(figures[f"negative{i}"] or 0),
            "deciles": [int(figures[f"d{i}_{k}"] or 0) for k in range(10)],
        }
    for name, values in categorical_counts(rows, categorical).items():
        present = sum(values.values())
        columns[name] = {"present": present, "missing": items - present, "values": values}
    return {"items": items, "columns": columns}


def _scores(spark, window: dict[str, Any]):
    """The window's score file as (identifier, score, decision) rows."""
    from pyspark.sql import functions as F

    frame = spark.read.options(header=True, escape='"').csv(window["scores_path"])
    return frame.select(
        F.col(window["identifier"]).alias("id"),
        F.col(decisions.SCORE).cast("double").alias("score"),
        F.col("decision"),
    )


def score_counts(spark, window: dict[str, Any], score_statistics: dict[str, Any] | None) -> dict[str, Any]:
    """How many customers got each decision and, against the test split's score distribution, the
    window's score decile counts."""
    from pyspark.sql import functions as F

    scores = _scores(spark, window)
    aggregates = [
        F.sum((F.col("decision") == d).cast("long")).alias(f"n{i}") for i, d in enumerate(decisions.DECISIONS)
    ]
    if score_statistics is not None:
        edges = monitoring.deciles(score_statistics["features"][0])
        decile = _decile(F.col("score"), edges)
        aggregates += [F.sum((decile == k).cast("long")).alias(f"d{k}") for k in range(10)]
    figures = scores.agg(F.count(F.lit(1)).alias("items"), *aggregates).first()
    counted = {"items": int(figures["items"])}
    counted["decisions"] = {d: int(figures[f"n{i}"] or 0) for i, d in enumerate(decisions.DECISIONS)}
    if score_statistics is not None:
        counted["deciles"] = [int(figures[f"d{k}"] or 0) for k in range(10)]
    return counted


def checked_outcomes(spark, window: dict[str, Any], outcomes: str):
    """(the window's scores, its outcomes as (id, churned 0/1) rows, the identifiers more than one scored
    row shares), once every outcome line is checked: a bad line, a customer scored once with two
    outcomes, or a customer the window did not score raises, naming the line."""
    from pyspark.sql import functions as F

    lines = Lines(spark, outcomes)
    header = [field.strip() for field in lines.first.split(",")]
    if header != [window["identifier"], "churned"]:
        expected = f"{window['identifier']},churned"
        raise DataValidationError(outcomes, f"the header must be {expected}; got {lines.first.strip()!r}", 1)
    fields = F.split(F.col("value"), ",")
    answer = F.lower(F.trim(fields.getItem(1)))
    rows = lines.text.where((F.col("_id") != 0) & (F.trim("value") != "")).select(
        "_id",
        F.trim(fields.getItem(0)).alias("id"),
        F.when(answer.isin(*CHURNED), 1).when(answer.isin(*STAYED), 0).alias("churned"),
        (F.size(fields) != 2).alias("_wrong_width"),
    )
    _refuse(lines, rows.where(F.col("_wrong_width") | F.col("churned").isNull()), "not <identifier>,<yes|no>")
    scores = _scores(spark, window)
    shared = scores.groupBy("id").agg(F.count(F.lit(1)).alias("n")).where("n > 1").select("id")
    twice = rows.groupBy("id").agg(F.count(F.lit(1)).alias("n")).where("n > 1").join(shared, "id", "left_anti")
    _refuse(lines, rows.join(twice, "id", "left_semi"), "a customer scored once with more than one outcome")
    _refuse(lines, rows.join(scores, "id", "left_anti"), "a customer this window did not score")
    return scores, rows.select("id", "churned"), shared


def outcome_counts(spark, window: dict[str, Any], outcomes: str) -> dict[str, Any]:
    """Outcome counts per (decision, churned, score bin) of the window's customers with an outcome (a bad
    line, a customer twice or a customer the window did not score raises, naming the line); and how many
    scored customers had none, or shared their identifier with another scored row (left out: their
    outcomes cannot be told apart)."""
    from pyspark.sql import functions as F

    scores, rows, shared = checked_outcomes(spark, window, outcomes)
    known = scores.join(shared, "id", "left_anti")
    joined = known.join(rows, "id", "left")
    tally = (
        joined.withColumn("bin", F.least(F.floor(F.col("score") * quality.BINS), F.lit(quality.BINS - 1)))
        .groupBy("decision", "churned", "bin")
        .count()
        .collect()
    )
    counts = quality.empty_counts()
    without = 0
    for row in tally:
        if row["churned"] is None:
            without += row["count"]
        else:
            counts[row["decision"]][row["churned"], int(row["bin"])] += row["count"]
    shared_rows = scores.join(shared, "id", "left_semi").count()
    return {"counts": counts, "without_outcome": int(without), "shared_identifier": int(shared_rows)}


def _refuse(lines: Lines, bad, problem: str) -> None:
    """A DataValidationError naming the first of the ``bad`` rows' lines, if there is one."""
    first = bad.orderBy("_id").limit(BAD_LINES_SHOWN + 1).select("_id").collect()
    if first:
        numbers = lines.line_numbers([row["_id"] for row in first])
        others = ", ".join(map(str, numbers[1:]))
        more = f" (also line{'s' if len(numbers) > 2 else ''} {others})" if others else ""
        raise DataValidationError(lines.location, f"{problem}{more}", numbers[0])


def untreated_records(spark, window: dict[str, Any], outcomes: str, folder: str) -> int:
    """The window's untreated customers (below the cutoff, and the control group) with their outcomes as
    labelled raw records, written as text parts under ``folder``; how many. Offered customers are left
    out: the offer changed their outcome, and a model taught on them would learn the offer's effect."""
    from pyspark.sql import functions as F

    if window["identifier"] != "Phone":
        raise DataValidationError(window["input_path"], "retraining assembles raw customer records", 1)
    scores, rows, shared = checked_outcomes(spark, window, outcomes)
    source = Source(spark, window["input_path"], labelled=False)
    customers = source.rows.select(source.format.spark_identifier(source).alias("id"), *source.format.spark_named())
    untreated = scores.where(F.col("decision").isin(decisions.NO_OFFER, decisions.HOLDOUT)).join(
        shared, "id", "left_anti"
    )
    labelled = customers.join(untreated.select("id"), "id").join(rows, "id")
    label = F.when(F.col("churned") == 1, F.lit("True.")).otherwise(F.lit("False."))
    columns = [label if name == data.LABEL else F.trim(F.col(f"`{name}`")) for name in data.RAW_COLUMNS]
    records = labelled.select(F.concat_ws(",", *columns).alias("value"))
    records.write.mode("overwrite").text(folder)
    return spark.read.text(folder).count()
