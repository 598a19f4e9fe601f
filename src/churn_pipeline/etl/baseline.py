"""The training split's baseline, computed where the data is: one Spark pass over its rows, every column
a group of its own (figures and percentiles of a numeric column; counts per categorical value), shaped
by ``monitoring``."""

from __future__ import annotations

from typing import Any

from .. import monitoring
from ..features import sql_name
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
    from pyspark.sql import functions as F

    placed = source.rows.select("_fields", source.format.spark_label(), source.order(seed).alias("_order"))
    train = ", ".join(str(int(segment)) for segment in train_segments)
    return placed.where(F.expr(f"{segment_column(cuts)} IN ({train})")).select(*source.format.spark_named())


def _stacked(rows, numeric: list[str], categorical: list[str]):
    """One row per row and column: (column's position, its number or its trimmed text). A plan of a few
    aggregates over every column, not eight per column: the JVM plans and runs it in about half the time."""
    from pyspark.sql import functions as F

    def item(position: int, number: str, text: str) -> str:
        return f"named_struct('column', {position}, 'number', {number}, 'text', {text})"

    no_number, no_text = "CAST(NULL AS DOUBLE)", "CAST(NULL AS STRING)"
    items = [item(i, f"CAST({sql_name(name)} AS DOUBLE)", no_text) for i, name in enumerate(numeric)]
    items += [item(len(numeric) + j, no_number, f"trim({sql_name(name)})") for j, name in enumerate(categorical)]
    return rows.select(F.expr(f"explode(array({', '.join(items)})) AS item")).select("item.*")


def _figures(rows, numeric: list[str], categorical: list[str], groups: int) -> list:
    """Per (column, text): rows, and a numeric column's figures (its text is null)."""
    from pyspark.sql import functions as F

    # one array of the sketch's percentages, as double literals
    percentages = ", ".join(f"{float(q)!r}D" for q in monitoring.SKETCH_QUANTILES)
    figures = [
        "count(1) AS items",
        "count(number) AS present",
        "sum(number) AS `sum`",
        "avg(number) AS mean",
        "stddev_pop(number) AS std_dev",
        "min(number) AS `min`",
        "max(number) AS `max`",
        "sum(CASE WHEN number != floor(number) THEN 1 ELSE 0 END) AS fractional",
        f"percentile_approx(number, array({percentages}), {ACCURACY}) AS quantiles",
    ]
    grouped = _stacked(rows, numeric, categorical).groupBy("column", "text").agg(*[F.expr(f) for f in figures])
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
