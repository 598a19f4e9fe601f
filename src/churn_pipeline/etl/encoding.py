"""Every row's features by a feature encoding, as Spark columns after the columns a pass needs."""

from __future__ import annotations

from .. import data, features
from .source import Source


def feature_frame(source: Source, encoding: features.Encoding, *leading):
    """Every row's features by ``encoding``, after the ``leading`` columns (which may use ``_id``,
    ``value``, ``_fields`` and the format's columns by name)."""
    named = source.rows.select("_id", "value", "_fields", *source.format.spark_named())
    return named.select(*leading, *features.spark_columns(encoding, "_fields"))


def encoded_frame(source: Source, summary: data.DataSummary, seed: int):
    """``label``, ``_order`` and the features of every row of a validated input; with the encoding."""
    encoding = source.format.encoding(summary.categories)
    return feature_frame(source, encoding, source.format.spark_label(), source.order(seed).alias("_order")), encoding
