"""A customer file read in this process: the header and the first rows profiled (notebook 01), or every
row validated (small files, tests). The ETL job checks every row by the same rules, on Spark."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import formats
from .data import PROFILE_ROWS, DataSummary, check_classes
from .errors import DataValidationError
from .s3 import s3_storage
from .storage import Storage


def summarise(lines: Iterator[str], location: str, labelled: bool = True) -> DataSummary:
    """Every row of ``lines`` checked by its format's rules; what they hold. Raises DataValidationError
    at the first problem."""
    first = next(lines, None)
    if first is None or not first.strip():
        raise DataValidationError(location, "the file is empty")
    fmt = formats.detect(first, location, labelled)
    categories: dict[str, set[str]] = {name: set() for name in fmt.categorical}
    rows = positives = 0
    for number, fields in fmt.data_rows(itertools.chain([first], lines)):
        positives += fmt.check_row(fields, location, number)
        for name in categories:
            categories[name].add(fields[fmt.index[name]].strip())
        rows += 1
    return DataSummary(location, fmt.name, rows, fmt.columns, positives, {k: sorted(v) for k, v in categories.items()})


def validate_file(location: str, storage: Storage | None = None) -> DataSummary:
    """Validate every row of a raw or encoded churn CSV in this process; raise DataValidationError at
    the first problem. (The pipeline validates on Spark, in the ETL job: ``etl.validation``.)"""
    return check_classes(summarise((storage or s3_storage()).lines(location), location))


@dataclass
class DataProfile:
    """What notebook 01 learns from the header and the first rows: checked as the ETL checks every row."""

    summary: DataSummary  # of the rows read
    complete: bool  # the rows read are the whole file
    size: int  # bytes of the whole file
    sample: list[str] = field(repr=False)  # the lines read, header included

    @property
    def rows(self) -> int:
        """The file's rows: counted when complete, else estimated from its size."""
        if self.complete:
            return self.summary.rows
        return round(self.size * self.summary.rows / sum(len(line.encode()) + 1 for line in self.sample))

    def describe(self) -> str:
        summary = self.summary
        if self.complete:
            return f"{summary.rows} rows in the {summary.format} format, churn rate {summary.churn_rate:.1%}"
        return (
            f"about {self.rows:,} rows in the {summary.format} format (from its size); the first "
            f"{summary.rows:,} rows are valid, churn rate {summary.churn_rate:.1%} among them; "
            "the ETL job validates every row"
        )


def profile_file(location: str, storage: Storage | None = None, rows: int = PROFILE_ROWS) -> DataProfile:
    """Check the header and the first ``rows`` rows (the rest of the file is not read)."""
    storage = storage or s3_storage()
    lines = storage.lines(location)
    sample = list(itertools.islice(lines, rows + 1))
    complete = next(lines, None) is None
    lines.close()
    summary = summarise(iter(sample), location)
    if complete:
        check_classes(summary)
    elif summary.rows == 0:
        raise DataValidationError(location, f"the first {rows} lines hold no data rows")
    return DataProfile(summary, complete, storage.size(location), sample)
