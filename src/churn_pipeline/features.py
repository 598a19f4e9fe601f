"""The feature encoding, defined once as data in the feature manifest and applied by Spark or by Python.

``raw_encoding`` builds the list of features (numeric columns, then one-hot
columns for each category seen in training) that the ETL writes into the
feature manifest. The ETL applies it with Spark column expressions; the
endpoint applies the very same list to raw customer records; neither holds a
feature definition of its own.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import data
from .errors import DataValidationError, MissingColumns

Encoding = list[dict[str, Any]]
#: the feature manifest's key of the encoding (manifests written before it had its name used ``transform``)
ENCODING_KEY = "encoding"
LEGACY_ENCODING_KEY = "transform"


def raw_encoding(categories: Mapping[str, Sequence[str]]) -> Encoding:
    """Numeric columns as they are, the totals (``data.TOTALS``), then one 0/1 column per (categorical
    column, value seen)."""
    encoding: Encoding = [{"feature": name, "column": name} for name in data.NUMERIC]
    encoding += [{"feature": name, "sum": list(columns)} for name, columns in data.TOTALS.items()]
    for column in data.CATEGORICAL:
        encoding += [
            {"feature": f"{column}_{value}", "column": column, "equals": value} for value in categories[column]
        ]
    return encoding


def encoding_of(manifest: Mapping[str, Any]) -> Encoding | None:
    """A feature manifest's encoding, whichever name it was written under; None when it has none."""
    return manifest.get(ENCODING_KEY, manifest.get(LEGACY_ENCODING_KEY))


def position_encoding(width: int) -> Encoding:
    """Pre-encoded rows: feature i is field i (field 0 is the label)."""
    return [{"feature": f"f{i}", "position": i} for i in range(1, width)]


def spark_columns(encoding: Encoding, fields: str = "_fields") -> list:
    """Spark column expressions for ``encoding`` (``fields``: the column of pre-encoded rows' split text),
    each parsed from SQL text in one call (a column built call by call costs a dozen round trips to the JVM)."""
    from pyspark.sql import functions as F

    return [F.expr(f"{_sql_value(step, fields)} AS {sql_name(step['feature'])}") for step in encoding]


def _sql_value(step: dict[str, Any], fields: str) -> str:
    if "position" in step:
        return f"CAST(trim({sql_name(fields)}[{int(step['position'])}]) AS DOUBLE)"
    if "sum" in step:  # added left to right, as ``total`` adds
        return " + ".join(f"CAST({sql_name(column)} AS DOUBLE)" for column in step["sum"])
    if "equals" in step:
        equal = f"trim(CAST({sql_name(step['column'])} AS STRING)) = {sql_text(step['equals'])}"
        return f"CASE WHEN {equal} THEN 1 ELSE 0 END"
    return f"CAST({sql_name(step['column'])} AS DOUBLE)"


def sql_name(name: str) -> str:
    """A column name in Spark SQL text, whatever it holds."""
    return "`" + name.replace("`", "``") + "`"


def sql_text(value: str) -> str:
    """A string literal in Spark SQL text that reads back as ``value`` (SQL text unescapes backslashes)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def encode_records(encoding: Encoding, records: Iterable[Mapping[str, str]], source: str = "request"):
    """Apply ``encoding`` to raw records (dicts of column -> text); a float32 matrix, one row per record."""
    import numpy as np

    if any("position" in step for step in encoding):
        raise DataValidationError(
            source, "records by column name need a model trained on raw records; this one takes CSV rows"
        )
    needed = sorted({column for step in encoding for column in columns_of(step)})
    rows = []
    for line, record in enumerate(records, start=2):
        missing = [c for c in needed if c not in record]
        if missing:
            raise MissingColumns(source, missing)
        row = []
        for step in encoding:
            if "equals" in step:
                row.append(1.0 if str(record[step["column"]]).strip() == step["equals"] else 0.0)
                continue
            row.append(total(_number(record[column], source, line, column) for column in columns_of(step)))
        rows.append(row)
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), len(encoding))


def total(values):
    """A total added left to right, for Spark columns and Python numbers alike, so the ETL and the
    endpoint get the same double (Python's own ``sum`` compensates rounding since 3.12, and would not)."""
    return functools.reduce(operator.add, values)


def columns_of(step: Mapping[str, Any]) -> list[str]:
    """The raw columns an encoding step reads (none for a pre-encoded field)."""
    return list(step["sum"]) if "sum" in step else [step["column"]] if "column" in step else []


def _number(value: Any, source: str, line: int, column: str) -> float:
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        raise DataValidationError(source, f"value {text!r} is not a number", line=line, column=column) from None
