"""The Spark transform that AWS Glue runs and local Spark runs: one implementation.

raw churn CSV -> every row validated (``validate``) -> identifier and charge columns dropped ->
categoricals one-hot encoded -> stratified, seeded train/validation/test split
-> CSV (label first, no header) + a feature manifest (column order, categories).
"""

from __future__ import annotations

import bisect
import json
import math
import os
import shutil
import sys
import tempfile
from typing import Any

from . import data, features
from .errors import DataValidationError, EnvironmentProblem
from .storage import (
    _s3_client,
    iter_text_lines,
    move_folder,
    objects_under,
    remove_folder,
    size_of,
    split_s3_uri,
    write_text,
)

MANIFEST_NAME = "manifest.json"
#: a split is written as CSV parts of about this many bytes of input each, in parallel: SageMaker reads
#: every part of a channel (or, with ShardedByS3Key, a share of the parts on each instance)
PART_BYTES = 128 * 2**20


def partition_keys(spark, parts: int) -> list[int]:
    """For each partition p of ``parts``, a (long) key that hash partitioning sends to p.

    ``repartition(n, column)`` places a row by Murmur3 (``F.hash``) of the column, modulo n: part
    numbers 0..n-1 themselves would collide and leave partitions empty, these keys do not.
    """
    from pyspark.sql import functions as F

    found: dict[int, int] = {}
    for row in spark.range(0, 64 * parts).select("id", F.pmod(F.hash("id"), F.lit(parts)).alias("p")).collect():
        found.setdefault(row["p"], row["id"])
    if len(found) < parts:
        raise EnvironmentProblem(f"no hash keys found for {parts - len(found)} of {parts} partitions")
    return [found[p] for p in range(parts)]


def part_count(source_bytes: int, fraction: float, part_bytes: float = PART_BYTES) -> int:
    """How many CSV parts a split of ``fraction`` of a ``source_bytes`` input is written as."""
    return max(1, math.ceil(source_bytes * fraction / part_bytes))


