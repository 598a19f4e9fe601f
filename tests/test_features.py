import numpy as np
import pytest

from churn_pipeline import data, features
from churn_pipeline.errors import DataValidationError, MissingColumns

CUSTOMER = dict(
    zip(
        data.RAW_COLUMNS,
        "NJ,95,415,350-1234,no,no,0,120.5,98,20.49,180.2,102,15.32,190.4,99,8.57,9.8,4,2.65,8,False.".split(","),
    )
)


def _encoded(record, encoding=None):
    encoding = encoding or features.raw_encoding({column: ["no", "yes"] for column in data.CATEGORICAL})
    row = features.encode_records(encoding, [record])[0]
    return {step["feature"]: float(value) for step, value in zip(encoding, row)}


def test_totals_add_their_columns_left_to_right_as_spark_adds_them():
    encoded = _encoded(CUSTOMER)
    assert encoded["Total Mins"] == pytest.approx(120.5 + 180.2 + 190.4 + 9.8)
    assert encoded["Total Charge"] == np.float32(((20.49 + 15.32) + 8.57) + 2.65)
    assert encoded["Day Mins"] == pytest.approx(120.5) and "Day Charge" not in encoded


def test_a_total_is_the_left_to_right_sum_on_every_python():
    """Spark adds left to right; Python 3.12's ``sum`` compensates and would give 1.5 here."""
    minutes = {"Day Mins": "1e16", "Eve Mins": "1", "Night Mins": "-1e16", "Intl Mins": "0.5"}
    assert _encoded({**CUSTOMER, **minutes})["Total Mins"] == 0.5


def test_a_total_names_its_bad_column_and_line():
    with pytest.raises(DataValidationError) as caught:
        _encoded({**CUSTOMER, "Night Charge": "8,57"})
    assert caught.value.column == "Night Charge" and caught.value.line == 2
    with pytest.raises(MissingColumns, match="Intl Charge"):
        _encoded({k: v for k, v in CUSTOMER.items() if k != "Intl Charge"})


def test_records_by_name_are_refused_by_a_model_of_pre_encoded_rows():
    with pytest.raises(DataValidationError, match="trained on raw records"):
        features.encode_records(features.position_encoding(4), [CUSTOMER])


@pytest.mark.spark
def test_spark_and_python_encode_any_name_and_category_alike(spark):
    """The encoding's Spark expressions are SQL text: names and categories holding quotes, backslashes,
    backticks or escapes read back as they are, and give the features the Python encoding gives."""
    odd = ["it's", "back\\slash", "\\u0041", "tick`", "\\'", "line\nbreak", "ünï ☃", ""]
    encoding = [
        {"feature": "plain`name", "column": "Day`Mins"},
        {"feature": "sum's", "sum": ["Day`Mins", "Eve Mins"]},
        *[{"feature": f"Plan_{value}", "column": "Pl'an", "equals": value} for value in odd],
    ]
    records = [{"Day`Mins": "1.5", "Eve Mins": "2", "Pl'an": f" {value} "} for value in [*odd, "other"]]
    frame = spark.createDataFrame([list(record.values()) for record in records], list(records[0]))
    rows = frame.select(*features.spark_columns(encoding)).collect()
    assert [list(row) for row in rows] == features.encode_records(encoding, records).tolist()
    assert list(rows[0].asDict()) == [step["feature"] for step in encoding]
