"""The training split's baseline, computed where the data is: two Spark passes over its rows (figures
per numeric column with its percentiles; counts per categorical value), shaped by ``monitoring``."""

from __future__ import annotations

from typing import Any

from .. import monitoring
from .source import Source
from .split import segment_column

#: percentile_approx's accuracy: a percentile is within 1/ACCURACY of the rows of the exact one
ACCURACY = 10_000


def _numeric_aggregates(numeric: list[str]) -> list:
    from pyspark.sql import functions as F

    aggregates = [F.count(F.lit(1)).alias("items")]
    # one array of the sketch's percentages for every column: a list would cost a JVM call per value per column
    percentages = F.array(*[F.lit(q) for q in monitoring.SKETCH_QUANTILES])
    for i, name in enumerate(numeric):
        value = F.col(name).cast("double")
        aggregates += [
            F.count(value).alias(f"present{i}"),
            F.sum(value).alias(f"sum{i}"),
            F.avg(value).alias(f"mean{i}"),
            F.stddev_pop(value).alias(f"std{i}"),
            F.min(value).alias(f"min{i}"),
            F.max(value).alias(f"max{i}"),
            F.sum(F.when(value != F.floor(value), 1).otherwise(0)).alias(f"fractional{i}"),
            F.percentile_approx(value, percentages, ACCURACY).alias(f"quantiles{i}"),
        ]
    return aggregates


def training_rows(source: Source, seed: int, cuts, train_segments: list[int]):
    """The rows the ETL writes to the training split, with the format's columns by name."""
    placed = source.rows.select("_fields", source.format.spark_label(), source.order(seed).alias("_order"))
    return placed.where(segment_column(cuts).isin(*train_segments)).select(*source.format.spark_named())


def baseline(rows, numeric: list[str], categorical: list[str]) -> dict[str, Any]:
    """statistics.json of ``rows`` (numeric and categorical columns by name)."""
    figures = rows.agg(*_numeric_aggregates(numeric)).first()
    items = int(figures["items"])
    features = []
    for i, name in enumerate(numeric):
        present = int(figures[f"present{i}"])
        features.append(
            monitoring.numeric_feature(
                name,
                {
                    "present": present,
                    "missing": items - present,
                    "sum": figures[f"sum{i}"],
                    "mean": figures[f"mean{i}"],
                    "std_dev": figures[f"std{i}"],
                    "min": figures[f"min{i}"],
                    "max": figures[f"max{i}"],
                    "integral": not figures[f"fractional{i}"],
                    "quantiles": figures[f"quantiles{i}"],
                },
            )
        )
    counts = categorical_counts(rows, categorical)
    for name in categorical:
        present = sum(counts[name].values())
        features.append(monitoring.string_feature(name, present, items - present, counts[name]))
    return monitoring.statistics_document(items, features)


def categorical_counts(rows, categorical: list[str]) -> dict[str, dict[str, int]]:
    """How often each present (non-blank) value of each categorical column occurs, in one pass."""
    from pyspark.sql import functions as F

    counts: dict[str, dict[str, int]] = {name: {} for name in categorical}
    if not categorical:
        return counts
    pairs = F.explode(
        F.array(
            *[F.struct(F.lit(j).alias("column"), F.trim(F.col(n)).alias("value")) for j, n in enumerate(categorical)]
        )
    )
    found = rows.select(pairs.alias("pair")).select("pair.column", "pair.value").where(F.col("value") != "")
    for row in found.groupBy("column", "value").count().collect():
        counts[categorical[row["column"]]][row["value"]] = int(row["count"])
    return counts
