"""An input's lines as every Spark pass reads them: the header and blank lines left out, fields split
by the input's format, each row with an id that gives back its line."""

from __future__ import annotations

from .. import formats
from ..errors import DataValidationError
from ..s3 import s3_storage
from ..storage import Storage


class Lines:
    """A text file's lines on Spark, each with an id that gives back its 1-based line number."""

    def __init__(self, spark, location: str, storage: Storage | None = None):
        from pyspark.sql import functions as F

        lines = (storage or s3_storage()).lines(location)
        self.first = next(lines, None)
        lines.close()
        if self.first is None or not self.first.strip():
            raise DataValidationError(location, "the file is empty")
        self.location = location
        self.text = spark.read.text(location).withColumn("_id", F.monotonically_increasing_id())

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


class Source(Lines):
    """An input's lines as every pass reads them: header and blank lines left out, fields split.
    ``labelled=False``: customers to score (a raw file's label is then optional and not read)."""

    def __init__(self, spark, location: str, storage: Storage | None = None, labelled: bool = True):
        from pyspark.sql import functions as F

        super().__init__(spark, location, storage)
        self.format = formats.detect(self.first, location, labelled)
        if self.format.has_header:  # the header is line 1: id 0 of partition 0
            rows = self.text.where((F.col("value") != "") & (F.col("_id") != 0))
        else:  # as the Python checks skip blank lines
            rows = self.text.where(F.trim("value") != "")
        fields, wrong_width = self.format.spark_fields()
        self.rows = rows.select("_id", "value", fields.alias("_fields"), wrong_width.alias("_wrong_width"))

    @staticmethod
    def order(seed: int):
        """A row's place in its class for the split: a seeded hash of its line."""
        from pyspark.sql import functions as F

        return F.xxhash64(F.col("value"), F.lit(seed))
