"""The stratified, seeded split: exact cut values of a seeded hash per class, without ranking rows.

A row's split and part follow from its percent rank in its class's order, so
they are the same for the same data and seed whatever the partitioning. Ranks
are never computed row by row (a window over a class is one task): exact cut
values of the hash come from bucket counts instead.
"""

from __future__ import annotations

import bisect
import math

from ..errors import EnvironmentProblem
from ..features import sql_text
from ..storage import Storage
from .source import Source
from .validation import Orders, bucket

#: a split is written as CSV parts of about this many bytes of input each, in parallel: SageMaker reads
#: every part of a channel (or, with ShardedByS3Key, a share of the parts on each instance)
PART_BYTES = 128 * 2**20


def _spark_hash_of_long(value: int, seed: int = 42) -> int:
    """Spark's ``hash`` of a long (Murmur3 x86 32-bit of its two halves, seed 42), as a signed int."""

    def rotate(x: int, bits: int) -> int:
        return ((x << bits) | (x >> (32 - bits))) & 0xFFFFFFFF

    def mix(h: int, k: int) -> int:
        k = rotate(k * 0xCC9E2D51 & 0xFFFFFFFF, 15) * 0x1B873593 & 0xFFFFFFFF
        return (rotate(h ^ k, 13) * 5 + 0xE6546B64) & 0xFFFFFFFF

    h = mix(mix(seed, value & 0xFFFFFFFF), (value >> 32) & 0xFFFFFFFF) ^ 8
    for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
        h = (h ^ (h >> shift)) * factor & 0xFFFFFFFF
    h ^= h >> 16
    return h - (1 << 32) if h >= 1 << 31 else h


def partition_keys(parts: int) -> list[int]:
    """For each partition p of ``parts``, a (long) key that hash partitioning sends to p.

    ``repartition(n, column)`` places a row by Murmur3 (``F.hash``) of the column, modulo n: part
    numbers 0..n-1 themselves would collide and leave partitions empty, these keys do not. Found
    here, not by a Spark job: the same function, without a job's start.
    """
    found: dict[int, int] = {}
    for key in range(64 * parts):
        found.setdefault(_spark_hash_of_long(key) % parts, key)
    if len(found) < parts:
        raise EnvironmentProblem(f"no hash keys found for {parts - len(found)} of {parts} partitions")
    return [found[p] for p in range(parts)]


def part_count(source_bytes: int, fraction: float, part_bytes: float = PART_BYTES) -> int:
    """How many CSV parts a split of ``fraction`` of a ``source_bytes`` input is written as."""
    return max(1, math.ceil(source_bytes * fraction / part_bytes))


def _rows_below(quantile: float, rows: int) -> int:
    """How many of ``rows`` ranked rows have a percent rank (rank / (rows - 1), 0 for one row) below
    ``quantile``."""
    if rows <= 1:
        return rows if quantile > 0 else 0
    below = min(rows, max(0, math.ceil(quantile * (rows - 1))))
    while below > 0 and (below - 1) / (rows - 1) >= quantile:  # the product's rounding, corrected
        below -= 1
    while below < rows and below / (rows - 1) < quantile:
        below += 1
    return below


def _locate(counts: dict[int, dict[int, int]], label: int, index: int) -> tuple[int, int]:
    """(bucket, offset in it) of the 0-based rank ``index`` in class ``label``."""
    for number in sorted(counts[label]):
        if index < counts[label][number]:
            return number, index
        index -= counts[label][number]
    raise AssertionError(f"rank {index} beyond the rows of class {label}")


def _orders_in(source: Source, seed: int, needed: set[tuple[int, int]]) -> dict[tuple[int, int], list[int]]:
    """The sorted orders of the rows of each (class, bucket) in ``needed``, fetched in one pass."""
    _, positive, _ = source.format.spark_problems()
    order = source.order(seed)
    wanted = source.rows.where(bucket(order).isin(*sorted({b for _, b in needed}))).select(
        positive.alias("label"), bucket(order).alias("_bucket"), order.alias("_order")
    )
    values: dict[tuple[int, int], list[int]] = {}
    for row in wanted.collect():
        if (row["label"], row["_bucket"]) in needed:
            values.setdefault((row["label"], row["_bucket"]), []).append(row["_order"])
    for found in values.values():
        found.sort()
    return values


