"""Customer data: the raw churn format, its validation, and a seeded synthetic generator.

Two input formats are accepted:

* ``raw``: the AWS churn sample's CSV with a header; columns are found by name.
* ``encoded``: SageMaker-style CSV, label first, no header, all numeric (rows
  may each be quoted as one whole string).

A row is checked by the rules here: in Python for the first rows (notebook 01)
and for naming a bad row, and by the same rules as Spark expressions over every
row in the ETL job (``etl.validate``). A problem names the file, line and
column, so a bad file never reaches training.
"""

from __future__ import annotations

import csv
import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataValidationError
from .storage import iter_text_lines, size_of

LABEL = "Churn?"
CATEGORICAL = ["State", "Area Code", "Int'l Plan", "VMail Plan"]
NUMERIC = [
    "Account Length",
    "VMail Message",
    "Day Mins",
    "Day Calls",
    "Eve Mins",
    "Eve Calls",
    "Night Mins",
    "Night Calls",
    "Intl Mins",
    "Intl Calls",
    "CustServ Calls",
]
IDENTIFIER = ["Phone"]
#: charges are minutes times a fixed tariff: they duplicate the minutes columns
CHARGES = ["Day Charge", "Eve Charge", "Night Charge", "Intl Charge"]
RAW_COLUMNS = [
    "State",
    "Account Length",
    "Area Code",
    "Phone",
    "Int'l Plan",
    "VMail Plan",
    "VMail Message",
    "Day Mins",
    "Day Calls",
    "Day Charge",
    "Eve Mins",
    "Eve Calls",
    "Eve Charge",
    "Night Mins",
    "Night Calls",
    "Night Charge",
    "Intl Mins",
    "Intl Calls",
    "Intl Charge",
    "CustServ Calls",
    LABEL,
]
TRUE_LABELS = {"True.", "True", "true", "1", "yes"}
FALSE_LABELS = {"False.", "False", "false", "0", "no"}
YES_NO = {"yes", "no"}


@dataclass
class DataSummary:
    """What validation learned about a file: its format, size and label balance."""

    source: str
    format: str
    rows: int
    columns: list[str]
    positives: int
    categories: dict[str, list[str]] = field(default_factory=dict)

    @property
    def churn_rate(self) -> float:
        return self.positives / self.rows if self.rows else 0.0


#: a number as the pipeline accepts it (Python here, the same pattern in Spark in the ETL): no NaN,
#: no infinities, no digit separators, no type suffixes
#: a value of white space only (ASCII, as Java's regex ``\s`` and Spark read it): no identifier
BLANK_PATTERN = r"[ \t\n\x0b\x0c\r]*"
NUMBER_PATTERN = r"\s*[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?\s*"
_NUMBER = re.compile(NUMBER_PATTERN)
#: rows of the file notebook 01 checks and profiles; the ETL job checks every row
PROFILE_ROWS = 10_000


def _is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def split_encoded(line: str) -> list[str]:
    """The fields of a pre-encoded row (which may be quoted whole, as one string)."""
    fields = next(csv.reader([line]))
    if len(fields) == 1 and "," in fields[0]:  # the whole row quoted as one string
        fields = fields[0].split(",")
    return [f.strip() for f in fields]


def expected_columns(labelled: bool = True) -> list[str]:
    """The raw format's columns; customers to score need not have the label."""
    return RAW_COLUMNS if labelled else [c for c in RAW_COLUMNS if c != LABEL]


def detect_format(first_line: str, source: str, labelled: bool = True) -> str:
    """``raw`` (a header with the churn columns) or ``encoded`` (label-first numeric rows).
    ``labelled=False`` (scoring) takes a raw header without the label column too."""
    fields = next(csv.reader([first_line]), [])
    if not fields or not any(f.strip() for f in fields):
        raise DataValidationError(source, "the file is empty", line=1)
    names = [f.strip() for f in fields]
    if LABEL in names or not labelled and IDENTIFIER[0] in names:
        return "raw"
    if all(_is_number(f) for f in split_encoded(first_line)):
        return "encoded"
    missing = [c for c in expected_columns(labelled) if c not in names]
    raise DataValidationError(
        source,
        "unrecognised header: expected the raw churn header or label-first numeric rows; "
        f"missing columns: {', '.join(missing)}",
        line=1,
    )


