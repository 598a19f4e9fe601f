"""Every row of an input checked on Spark by its format's rules, in one parallel pass; a bad file
raises a DataValidationError naming the file, line and column of its first bad rows."""

from __future__ import annotations

import math

from .. import data
from ..errors import DataValidationError
from ..storage import Storage
from .source import Source

#: bad rows named in a validation error, besides the first
BAD_ROWS_SHOWN = 5


#: the rows of each class are counted in this many buckets of their hash, so that exact split cut values
#: are found by fetching only the buckets a cut falls in (``split.cut_values``)
ORDER_BUCKETS = 1024


def bucket(order):
    """A row's bucket of ``ORDER_BUCKETS`` by its order (a seeded hash)."""
    from pyspark.sql import functions as F

    return F.shiftright(order, 64 - int(math.log2(ORDER_BUCKETS))) + F.lit(ORDER_BUCKETS // 2)  # 0 .. buckets-1


#: orders of each (class, bucket): a small input's, kept by the scan, spare the split a pass to fetch them
Orders = dict[tuple[int, int], list[int]]


def scan(
    source: Source, seed: int, keep_orders: bool = False
) -> tuple[data.DataSummary, dict[int, dict[int, int]], Orders | None]:
    """One parallel pass: every row checked by its format's rules (a DataValidationError naming the
    file, line and column of the first bad rows), rows counted per class and hash bucket, categories
    collected; with ``keep_orders`` (a small input), every row's order, sorted per class and bucket.
    Only a bad file pays for more: a pass to number the first bad rows' lines."""
    from pyspark.sql import functions as F

    bad, positive, categories = source.format.spark_problems()
    order = source.order(seed)
    rows = source.rows.select(
        "_id",
        "value",
        bad.alias("_bad_row"),
        positive.alias("label"),
        bucket(order).alias("_bucket"),
        *([order.alias("_order")] if keep_orders else []),
        *[value.alias(name) for name, value in categories.items()],
    )
    by_bucket = (
        rows.groupBy("label", "_bucket")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("_bad_row").cast("long")).alias("bad"),
            *[F.collect_set(F.when(~F.col("_bad_row"), F.col(name))).alias(name) for name in categories],
            *([F.collect_list("_order").alias("_orders")] if keep_orders else []),
        )
        .collect()
    )
    bad_rows = sum(group["bad"] for group in by_bucket)
    if bad_rows:
        raise bad_rows_error(source, rows, bad_rows)
    counts: dict[int, dict[int, int]] = {}
    for group in by_bucket:
        counts.setdefault(group["label"], {})[group["_bucket"]] = group["rows"]
    summary = data.DataSummary(
        source.location,
        source.format.name,
        sum(group["rows"] for group in by_bucket),
        source.format.columns,
        sum(counts.get(1, {}).values()),
        {name: sorted({value for group in by_bucket for value in group[name]}) for name in categories},
    )
    orders = {(g["label"], g["_bucket"]): sorted(g["_orders"]) for g in by_bucket} if keep_orders else None
    return data.check_classes(summary), counts, orders


def bad_rows_error(source: Source, rows, bad_rows: int) -> DataValidationError:
    """The error naming the first bad rows of ``rows`` (flagged in ``_bad_row``) by their lines, in the
    words of the Python checks."""
    first_bad = rows.where("_bad_row").orderBy("_id").limit(BAD_ROWS_SHOWN + 1).select("_id", "value").collect()
    lines = source.line_numbers([row["_id"] for row in first_bad])
    error = source.format.bad_line_error(first_bad[0]["value"], source.location, lines[0])
    if bad_rows > 1:
        more = ", ".join(str(line) for line in lines[1:BAD_ROWS_SHOWN])
        error = DataValidationError(
            source.location,
            f"{error.problem} ({bad_rows:,} bad rows in all; the next at line{'s' if len(lines) > 2 else ''} {more})",
            error.line,
            error.column,
        )
    return error


def check_rows(source: Source) -> None:
    """Every row checked by its format's rules in one parallel pass, without counting classes (the
    customers a model scores)."""
    bad, _, _ = source.format.spark_problems()
    rows = source.rows.select("_id", "value", bad.alias("_bad_row"))
    bad_rows = rows.where("_bad_row").count()
    if bad_rows:
        raise bad_rows_error(source, rows, bad_rows)


def validate(spark, source: str, storage: Storage | None = None) -> data.DataSummary:
    """Check every row of ``source`` on Spark (so on Glue's workers in the cloud) by its format's
    rules; raise DataValidationError naming the file, line and column of the first bad rows."""
    return scan(Source(spark, source, storage), seed=0)[0]