def cut_values(
    source: Source, seed: int, counts: dict[int, dict[int, int]], quantiles: list[float], orders: Orders | None = None
):
    """Exact cut values of the order for each class and quantile, without ranking every row.

    From the rows per (class, bucket) of the scan, the buckets where a cut falls
    are fetched in one pass (a hash of each line; only those rows are looked at
    further) and sorted here; a small input's ``orders``, kept by the scan, spare
    that pass. A cut is ``(value, ties_below)``: a row lies below it when its
    order is less than ``value``, or equal and ``ties_below`` (rows of equal order
    share a rank); ``None`` when no row, ``True`` when every row of the class
    lies below. Returns the cuts and, per class, the rows below each quantile.
    """
    totals = {label: sum(per.values()) for label, per in counts.items()}
    below = {label: [_rows_below(q, totals[label]) for q in quantiles] for label in counts}
    inside = [(label, k) for label, ks in below.items() for k in ks if 0 < k < totals[label]]
    needed = {(label, _locate(counts, label, i)[0]) for label, k in inside for i in (k - 1, k)}
    values = orders if orders is not None else _orders_in(source, seed, needed) if needed else {}

    def value_at(label: int, index: int) -> int:
        found, offset = _locate(counts, label, index)
        return values[(label, found)][offset]

    def cut(label: int, k: int):
        if k == 0:
            return None
        if k >= totals[label]:
            return True
        return value_at(label, k), value_at(label, k - 1) == value_at(label, k)

    def placed_below(label: int, k: int, cut) -> int:  # a group of equal orders goes below whole, or not
        if cut is None or cut is True:
            return k
        found, _ = _locate(counts, label, k)
        earlier = sum(n for b, n in counts[label].items() if b < found)
        value, ties_below = cut
        orders = values[(label, found)]
        return earlier + (bisect.bisect_right(orders, value) if ties_below else bisect.bisect_left(orders, value))

    cuts = {label: [cut(label, k) for k in ks] for label, ks in below.items()}
    return cuts, {label: [placed_below(label, k, c) for k, c in zip(ks, cuts[label])] for label, ks in below.items()}


def segment_column(cuts) -> str:
    """The segment (split part) of each row, as Spark SQL text over ``label`` and ``_order``: how many of
    its class's cuts it does not lie below."""

    def not_below(cut) -> str:
        if cut is None:
            return "1"
        if cut is True:
            return "0"
        value, ties_below = cut
        below = f"_order < {int(value)}L OR (_order = {int(value)}L AND {str(bool(ties_below)).lower()})"
        return f"CASE WHEN {below} THEN 0 ELSE 1 END"

    segment = "0"
    for label, label_cuts in sorted(cuts.items()):
        count = " + ".join(["0", *[not_below(cut) for cut in label_cuts]])
        segment = f"CASE WHEN label = {int(label)} THEN {count} ELSE {segment} END"
    return f"CAST({segment} AS INT)"


#: all splits are written in one pass into ``<dest>/_staging/split=<key>/``, then moved to ``<dest>/<key>/``
STAGING_FOLDER = "_staging"

Bounds = dict[str, tuple[float, float]]


def plan_segments(bounds: Bounds, source_bytes: int, part_bytes: float) -> tuple[list[tuple[str, int]], list[float]]:
    """(segments: (split, part) in order, the quantile each ends at): a split of ``fraction`` of the input
    is written as ``part_count`` parts."""
    segments, quantiles = [], []  # segment i lies between quantiles[i-1] and quantiles[i]
    for key, (low, high) in bounds.items():
        parts = part_count(source_bytes, high - low, part_bytes)
        for part in range(parts):
            segments.append((key, part))
            quantiles.append(low + (high - low) * (part + 1) / parts)
    return segments, quantiles


def rows_per_split(bounds: Bounds, segments, counts: dict[int, dict[int, int]], below_counts) -> dict[str, int]:
    """The rows of each split, from the rows of each class below each cut."""
    rows = {key: 0 for key in bounds}
    for label, below in below_counts.items():
        edges = [0, *below, sum(counts[label].values())]
        for index, (key, _) in enumerate(segments):
            rows[key] += edges[index + 1] - edges[index]
    return rows


def write_splits(spark, frame, cuts, segments, base: str, storage: Storage) -> dict[str, int]:
    """Every row into its segment's part, in order, all splits in one pass; each split moved to
    ``<base>/<split>/`` with only its CSV parts. The parts written per split."""
    from pyspark.sql import functions as F

    keys = ", ".join(f"CAST({k} AS BIGINT)" for k in partition_keys(len(segments)))
    names = ", ".join(sql_text(key) for key, _ in segments)
    staging = f"{base}/{STAGING_FOLDER}"
    (
        frame.withColumn("_segment", F.expr(segment_column(cuts)))
        .withColumn("_key", F.expr(f"element_at(array({keys}), _segment + 1)"))
        .withColumn("split", F.expr(f"coalesce(element_at(array({names}), _segment + 1), '')"))
        # sorted by (split, order): the write's own sort by its partition column would otherwise replace
        # a sort by order alone (SPARK-50469), and the parts' row order would follow the shuffle's
        .repartition(len(segments), "_key")
        .sortWithinPartitions("split", "_order")
        .drop("_order", "_segment", "_key")
        .write.mode("overwrite")
        .partitionBy("split")
        .csv(staging, header=False)
    )
    parts_written = {}
    for key in dict.fromkeys(name for name, _ in segments):
        storage.move_prefix(f"{staging}/split={key}", f"{base}/{key}")
        storage.keep_only_csv_parts(f"{base}/{key}")
        parts_written[key] = sum(1 for name, _ in segments if name == key)
    storage.remove_prefix(staging)
    return parts_written