def require_java() -> str:
    """Return the java executable Spark will use, or say how to install one."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise EnvironmentProblem(
            "Java 17 is needed by Spark and was not found (no `java` on PATH, no JAVA_HOME). "
            "Install it: `sudo apt-get install openjdk-17-jre-headless` (Debian/Ubuntu), "
            "`brew install openjdk@17` (macOS) or `conda install -c conda-forge openjdk=17`."
        )
    return java


def spark_session(master: str = "local[*]", app_name: str = "churn-etl", log_path: str | None = None):
    """The shared local SparkSession (created once per process, reused after).

    The JVM writes its own log lines straight to file descriptor 2, where a
    Jupyter kernel would show them in a cell; it is started with that
    descriptor pointed at ``log_path`` (default: ``$CHURN_PIPELINE_HOME/spark.log``
    or the temp folder) instead.
    """
    require_java()
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (batch scoring's mapInPandas) run this interpreter, which has the package
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if log_path is None:
        log_path = os.path.join(os.environ.get("CHURN_PIPELINE_HOME") or tempfile.gettempdir(), "spark.log")
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    saved_stderr = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            session = (
                SparkSession.builder.master(master)
                .appName(app_name)
                .config("spark.ui.enabled", "false")
                .config("spark.ui.showConsoleProgress", "false")
                .config("spark.sql.shuffle.partitions", "4")
                .config("spark.driver.memory", os.environ.get("CHURN_SPARK_DRIVER_MEMORY", "2g"))
                .config("spark.sql.session.timeZone", "UTC")
                .getOrCreate()
            )
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    session.sparkContext.setLogLevel("ERROR")
    return session


def _is_csv_part(name: str, size: int) -> bool:
    return name.startswith("part-") and name.endswith(".csv") and size > 0


def keep_only_csv_parts(folder: str, s3_client=None) -> list[str]:
    """Remove what Spark leaves beside the CSV parts; return what was removed.

    ``_SUCCESS``, checksum files (``.part-*.crc``), EMRFS's ``<folder>_$folder$``
    and empty parts: the SageMaker XGBoost container reads every file of a
    channel and fails on these (hidden file; no delimiter to detect).
    """
    removed = []
    if folder.startswith("s3://"):
        client = s3_client or _s3_client()
        bucket, key = split_s3_uri(folder.rstrip("/"))
        marker = f"{key}_$folder$"
        for found, size in objects_under(client, bucket, key).items():
            name = found[len(key) :]
            inside = name.startswith("/") and "/" not in name[1:]
            if found == marker or (inside and not _is_csv_part(name[1:], size)):
                client.delete_object(Bucket=bucket, Key=found)
                removed.append(found)
        return removed
    local = folder[len("file://") :] if folder.startswith("file://") else folder
    for entry in os.scandir(local):
        if entry.is_file() and not _is_csv_part(entry.name, entry.stat().st_size):
            os.remove(entry.path)
            removed.append(entry.path)
    return removed


def _label(frame_column):
    from pyspark.sql import functions as F

    return F.when(F.trim(frame_column).isin(*data.TRUE_LABELS), 1).otherwise(0).cast("int").alias("label")


#: bad rows named in a validation error, besides the first
BAD_ROWS_SHOWN = 5
#: what Spark reads in place of bytes that are not UTF-8
REPLACEMENT_CHARACTER = "\ufffd"


def _fields(fmt: str, header: list[str]):
    """(a line's fields as an array of strings, true when the line has the wrong number of fields).

    Raw lines are split on commas unless they hold a quote, which only the CSV
    parser reads right (slower, and most files have none).
    """
    from pyspark.sql import functions as F

    if fmt == "encoded":
        return F.split(F.regexp_replace(F.col("value"), '"', ""), ","), F.lit(False)
    quoted = F.col("value").contains('"')
    schema = ", ".join(f"c{i} STRING" for i in range(len(header))) + ", _bad STRING"
    # RFC 4180 quoting, as Python's csv reads it: a quote inside a quoted field is doubled
    parsed = F.from_csv(
        F.col("value"), schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_bad", "escape": '"'}
    )
    plain = F.split(F.col("value"), ",")
    fields = F.when(quoted, F.array(*[parsed.getField(f"c{i}") for i in range(len(header))])).otherwise(plain)
    wrong_width = F.when(quoted, parsed.getField("_bad").isNotNull()).otherwise(F.size(plain) != len(header))
    return fields, wrong_width


def _row_problems(fmt: str, header: list[str], width: int, labelled: bool = True):
    """(a Spark column that is true for a bad row, its label as 0/1, its categorical values) by the
    rules of ``data`` (``check_raw_row``'s ``labelled``), over the columns ``_fields`` and
    ``_wrong_width`` of ``Source.rows``."""
    from pyspark.sql import functions as F

    number = f"^{data.NUMBER_PATTERN}$"
    fields = F.col("_fields")
    if fmt == "raw":
        field = {name: fields.getItem(header.index(name)) for name in data.RAW_COLUMNS if name in header}
        checks = [F.col("_wrong_width")]
        checks += [~F.coalesce(field[name].rlike(number), F.lit(False)) for name in data.NUMERIC + data.CHARGES]
        checks += [F.coalesce(F.trim(field[name]), F.lit("")) == "" for name in data.CATEGORICAL]
        checks += [
            ~F.coalesce(F.trim(field[name]).isin(*data.YES_NO), F.lit(False)) for name in ("Int'l Plan", "VMail Plan")
        ]
        positive = F.lit(False)
        if not labelled:  # customers to score: named by their identifier; a label is not read
            checks.append(F.coalesce(field[data.IDENTIFIER[0]].rlike(f"^{data.BLANK_PATTERN}$"), F.lit(True)))
        else:
            label = F.trim(field[data.LABEL])
            checks.append(~F.coalesce(label.isin(*data.TRUE_LABELS, *data.FALSE_LABELS), F.lit(False)))
            positive = label.isin(*data.TRUE_LABELS)
        categories = {name: F.trim(field[name]) for name in data.CATEGORICAL}
    else:
        checks = [F.size(fields) != width, F.exists(fields, lambda value: ~value.rlike(number))]
        label = F.trim(fields.getItem(0)).cast("double")
        checks.append(~F.coalesce(label.isin(0.0, 1.0), F.lit(False)))
        positive = label == 1.0
        categories = {}
    checks.append(F.col("value").contains(REPLACEMENT_CHARACTER))
    bad = checks[0]
    for check in checks[1:]:
        bad = bad | check
    return bad, F.coalesce(positive, F.lit(False)).cast("int"), categories


def _name_bad_line(fmt: str, header: list[str], width: int, text: str, source: str, line: int, labelled: bool = True):
    """The error the Python checks give for a line Spark flagged (the same rules, so the same words)."""
    import csv

    if REPLACEMENT_CHARACTER in text:
        return DataValidationError(source, "not UTF-8 text (a byte sequence that is not UTF-8)", line=line)
    try:
        if fmt == "raw":
            data.check_raw_row(next(csv.reader([text])), header, source, line, labelled)
        else:
            data.check_encoded_row(data.split_encoded(text), width, source, line)
    except DataValidationError as error:
        return error
    return DataValidationError(
        source,
        "the ETL job's checks reject this row and the Python checks do not; please report it with the row",
        line=line,
    )


class Source:
    """An input's lines as every pass reads them: header and blank lines left out, fields split."""

    def __init__(self, spark, location: str, s3_client=None, labelled: bool = True):
        from pyspark.sql import functions as F

        lines = iter_text_lines(location, s3_client)
        first = next(lines, None)
        lines.close()
        if first is None or not first.strip():
            raise DataValidationError(location, "the file is empty")
        self.location = location
        self.labelled = labelled
        self.format = data.detect_format(first, location, labelled)
        self.header = data.raw_header(first, location, labelled) if self.format == "raw" else []
        self.width = 0 if self.format == "raw" else len(data.split_encoded(first))
        if self.format == "encoded" and self.width < 2:
            raise DataValidationError(location, "needs a label and at least one feature", line=1)
        self.text = spark.read.text(location).withColumn("_id", F.monotonically_increasing_id())
        if self.format == "raw":  # the header is line 1: id 0 of partition 0
            rows = self.text.where((F.col("value") != "") & (F.col("_id") != 0))
        else:  # as the Python checks skip blank lines
            rows = self.text.where(F.trim("value") != "")
        fields, wrong_width = _fields(self.format, self.header)
        self.rows = rows.select("_id", "value", fields.alias("_fields"), wrong_width.alias("_wrong_width"))

    @staticmethod
    def order(seed: int):
        """A row's place in its class for the split: a seeded hash of its line."""
        from pyspark.sql import functions as F

        return F.xxhash64(F.col("value"), F.lit(seed))

    def line_numbers(self, row_ids: list[int]) -> list[int]:
        """1-based lines of rows by their ids ((partition << 33) + place in the partition)."""

        offsets = self.partition_offsets()
        return [offsets[row_id >> 33] + (row_id & ((1 << 33) - 1)) + 1 for row_id in row_ids]

    def partition_offsets(self) -> dict[int, int]:
        """Lines before each partition of the text (one counting pass)."""
        from pyspark.sql import functions as F

        per_partition = dict(self.text.groupBy(F.spark_partition_id().alias("p")).count().collect())
        return {p: sum(n for q, n in per_partition.items() if q < p) for p in per_partition}

    def line_number(self, offsets: dict[int, int]):
        """A row's 1-based line as a Spark column, from ``partition_offsets``."""
        from pyspark.sql import functions as F

        start = F.create_map(*[F.lit(v) for p, n in sorted(offsets.items()) for v in (p, n)])
        return F.element_at(start, F.shiftright("_id", 33).cast("int")) + F.col("_id").bitwiseAND((1 << 33) - 1) + 1


#: the rows of each class are counted in this many buckets of their hash, so that exact split cut values
#: are found by fetching only the buckets a cut falls in (``_cut_values``)
ORDER_BUCKETS = 1024


def _bucket(order):
    from pyspark.sql import functions as F

    return F.shiftright(order, 64 - int(math.log2(ORDER_BUCKETS))) + F.lit(ORDER_BUCKETS // 2)  # 0 .. buckets-1


def _scan(source: Source, seed: int) -> tuple[data.DataSummary, dict[int, dict[int, int]]]:
    """One parallel pass: every row checked by the rules of ``data`` (a DataValidationError naming the
    file, line and column of the first bad rows), rows counted per class and hash bucket, categories
    collected. Only a bad file pays for more: a pass to number the first bad rows' lines."""
    from pyspark.sql import functions as F

    bad, positive, categories = _row_problems(source.format, source.header, source.width)
    rows = source.rows.select(
        "_id",
        "value",
        bad.alias("_bad_row"),
        positive.alias("label"),
        _bucket(source.order(seed)).alias("_bucket"),
        *[value.alias(name) for name, value in categories.items()],
    )
    by_bucket = (
        rows.groupBy("label", "_bucket")
        .agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.col("_bad_row").cast("long")).alias("bad"),
            *[F.collect_set(F.when(~F.col("_bad_row"), F.col(name))).alias(name) for name in categories],
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
        source.format,
        sum(group["rows"] for group in by_bucket),
        source.header or data.encoded_columns(source.width),
        sum(counts.get(1, {}).values()),
        {name: sorted({value for group in by_bucket for value in group[name]}) for name in categories},
    )
    return data.check_classes(summary), counts


def bad_rows_error(source: Source, rows, bad_rows: int) -> DataValidationError:
    """The error naming the first bad rows of ``rows`` (flagged in ``_bad_row``) by their lines, in the
    words of the Python checks."""
    first_bad = rows.where("_bad_row").orderBy("_id").limit(BAD_ROWS_SHOWN + 1).select("_id", "value").collect()
    lines = source.line_numbers([row["_id"] for row in first_bad])
    error = _name_bad_line(
        source.format, source.header, source.width, first_bad[0]["value"], source.location, lines[0], source.labelled
    )
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
    """Every row checked by the rules of ``data`` in one parallel pass, without counting classes (the
    customers a model scores)."""
    bad, _, _ = _row_problems(source.format, source.header, source.width, source.labelled)
    rows = source.rows.select("_id", "value", bad.alias("_bad_row"))
    bad_rows = rows.where("_bad_row").count()
    if bad_rows:
        raise bad_rows_error(source, rows, bad_rows)


def validate(spark, source: str, s3_client=None) -> data.DataSummary:
    """Check every row of ``source`` on Spark (so on Glue's workers in the cloud) by the rules of
    ``data``; raise DataValidationError naming the file, line and column of the first bad rows."""
    return _scan(Source(spark, source, s3_client), seed=0)[0]


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


def _cut_values(source: Source, seed: int, counts: dict[int, dict[int, int]], quantiles: list[float]):
    """Exact cut values of the order for each class and quantile, without ranking every row.

    From the rows per (class, bucket) of the scan, the buckets where a cut falls
    are fetched in one pass (a hash of each line; only those rows are looked at
    further) and sorted here. A cut is ``(value, ties_below)``: a row lies below
    it when its order is less than ``value``, or equal and ``ties_below`` (rows of
    equal order share a rank); ``None`` when no row, ``True`` when every row of
    the class lies below. Returns the cuts and, per class, the rows below each quantile.
    """

    def locate(label: int, index: int) -> tuple[int, int]:  # (bucket, offset in it) of a 0-based rank
        for bucket in sorted(counts[label]):
            if index < counts[label][bucket]:
                return bucket, index
            index -= counts[label][bucket]
        raise AssertionError(f"rank {index} beyond the rows of class {label}")

    totals = {label: sum(per.values()) for label, per in counts.items()}
    below = {label: [_rows_below(q, totals[label]) for q in quantiles] for label in counts}
    inside = [(label, k) for label, ks in below.items() for k in ks if 0 < k < totals[label]]
    needed = {(label, locate(label, i)[0]) for label, k in inside for i in (k - 1, k)}
    values: dict[tuple[int, int], list[int]] = {}
    if needed:
        _, positive, _ = _row_problems(source.format, source.header, source.width)
        order = source.order(seed)
        wanted = source.rows.where(_bucket(order).isin(*sorted({b for _, b in needed}))).select(
            positive.alias("label"), _bucket(order).alias("_bucket"), order.alias("_order")
        )
        for row in wanted.collect():
            if (row["label"], row["_bucket"]) in needed:
                values.setdefault((row["label"], row["_bucket"]), []).append(row["_order"])
        for found in values.values():
            found.sort()

    def value_at(label: int, index: int) -> int:
        bucket, offset = locate(label, index)
        return values[(label, bucket)][offset]

    cuts = {
        label: [
            None
            if k == 0
            else True
            if k >= totals[label]
            else (value_at(label, k), value_at(label, k - 1) == value_at(label, k))
            for k in ks
        ]
        for label, ks in below.items()
    }

    def placed_below(label: int, k: int, cut) -> int:  # a group of equal orders goes below whole, or not
        if cut is None or cut is True:
            return k
        bucket, _ = locate(label, k)
        earlier = sum(n for b, n in counts[label].items() if b < bucket)
        value, ties_below = cut
        found = values[(label, bucket)]
        return earlier + (bisect.bisect_right(found, value) if ties_below else bisect.bisect_left(found, value))

    return cuts, {
        label: [placed_below(label, k, cut) for k, cut in zip(ks, cuts[label])] for label, ks in below.items()
    }


def _segment_column(cuts):
    """The segment (split part) of each row: how many of its class's cuts it does not lie below."""
    from pyspark.sql import functions as F

    order = F.col("_order")

    def not_below(cut):
        if cut is None:
            return F.lit(1)
        if cut is True:
            return F.lit(0)
        value, ties_below = cut
        below = (order < F.lit(value)) | ((order == F.lit(value)) & F.lit(ties_below))
        return F.when(below, 0).otherwise(1)

    segment = F.lit(0)
    for label, label_cuts in sorted(cuts.items()):
        count = F.lit(0)
        for cut in label_cuts:
            count = count + not_below(cut)
        segment = F.when(F.col("label") == label, count).otherwise(segment)
    return segment.cast("int")


def feature_frame(source: Source, transform_spec: features.Transform, *leading):
    """Every row's features by ``transform_spec``, after the ``leading`` columns (which may use
    ``_id``, ``value``, ``_fields`` and, for raw input, the raw columns by name)."""
    from pyspark.sql import functions as F

    fields = F.col("_fields")
    if source.format == "raw":
        named = source.rows.select(
            "_id",
            "value",
            "_fields",
            *[fields.getItem(source.header.index(name)).alias(name) for name in source.header],
        )
        return named.select(*leading, *features.spark_columns(transform_spec))
    return source.rows.select(*leading, *features.spark_columns(transform_spec, fields))


def encoded_frame(source: Source, summary: data.DataSummary, seed: int):
    """``label``, ``_order`` and the features of every row of a validated input; with the transform."""
    from pyspark.sql import functions as F

    if source.format == "raw":
        transform_spec = features.raw_transform(summary.categories)
        label = _label(F.col(f"`{data.LABEL}`"))
    else:
        transform_spec = features.encoded_transform(source.width)
        label = F.trim(F.col("_fields").getItem(0)).cast("double").cast("int").alias("label")
    return feature_frame(source, transform_spec, label, source.order(seed).alias("_order")), transform_spec


#: all splits are written in one pass into ``<dest>/_staging/split=<key>/``, then moved to ``<dest>/<key>/``
STAGING_FOLDER = "_staging"


def transform(
    spark,
    source: str,
    dest: str,
    train_key: str = "train",
    validation_key: str = "validation",
    test_key: str = "test",
    train_fraction: float = 0.7,
    validation_fraction: float = 0.2,
    seed: int = 42,
    s3_client=None,
    part_bytes: float = PART_BYTES,
) -> dict[str, Any]:
    """Validate ``source``, encode it and write the three splits and the manifest under ``dest``.

    Stratified split: the rows of each class are ordered by a seeded hash of
    their line, and a row's split and part follow from its percent rank in that
    order, so they are the same for the same data and seed whatever the
    partitioning. Ranks are never computed row by row (a window over a class is
    one task): exact cut values of the hash come from bucket counts instead.
    Three passes over the input: check and count, fetch the cut buckets, write.
    """
    from pyspark.sql import functions as F

    lines = Source(spark, source, s3_client)
    summary, counts = _scan(lines, seed)
    frame, transform_spec = encoded_frame(lines, summary, seed)
    bounds = {
        train_key: (0.0, train_fraction),
        validation_key: (train_fraction, train_fraction + validation_fraction),
        test_key: (train_fraction + validation_fraction, 1.0),
    }
    source_bytes = size_of(source, s3_client)
    segments, quantiles = [], []  # segment i lies between quantiles[i-1] and quantiles[i]
    for key, (low, high) in bounds.items():
        parts = part_count(source_bytes, high - low, part_bytes)
        for part in range(parts):
            segments.append((key, part))
            quantiles.append(low + (high - low) * (part + 1) / parts)
    # the last segment takes every row left: its upper quantile is no cut
    cuts, below_counts = _cut_values(lines, seed, counts, quantiles[:-1])
    rows = {key: 0 for key in bounds}
    for label, below in below_counts.items():
        edges = [0, *below, sum(counts[label].values())]
        for index, (key, _) in enumerate(segments):
            rows[key] += edges[index + 1] - edges[index]
    keys = F.array(*[F.lit(k).cast("long") for k in partition_keys(spark, len(segments))])
    names = F.array(*[F.lit(key) for key, _ in segments])
    base = dest.rstrip("/")
    staging = f"{base}/{STAGING_FOLDER}"
    (
        frame.withColumn("_segment", _segment_column(cuts))
        .withColumn("_key", F.element_at(keys, F.col("_segment") + 1))
        .withColumn("split", F.coalesce(F.element_at(names, F.col("_segment") + 1), F.lit("")))
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
    for key in bounds:
        move_folder(f"{staging}/split={key}", f"{base}/{key}", s3_client)
        keep_only_csv_parts(f"{base}/{key}", s3_client)
        parts_written[key] = sum(1 for name, _ in segments if name == key)
    remove_folder(staging, s3_client)

    manifest = {
        "format": summary.format,
        "source": source,
        "label": data.LABEL if summary.format == "raw" else "label",
        "features": [step["feature"] for step in transform_spec],
        "transform": transform_spec,
        "categories": summary.categories,
        "dropped": data.IDENTIFIER + data.CHARGES if summary.format == "raw" else [],
        "rows": rows,
        "parts": parts_written,
        "positives": summary.positives,
        "splits": {"train": train_key, "validation": validation_key, "test": test_key},
        "seed": seed,
    }
    write_text(f"{base}/{MANIFEST_NAME}", json.dumps(manifest, indent=2), s3_client)
    return manifest


def write_etl_record(
    record_uri: str, key: str, run_id: str, manifest: dict[str, Any], s3_client=None
) -> dict[str, Any]:
    """Record a finished ETL output under its key, so a later run with the same inputs reuses it
    (the output is that run's ETL folder)."""
    record = {"etl_key": key, "run_id": run_id, "rows": manifest["rows"]}
    write_text(record_uri, json.dumps(record, indent=2, sort_keys=True), s3_client)
    return record
