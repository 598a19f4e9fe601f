"""Input formats: how a file of customers is read, each format owning its rules.

* ``RawRecords``: the AWS churn sample's CSV with a header; columns are found by
  name. ``CustomersToScore``: the same records, each needing its identifier and
  no label (one present is not read).
* ``EncodedRows``: SageMaker-style CSV, label first, no header, all numeric
  (rows may each be quoted as one whole string).

``detect`` reads a file's first line and returns its format. A format checks a
row in Python (``check_row``: the first rows in notebook 01, and the words that
name a bad row) and by the same rules as Spark expressions over every row in
the ETL job (``spark_fields``, ``spark_problems``), so a problem names the file,
line and column and a bad file never reaches training.
"""

from __future__ import annotations

import csv
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, ClassVar

from . import data, features
from .errors import DataValidationError, MissingColumns

#: what Spark reads in place of bytes that are not UTF-8
REPLACEMENT_CHARACTER = "\ufffd"
#: the identifier column of pre-encoded rows' scores: the row's line in the file
ROW_NUMBER = "row"
_NUMBER = re.compile(data.NUMBER_PATTERN)
#: a whole field that is a number, as a Spark SQL pattern literal (``RLIKE``)
_NUMBER_SQL = features.sql_text(f"^{data.NUMBER_PATTERN}$")


def is_number(text: str) -> bool:
    return _NUMBER.fullmatch(text) is not None


def split_encoded(line: str) -> list[str]:
    """The fields of a pre-encoded row (which may be quoted whole, as one string)."""
    fields = next(csv.reader([line]))
    if len(fields) == 1 and "," in fields[0]:  # the whole row quoted as one string
        fields = fields[0].split(",")
    return [f.strip() for f in fields]


