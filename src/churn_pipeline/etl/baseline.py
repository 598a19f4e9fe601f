"""The training split's baseline, computed where the data is: one Spark pass over its rows, every column
a group of its own (figures and percentiles of a numeric column; counts per categorical value), shaped
by ``monitoring``."""

from __future__ import annotations

from typing import Any

from .. import monitoring
from .session import changed_settings
from .source import Source
from .split import segment_column

#: percentile_approx's accuracy: a percentile is within 1/ACCURACY of the rows of the exact one
ACCURACY = 10_000
#: Spark's grouping with a sketch sorts the rows of a task once it holds this many groups (128 by default),
#: and adds a group's later rows apart from its first ones; the baseline raises it to every group it can
#: meet, so each column's figures add its rows in order, as a column aggregated alone does
FALLBACK_SETTING = "spark.sql.objectHashAggregate.sortBased.fallbackThreshold"


def training_rows(source: Source, seed: int, cuts, train_segments: list[int]):
    """The rows the ETL writes to the training split, with the format's columns by name."""
    placed = source.rows.select("_fields", source.format.spark_label(), source.order(seed).alias("_order"))
    return placed.where(segment_column(cuts).isin(*train_segments)).select(*source.format.spark_named())


def _stacked(rows, numeric: list[str], categorical: list[str]):
    """One row per row and column: (column's position, its number or its trimmed text). A plan of a few
    aggregates over every column, not eight per column: the JVM plans and runs it in about half the time."""
    from pyspark.sql import functions as F

    def item(position: int, number, text):
        return F.struct(F.lit(position).alias("column"), number.alias("number"), text.alias("text"))

    no_number, no_text = F.lit(None).cast("double"), F.lit(None).cast("string")
    items = [item(i, F.col(name).cast("double"), no_text) for i, name in enumerate(numeric)]
    items += [item(len(numeric) + j, no_number, F.trim(F.col(name))) for j, name in enumerate(categorical)]
    return rows.select(F.explode(F.array(*items)).alias("item")).select("item.*")


def _figures(rows, numeric: list[str], categorical: list[str], groups: int) -> list:
    """Per (column, text): rows, and a numeric column's figures (its text is null)."""
    from pyspark.sql import functions as F

    number = F.col("number")
    # one array of the sketch's percentages: a list would cost a JVM call per value
    percentages = F.array(*[F.lit(q) for q in monitoring.SKETCH_QUANTILES])
    grouped = (
        _stacked(rows, numeric, categorical)
        .groupBy("column", "text")
        .agg(
            F.count(F.lit(1)).alias("items"),
            F.count(number).alias("present"),
            F.sum(number).alias("sum"),
            F.avg(number).alias("mean"),
            F.stddev_pop(number).alias("std_dev"),
            F.min(number).alias("min"),
            F.max(number).alias("max"),
            F.sum(F.when(number != F.floor(number), 1).otherwise(0)).alias("fractional"),
            F.percentile_approx(number, percentages, ACCURACY).alias("quantiles"),
        )
    )
    with changed_settings(rows.sparkSession, {FALLBACK_SETTING: str(max(groups + 1, 128))}):
        return grouped.collect()


def baseline(
    rows, numeric: list[str], categorical: list[str], categories: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """statistics.json of ``rows`` (numeric and categorical columns by name), in one pass; ``categories``:
    the values of each categorical column the rows can hold (the scan's), which bound its groups."""
    columns = [*numeric, *categorical]
    if not columns:
        return monitoring.statistics_document(rows.count(), [])
    figures: dict[str, Any] = {}
    counts: dict[str, dict[str, int]] = {name: {} for name in categorical}
    items = 0
    # a numeric column is one group; a categorical one a group per value, and one for blank and absent
    groups = len(numeric) + sum(len((categories or {}).get(name, ())) + 2 for name in categorical)
    for group in _figures(rows, numeric, categorical, groups):
        name = columns[group["column"]]
        if group["column"] == 0:
            items += group["items"]
        if name in counts:
            if group["text"]:  # a blank or absent value is missing
                counts[name][group["text"]] = int(group["items"])
        else:
            figures[name] = group
    features = []
    for name in numeric:
        found = figures.get(name)
        present = int(found["present"]) if found else 0
        features.append(
            monitoring.numeric_feature(
                name,
                {
                    "present": present,
                    "missing": items - present,
                    **{key: found[key] if found else None for key in ("sum", "mean", "std_dev", "min", "max")},
                    "integral": not (found and found["fractional"]),
                    "quantiles": found["quantiles"] if found else None,
                },
            )
        )
    for name in categorical:
        present = sum(counts[name].values())
        features.append(monitoring.string_feature(name, present, items - present, counts[name]))
    return monitoring.statistics_document(items, features)