def _label_value(text: str, source: str, line: int, column: str) -> int:
    if text in TRUE_LABELS:
        return 1
    if text in FALSE_LABELS:
        return 0
    raise DataValidationError(
        source, f"label {text!r} is not binary (expected True./False. or 1/0)", line=line, column=column
    )


def raw_header(first_line: str, source: str, labelled: bool = True) -> list[str]:
    """The raw format's header, checked: every column once (the label optional when not ``labelled``),
    nothing unknown."""
    header = [h.strip() for h in next(csv.reader([first_line]))]
    missing = [c for c in expected_columns(labelled) if c not in header]
    unknown = [c for c in header if c not in RAW_COLUMNS]
    if missing:
        raise DataValidationError(source, f"missing columns: {', '.join(missing)}", line=1)
    if unknown:
        raise DataValidationError(source, f"unknown columns: {', '.join(unknown)}", line=1)
    duplicated = sorted({c for c in header if header.count(c) > 1})
    if duplicated:
        raise DataValidationError(source, f"duplicated columns: {', '.join(duplicated)}", line=1)
    return header


def check_raw_row(row: list[str], header: list[str], source: str, line: int, labelled: bool = True) -> int:
    """Check one raw row (``line`` of ``source``); return its label. The ETL job's Spark checks flag
    the same rows, and name them with this function's messages. Customers to score
    (``labelled=False``) need their identifier and no label (one present is not read)."""
    if len(row) != len(header):
        raise DataValidationError(source, f"has {len(row)} fields, the header has {len(header)}", line=line)
    index = {name: header.index(name) for name in RAW_COLUMNS if name in header}
    for name in NUMERIC + CHARGES:
        if not _is_number(row[index[name]]):
            raise DataValidationError(source, f"value {row[index[name]]!r} is not a number", line=line, column=name)
    for name in CATEGORICAL:
        value = row[index[name]].strip()
        if not value:
            raise DataValidationError(source, "empty value", line=line, column=name)
        if name in ("Int'l Plan", "VMail Plan") and value not in YES_NO:
            raise DataValidationError(source, f"value {value!r} is not yes/no", line=line, column=name)
    if not labelled:
        if re.fullmatch(BLANK_PATTERN, row[index[IDENTIFIER[0]]]):
            raise DataValidationError(
                source, "empty value: the scores name each customer by it", line=line, column=IDENTIFIER[0]
            )
        return 0
    return _label_value(row[index[LABEL]].strip(), source, line, LABEL)


def check_encoded_row(fields: list[str], width: int, source: str, line: int) -> int:
    """Check one pre-encoded row (its fields, label first); return its label."""
    if len(fields) != width:
        raise DataValidationError(source, f"has {len(fields)} fields, earlier rows have {width}", line=line)
    for position, value in enumerate(fields):
        if not _is_number(value):
            column = "label" if position == 0 else f"feature {position}"
            raise DataValidationError(source, f"value {value!r} is not a number", line=line, column=column)
    label = float(fields[0])
    if label not in (0.0, 1.0):
        raise DataValidationError(
            source, f"label {fields[0]!r} is not binary (expected 0 or 1)", line=line, column="label"
        )
    return int(label)


def _validate_raw(lines, source: str) -> DataSummary:
    header = raw_header(next(lines), source)
    index = {name: header.index(name) for name in RAW_COLUMNS}
    categories: dict[str, set[str]] = {name: set() for name in CATEGORICAL}
    rows = positives = 0
    for line_no, row in enumerate(csv.reader(lines), start=2):
        if not row:
            continue
        positives += check_raw_row(row, header, source, line_no)
        for name in CATEGORICAL:
            categories[name].add(row[index[name]].strip())
        rows += 1
    return DataSummary(source, "raw", rows, header, positives, {k: sorted(v) for k, v in categories.items()})


