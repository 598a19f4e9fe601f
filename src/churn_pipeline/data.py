"""Customer data: the raw churn format's columns and values, and what a file holds.

The formats that read a file are ``formats``; a file read in this process is
``profiling``; every row is checked on Spark by the ETL job (``etl``); the
synthetic generator is ``synthetic``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import DataValidationError

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
#: features that add up columns: churn follows the whole bill and the whole use, which trees of a few
#: levels cannot add up from their parts (on the public data they lift cross-validated AUC: RESULTS §10)
TOTALS = {
    "Total Mins": ["Day Mins", "Eve Mins", "Night Mins", "Intl Mins"],
    "Total Charge": CHARGES,
}
#: the numeric columns a model reads of a raw record: its numeric features and what its totals add up
MODEL_NUMERIC = NUMERIC + [c for columns in TOTALS.values() for c in columns if c not in NUMERIC]
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
#: the categorical columns whose values are yes/no
YES_NO_COLUMNS = ["Int'l Plan", "VMail Plan"]


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
#: rows of the file notebook 01 checks and profiles; the ETL job checks every row
PROFILE_ROWS = 10_000


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


# --- synthetic data -------------------------------------------------------------------------------