class InputFormat(ABC):
    """One format's rules; ``detect`` builds the format of a file from its first line."""

    #: the name manifests and run states record
    name: ClassVar[str]
    #: the label column's name
    label: ClassVar[str]
    #: line 1 is a header, not a row
    has_header: ClassVar[bool]
    #: the name of the identifier column of scores
    identifier: ClassVar[str]
    #: the file's columns
    columns: list[str]
    #: columns collected per value (the one-hot encoding's categories)
    categorical: Sequence[str] = ()
    #: columns no feature is made of
    dropped: list[str]

    @abstractmethod
    def split(self, line: str) -> list[str]:
        """A line's fields, as Python reads them."""

    @abstractmethod
    def check_row(self, fields: list[str], source: str, line: int) -> int:
        """Check one row (``line`` of ``source``); its label (0 for customers to score)."""

    @abstractmethod
    def encoding(self, categories: Mapping[str, Sequence[str]]) -> features.Encoding:
        """The features a model trained on this format takes."""

    @abstractmethod
    def scoring_encoding(self, manifest: Mapping[str, Any], source: str) -> features.Encoding:
        """How rows of this format are encoded for a model with feature manifest ``manifest``."""

    @abstractmethod
    def spark_fields(self):
        """(a line's fields as a Spark array of strings, true when the line has the wrong width)."""

    @abstractmethod
    def _spark_checks(self) -> tuple[list[str], str, dict[str, str]]:
        """(checks true for a bad row, true for a churner, categorical values) as Spark SQL text over
        ``_fields`` and ``_wrong_width`` (an expression parsed from text costs one round trip to the JVM,
        one built call by call a dozen)."""

    @abstractmethod
    def spark_named(self) -> list:
        """The file's columns by name as Spark columns, over ``_fields`` (what an encoding names)."""

    @abstractmethod
    def spark_label(self):
        """A row's label as a 0/1 Spark column named ``label``, over ``_fields``."""

    @abstractmethod
    def spark_identifier(self, source):
        """A row's identifier as a Spark column, over the rows of an ``etl.Source``."""

    def data_rows(self, lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
        """(line number, fields) of every row of a file's lines (the first line included)."""
        for number, line in enumerate(lines, start=1):
            if line.strip() and not (self.has_header and number == 1):
                yield number, self.split(line)

    def spark_problems(self):
        """(a Spark column true for a bad row, its label as 0/1, its categorical values) by the rules
        of ``check_row``."""
        from pyspark.sql import functions as F

        checks, positive, categories = self._spark_checks()
        bad = " OR ".join([f"contains(value, {features.sql_text(REPLACEMENT_CHARACTER)})", *checks])
        return (
            F.expr(bad),
            F.expr(f"CAST(coalesce({positive}, false) AS INT)"),
            {name: F.expr(value) for name, value in categories.items()},
        )

    def bad_line_error(self, text: str, source: str, line: int) -> DataValidationError:
        """The error the Python checks give for a line Spark flagged (the same rules, so the same words)."""
        if REPLACEMENT_CHARACTER in text:
            return DataValidationError(source, "not UTF-8 text (a byte sequence that is not UTF-8)", line=line)
        try:
            self.check_row(self.split(text), source, line)
        except DataValidationError as error:
            return error
        return DataValidationError(
            source,
            "the ETL job's checks reject this row and the Python checks do not; please report it with the row",
            line=line,
        )


class RawRecords(InputFormat):
    name = "raw"
    label = data.LABEL
    has_header = True
    identifier = data.IDENTIFIER[0]
    categorical = data.CATEGORICAL
    dropped = data.IDENTIFIER + data.CHARGES

    #: the columns a header must hold
    expected = data.RAW_COLUMNS

    def __init__(self, header: list[str], source: str):
        """``header``, checked: every expected column once, nothing unknown."""
        missing = [c for c in self.expected if c not in header]
        unknown = [c for c in header if c not in data.RAW_COLUMNS]
        if missing:
            raise MissingColumns(source, missing)
        if unknown:
            raise DataValidationError(source, f"unknown columns: {', '.join(unknown)}", line=1)
        duplicated = sorted({c for c in header if header.count(c) > 1})
        if duplicated:
            raise DataValidationError(source, f"duplicated columns: {', '.join(duplicated)}", line=1)
        self.columns = header
        self.index = {name: header.index(name) for name in data.RAW_COLUMNS if name in header}

    def split(self, line: str) -> list[str]:
        return next(csv.reader([line]), [])

    def data_rows(self, lines: Iterator[str]) -> Iterator[tuple[int, list[str]]]:
        """Rows as Python's csv module reads the lines after the header."""
        next(lines, None)
        for number, row in enumerate(csv.reader(lines), start=2):
            if row:
                yield number, row

    def check_row(self, fields: list[str], source: str, line: int) -> int:
        self._check_fields(fields, source, line)
        return _label_value(fields[self.index[data.LABEL]].strip(), source, line)

    def _check_fields(self, fields: list[str], source: str, line: int) -> None:
        """The checks every raw row takes, labelled or not."""
        if len(fields) != len(self.columns):
            raise DataValidationError(
                source, f"has {len(fields)} fields, the header has {len(self.columns)}", line=line
            )
        for name in data.NUMERIC + data.CHARGES:
            if not is_number(fields[self.index[name]]):
                raise DataValidationError(
                    source, f"value {fields[self.index[name]]!r} is not a number", line=line, column=name
                )
        for name in data.CATEGORICAL:
            value = fields[self.index[name]].strip()
            if not value:
                raise DataValidationError(source, "empty value", line=line, column=name)
            if name in data.YES_NO_COLUMNS and value not in data.YES_NO:
                raise DataValidationError(source, f"value {value!r} is not yes/no", line=line, column=name)

    def encoding(self, categories: Mapping[str, Sequence[str]]) -> features.Encoding:
        return features.raw_encoding(categories)

    def monitored_columns(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) columns a model's baseline describes: what the model reads of a record."""
        return list(data.MODEL_NUMERIC), list(data.CATEGORICAL)

    def scoring_encoding(self, manifest: Mapping[str, Any], source: str) -> features.Encoding:
        if manifest.get("format", self.name) != self.name:
            raise DataValidationError(
                source,
                "raw customer records, but the model was trained on pre-encoded rows: score rows encoded the same way",
                line=1,
            )
        return features.encoding_of(manifest)

    def spark_fields(self):
        """Lines are split on commas unless they hold a quote, which only the CSV parser reads right
        (slower, and most files have none)."""
        from pyspark.sql import functions as F

        width = len(self.columns)
        quoted = F.col("value").contains('"')
        schema = ", ".join(f"c{i} STRING" for i in range(width)) + ", _bad STRING"
        # RFC 4180 quoting, as Python's csv reads it: a quote inside a quoted field is doubled
        parsed = F.from_csv(
            F.col("value"), schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_bad", "escape": '"'}
        )
        plain = F.split(F.col("value"), ",")
        fields = F.when(quoted, F.array(*[parsed.getField(f"c{i}") for i in range(width)])).otherwise(plain)
        wrong_width = F.when(quoted, parsed.getField("_bad").isNotNull()).otherwise(F.size(plain) != width)
        return fields, wrong_width

    def _field(self, name: str) -> str:
        return f"_fields[{self.index[name]}]"

    def _label(self) -> str:
        return f"trim({self._field(data.LABEL)})"

    def _spark_field_checks(self) -> list[str]:
        """``_check_fields`` as Spark SQL text."""
        checks = ["_wrong_width"]
        checks += [f"NOT coalesce({self._field(n)} RLIKE {_NUMBER_SQL}, false)" for n in data.NUMERIC + data.CHARGES]
        checks += [f"coalesce(trim({self._field(n)}), '') = ''" for n in data.CATEGORICAL]
        yes_no = _sql_set(data.YES_NO)
        checks += [f"NOT coalesce(trim({self._field(n)}) IN {yes_no}, false)" for n in data.YES_NO_COLUMNS]
        return checks

    def _spark_checks(self):
        checks = self._spark_field_checks()
        checks.append(f"NOT coalesce({self._label()} IN {_sql_set(data.TRUE_LABELS | data.FALSE_LABELS)}, false)")
        categories = {name: f"trim({self._field(name)})" for name in data.CATEGORICAL}
        return checks, f"{self._label()} IN {_sql_set(data.TRUE_LABELS)}", categories

    def spark_named(self) -> list:
        from pyspark.sql import functions as F

        return [F.expr(f"{self._field(name)} AS {features.sql_name(name)}") for name in self.columns]

    def spark_label(self):
        from pyspark.sql import functions as F

        churner = f"{self._label()} IN {_sql_set(data.TRUE_LABELS)}"
        return F.expr(f"CAST(CASE WHEN {churner} THEN 1 ELSE 0 END AS INT) AS label")

    def spark_identifier(self, source):
        from pyspark.sql import functions as F

        return F.expr(f"trim({self._field(self.identifier)})")


class CustomersToScore(RawRecords):
    """Raw records of customers to score: each named by its identifier; a label column, if there is
    one, is not read."""

    expected = [c for c in data.RAW_COLUMNS if c != data.LABEL]

    def check_row(self, fields: list[str], source: str, line: int) -> int:
        self._check_fields(fields, source, line)
        if re.fullmatch(data.BLANK_PATTERN, fields[self.index[self.identifier]]):
            raise DataValidationError(
                source, "empty value: the scores name each customer by it", line=line, column=self.identifier
            )
        return 0

    def _spark_checks(self):
        blank = features.sql_text(f"^{data.BLANK_PATTERN}$")
        checks = self._spark_field_checks()
        checks.append(f"coalesce({self._field(self.identifier)} RLIKE {blank}, true)")
        return checks, "false", {name: f"trim({self._field(name)})" for name in data.CATEGORICAL}


class EncodedRows(InputFormat):
    name = "encoded"
    label = "label"
    has_header = False
    identifier = ROW_NUMBER
    dropped: list[str] = []

    def __init__(self, width: int, source: str):
        if width < 2:
            raise DataValidationError(source, "needs a label and at least one feature", line=1)
        self.width = width
        self.columns = ["label"] + [f"f{i}" for i in range(1, width)]

    def split(self, line: str) -> list[str]:
        return split_encoded(line)

    def monitored_columns(self) -> tuple[list[str], list[str]]:
        """(numeric, categorical) columns a model's baseline describes: every feature."""
        return self.columns[1:], []

    def check_row(self, fields: list[str], source: str, line: int) -> int:
        if len(fields) != self.width:
            raise DataValidationError(source, f"has {len(fields)} fields, earlier rows have {self.width}", line=line)
        for position, value in enumerate(fields):
            if not is_number(value):
                column = "label" if position == 0 else f"feature {position}"
                raise DataValidationError(source, f"value {value!r} is not a number", line=line, column=column)
        label = float(fields[0])
        if label not in (0.0, 1.0):
            raise DataValidationError(
                source, f"label {fields[0]!r} is not binary (expected 0 or 1)", line=line, column="label"
            )
        return int(label)

    def encoding(self, categories: Mapping[str, Sequence[str]]) -> features.Encoding:
        return features.position_encoding(self.width)

    def scoring_encoding(self, manifest: Mapping[str, Any], source: str) -> features.Encoding:
        if self.width - 1 != len(manifest["features"]):
            raise DataValidationError(
                source,
                f"pre-encoded rows have {self.width - 1} features after the label, the model takes "
                f"{len(manifest['features'])}",
                line=1,
            )
        return features.position_encoding(self.width)

    def spark_fields(self):
        from pyspark.sql import functions as F

        return F.split(F.regexp_replace(F.col("value"), '"', ""), ","), F.lit(False)

    def _spark_checks(self):
        label = "CAST(trim(_fields[0]) AS DOUBLE)"
        checks = [
            f"size(_fields) != {self.width}",
            f"exists(_fields, field -> NOT field RLIKE {_NUMBER_SQL})",
            f"NOT coalesce({label} IN (0.0D, 1.0D), false)",
        ]
        return checks, f"{label} = 1.0D", {}

    def spark_named(self) -> list:
        from pyspark.sql import functions as F

        return [F.expr(f"trim(_fields[{i}]) AS {features.sql_name(name)}") for i, name in enumerate(self.columns) if i]

    def spark_label(self):
        from pyspark.sql import functions as F

        return F.expr("CAST(CAST(trim(_fields[0]) AS DOUBLE) AS INT) AS label")

    def spark_identifier(self, source):
        return source.line_number(source.partition_offsets())


def detect(first_line: str, source: str, labelled: bool = True) -> InputFormat:
    """The format of a file whose first line is ``first_line``: raw (a header with the churn columns)
    or pre-encoded (label-first numeric rows). ``labelled=False`` (customers to score) takes a raw
    header without the label column too."""
    fields = next(csv.reader([first_line]), [])
    if not fields or not any(f.strip() for f in fields):
        raise DataValidationError(source, "the file is empty", line=1)
    names = [f.strip() for f in fields]
    raw = RawRecords if labelled else CustomersToScore
    if data.LABEL in names or not labelled and data.IDENTIFIER[0] in names:
        return raw(names, source)
    if all(is_number(f) for f in split_encoded(first_line)):
        return EncodedRows(len(split_encoded(first_line)), source)
    missing = [c for c in raw.expected if c not in names]
    raise DataValidationError(
        source,
        "unrecognised header: expected the raw churn header or label-first numeric rows; "
        f"missing columns: {', '.join(missing)}",
        line=1,
    )


def _sql_set(values) -> str:
    """Values as a Spark SQL ``IN`` list, in one order whatever the process (the same plan, so the same
    generated code, in every job run)."""
    return "(" + ", ".join(features.sql_text(value) for value in sorted(values)) + ")"


def _label_value(text: str, source: str, line: int) -> int:
    if text in data.TRUE_LABELS:
        return 1
    if text in data.FALSE_LABELS:
        return 0
    raise DataValidationError(
        source, f"label {text!r} is not binary (expected True./False. or 1/0)", line=line, column=data.LABEL
    )