def _validate_encoded(lines, source: str) -> DataSummary:
    width = None
    rows = positives = 0
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        fields = split_encoded(line)
        if width is None:
            width = len(fields)
            if width < 2:
                raise DataValidationError(source, "needs a label and at least one feature", line=line_no)
        positives += check_encoded_row(fields, width, source, line_no)
        rows += 1
    return DataSummary(source, "encoded", rows, encoded_columns(width or 1), positives)


def encoded_columns(width: int) -> list[str]:
    return ["label"] + [f"f{i}" for i in range(1, width)]


def check_classes(summary: DataSummary) -> DataSummary:
    """A file with no rows, or with one class only, cannot train a churn model."""
    if summary.rows == 0:
        raise DataValidationError(summary.source, "the file has a header but no data rows")
    if summary.positives in (0, summary.rows):
        raise DataValidationError(
            summary.source,
            f"the label {LABEL if summary.format == 'raw' else 'label'} "
            "has only one class; a churn model needs both churners and non-churners",
        )
    return summary


def _validate_lines(lines, location: str) -> DataSummary:
    first = next(lines, None)
    if first is None or not first.strip():
        raise DataValidationError(location, "the file is empty")
    fmt = detect_format(first, location)

    def replay():
        yield first
        yield from lines

    return (_validate_raw if fmt == "raw" else _validate_encoded)(replay(), location)


def validate_file(location: str, s3_client=None) -> DataSummary:
    """Validate every row of a raw or encoded churn CSV in this process; raise DataValidationError at
    the first problem. (The pipeline validates on Spark, in the ETL job: ``etl.validate``.)"""
    return check_classes(_validate_lines(iter_text_lines(location, s3_client), location))


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


def profile_file(location: str, s3_client=None, rows: int = PROFILE_ROWS) -> DataProfile:
    """Check the header and the first ``rows`` rows (the rest of the file is not read)."""
    lines = iter_text_lines(location, s3_client)
    sample = list(itertools.islice(lines, rows + 1))
    complete = next(lines, None) is None
    lines.close()
    summary = _validate_lines(iter(sample), location)
    if complete:
        check_classes(summary)
    elif summary.rows == 0:
        raise DataValidationError(location, f"the first {rows} lines hold no data rows")
    return DataProfile(summary, complete, size_of(location, s3_client), sample)


# --- synthetic data -------------------------------------------------------------------------------

STATES = [
    "AK",
    "AL",
    "AR",
    "AZ",
    "CA",
    "CO",
    "CT",
    "DC",
    "DE",
    "FL",
    "GA",
    "HI",
    "IA",
    "ID",
    "IL",
    "IN",
    "KS",
    "KY",
    "LA",
    "MA",
    "MD",
    "ME",
    "MI",
    "MN",
    "MO",
    "MS",
    "MT",
    "NC",
    "ND",
    "NE",
    "NH",
    "NJ",
    "NM",
    "NV",
    "NY",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VA",
    "VT",
    "WA",
    "WI",
    "WV",
    "WY",
]


#: customers are drawn in blocks of this many, each from its own seeded generator, so a file of any
#: size is written in bounded memory and its content does not depend on how it is written
SYNTHETIC_BLOCK_ROWS = 100_000


def _block_generator(seed: int, block: int) -> np.random.Generator:
    """Block 0 draws from ``seed`` itself (a file of up to one block is what one draw gives)."""
    return np.random.default_rng(seed if block == 0 else [seed, block])


