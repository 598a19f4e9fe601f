"""Reasons: XGBoost's SHAP contributions, summed into the raw columns a person knows."""

import json

import numpy as np
import pytest
import xgboost as xgb

from churn_pipeline import data, explain, features, training


@pytest.fixture(scope="module")
def model(small_model):
    archive, manifest, etl_out = small_model
    test_features, _ = training.read_channel(etl_out / "test")
    return training.load_model_archive(archive), json.loads(manifest.read_text()), test_features


def test_contributions_and_bias_add_up_to_the_margin_of_every_row(model):
    booster, manifest, test_features = model
    per_column, bias = explain.contributions(booster, test_features, manifest)
    margin = booster.predict(xgb.DMatrix(test_features), output_margin=True)
    assert np.allclose(per_column.sum(axis=1) + bias, margin, atol=1e-4)
    assert per_column.shape == (len(test_features), len(explain.reason_columns(manifest)))


def test_reasons_name_raw_columns_one_hot_features_summed_into_theirs(model):
    booster, manifest, test_features = model
    columns = explain.reason_columns(manifest)
    assert "State" in columns and not any(c.startswith("State_") for c in columns)
    assert set(columns) == set(data.NUMERIC + list(data.TOTALS) + data.CATEGORICAL)  # a total by its name
    per_column, _ = explain.contributions(booster, test_features[:5], manifest)
    reasons = explain.top_reasons(per_column, columns, 3)
    assert [len(r) for r in reasons] == [3] * 5
    for row, found in zip(per_column, reasons):
        sizes = [abs(r["contribution"]) for r in found]
        assert sizes == sorted(sizes, reverse=True) and sizes[0] == pytest.approx(np.abs(row).max(), abs=1e-6)


def test_many_customer_service_calls_are_among_the_reasons_of_such_a_customer(model):
    booster, manifest, _ = model
    caller = dict(
        zip(
            data.RAW_COLUMNS,
            "NJ,95,415,350-1234,no,no,0,120.5,98,20.49,180.2,102,15.32,190.4,99,8.57,9.8,4,2.65,8,False.".split(","),
        )
    )
    matrix = features.encode_records(features.encoding_of(manifest), [caller])
    per_column, _ = explain.contributions(booster, matrix, manifest)
    reasons = explain.top_reasons(per_column, explain.reason_columns(manifest), 3)[0]
    assert "CustServ Calls" in [r["column"] for r in reasons]
    assert next(r for r in reasons if r["column"] == "CustServ Calls")["contribution"] > 0
