"""A window's column counts on Spark equal the in-memory counts, value by value, for every kind of bad
value a data-quality check must see."""

import pytest

from churn_pipeline import data, monitoring, synthetic
from churn_pipeline.etl import window


@pytest.mark.spark
def test_spark_codes_every_kind_of_value_as_the_in_memory_counts_do(spark):
    """Missing, blank, not a number (by the data's rule: "NaN", "inf", "1d" are not), a fraction in a
    whole-number column (mismatched and counted in its decile), negatives (whole, fractional and
    mismatched), values on a decile's edge, a category the baseline never saw and a blank category:
    every count equal."""
    baseline = monitoring.statistics_of(synthetic.generate_synthetic(2_000, 1), data.NUMERIC, data.CATEGORICAL)
    customers = synthetic.generate_synthetic(300, 2)
    columns = {name: [str(v) for v in customers[name].tolist()] for name in (*data.NUMERIC, *data.CATEGORICAL)}
    edges = monitoring.deciles(next(f for f in baseline["features"] if f["name"] == "Day Mins"))
    odd = {
        "Account Length": ["", "  ", "abc", "1.5", "-3", "-1.5", "NaNa", "7"],
        "Day Mins": ["-0.5", str(edges[0]), str(edges[4]), str(edges[-1]), "", "x", "1e3", " 12.5 "],
        "CustServ Calls": ["2.0", "-0", "+3", "NaN", "inf", "1d", "1_000", "0x10"],
        "Eve Calls": ["0x1p3", "1.5F", "-Infinity", "+inf", "nan", "1e2", "1.", ".5"],
        "State": ["ZZ", "", " ", "KS", "ZZ", "YY", "OH", "OH"],
        "VMail Plan": ["", "yes", "maybe", "no", "no", "no", "", "yes"],
    }
    for name, values in odd.items():
        columns[name][: len(values)] = values
    frame = spark.createDataFrame(list(zip(*columns.values())), list(columns))
    on_spark = window.column_counts(frame, baseline)
    in_memory = monitoring.window_counts(baseline, columns)
    assert on_spark == in_memory
    account = on_spark["columns"]["Account Length"]
    assert account["missing"] == 2 and account["mismatched"] == 4 and account["negative"] >= 2
    assert on_spark["columns"]["State"]["values"]["ZZ"] == 2 and on_spark["columns"]["State"]["missing"] == 2
    assert on_spark["columns"]["CustServ Calls"]["mismatched"] == 5
    assert on_spark["columns"]["Eve Calls"]["mismatched"] == 6  # all but 1e2 and 1. (.5 is not whole)
    assert window.column_counts(frame.limit(0), baseline)["items"] == 0


@pytest.mark.spark
def test_both_decile_forms_count_as_numpy_does(spark):
    """The compiled search (scores) and the array filter (columns) put every value, edges and repeated
    edges included, in the interval ``monitoring.decile_counts`` gives it."""
    from pyspark.sql import functions as F

    edges = [0.1, 0.2, 0.2, 0.35, 0.5, 0.5, 0.5, 0.7, 0.9]
    values = [0.0, 0.1, 0.15, 0.2, 0.3, 0.35, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, -1.0, 0.2000001, 0.0999999]
    frame = spark.createDataFrame([(v,) for v in values], "score double")
    for compiled in (False, True):
        placed = frame.select(window._decile(F.col("score"), edges, compiled).alias("d")).collect()
        assert [sum(1 for row in placed if row["d"] == k) for k in range(10)] == monitoring.decile_counts(values, edges)
    nulls = spark.createDataFrame([(None,)], "score double").select(window._decile(F.col("score"), edges, True))
    assert nulls.first()[0] is None