def generate_synthetic(rows: int, seed: int | np.random.Generator) -> dict[str, np.ndarray]:
    """Draw customers whose marginals and churn drivers resemble the public churn data.

    Churn rises steeply with heavy daytime use, an international plan (with
    many international minutes), and four or more customer-service calls; a
    voice-mail plan lowers it. The rate lands near 14 %.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = rows
    intl_plan = rng.random(n) < 0.097
    vmail_plan = rng.random(n) < 0.277
    day_mins = np.clip(rng.normal(179.8, 54.5, n), 0, 351).round(1)
    eve_mins = np.clip(rng.normal(201.0, 50.7, n), 0, 364).round(1)
    night_mins = np.clip(rng.normal(200.9, 50.6, n), 23, 395).round(1)
    intl_mins = np.clip(rng.normal(10.2, 2.8, n), 0, 20).round(1)
    custserv = np.minimum(rng.poisson(1.56, n), 9)
    intl_calls = np.minimum(rng.poisson(4.48, n), 20)
    total_mins = day_mins + eve_mins
    risk = np.full(n, -4.5)
    risk += np.where(day_mins > 264, 6.0, 0.0)
    risk += np.where((day_mins > 225) & (total_mins > 470), 5.0, 0.0)
    risk += np.where(intl_plan & ((intl_mins > 13) | (intl_calls < 3)), 7.0, 0.0)
    risk += np.where(custserv >= 4, np.where(day_mins < 160, 6.5, 1.0), 0.0)
    risk += np.where(vmail_plan, -1.5, 0.0)
    churn = rng.random(n) < 1.0 / (1.0 + np.exp(-risk))
    vmail_msgs = np.where(vmail_plan, np.clip(rng.normal(29.3, 7.6, n), 4, 51), 0).round().astype(int)
    return {
        "State": rng.choice(STATES, n),
        "Account Length": np.clip(rng.normal(101, 39.8, n), 1, 243).round().astype(int),
        "Area Code": rng.choice(np.array([408, 415, 510]), n, p=[0.25, 0.50, 0.25]),
        "Phone": np.array([f"{a}-{b:04d}" for a, b in zip(rng.integers(327, 423, n), rng.integers(0, 10000, n))]),
        "Int'l Plan": np.where(intl_plan, "yes", "no"),
        "VMail Plan": np.where(vmail_plan, "yes", "no"),
        "VMail Message": vmail_msgs,
        "Day Mins": day_mins,
        "Day Calls": np.clip(rng.normal(100.4, 20.1, n), 0, 165).round().astype(int),
        "Day Charge": (day_mins * 0.17).round(2),
        "Eve Mins": eve_mins,
        "Eve Calls": np.clip(rng.normal(100.1, 19.9, n), 0, 170).round().astype(int),
        "Eve Charge": (eve_mins * 0.085).round(2),
        "Night Mins": night_mins,
        "Night Calls": np.clip(rng.normal(100.1, 19.6, n), 33, 175).round().astype(int),
        "Night Charge": (night_mins * 0.045).round(2),
        "Intl Mins": intl_mins,
        "Intl Calls": intl_calls,
        "Intl Charge": (intl_mins * 0.27).round(2),
        "CustServ Calls": custserv,
        LABEL: np.where(churn, "True.", "False."),
    }


@dataclass(frozen=True)
class SyntheticFile:
    path: Path
    rows: int
    churned: int

    @property
    def churn_rate(self) -> float:
        return self.churned / self.rows


def generate_file(path: str | os.PathLike, rows: int, seed: int) -> SyntheticFile:
    """Write ``rows`` synthetic customers in the raw format, block by block (memory is one block's,
    whatever ``rows``), atomically; the same ``rows`` and ``seed`` give the same bytes."""
    if rows < 1:
        raise DataValidationError(str(path), f"cannot generate {rows} rows; need at least 1")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    churned = 0
    with open(tmp, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(RAW_COLUMNS)
        for block, start in enumerate(range(0, rows, SYNTHETIC_BLOCK_ROWS)):
            size = min(SYNTHETIC_BLOCK_ROWS, rows - start)
            columns = generate_synthetic(size, _block_generator(seed, block))
            churned += int(np.count_nonzero(columns[LABEL] == "True."))
            writer.writerows(zip(*(columns[name].tolist() for name in RAW_COLUMNS)))
    os.replace(tmp, path)
    return SyntheticFile(path, rows, churned)


def write_synthetic(path: str | os.PathLike, rows: int, seed: int) -> Path:
    """``generate_file``, returning the path."""
    return generate_file(path, rows, seed).path
