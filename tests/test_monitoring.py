"""A model's baseline and drift against it: pure functions on fixed seeds (no Spark)."""

import pytest

from churn_pipeline import data, monitoring, synthetic
from churn_pipeline.errors import PipelineError


@pytest.fixture(scope="module")
def baseline():
    return monitoring.statistics_of(synthetic.generate_synthetic(20_000, 1), data.NUMERIC, data.CATEGORICAL)


def drifted(baseline, seed: int, shifts=()) -> list[str]:
    window = synthetic.generate_synthetic(5_000, seed, shifts)
    report = monitoring.feature_drift(baseline, monitoring.window_counts(baseline, window))
    return [name for name, found in report.items() if found["drifted"]]


@pytest.mark.parametrize(
    "shift, column", [("day-mins-up", "Day Mins"), ("more-intl-plans", "Int'l Plan"), ("new-state", "State")]
)
def test_each_named_shift_is_flagged_on_the_column_it_touched_and_no_other(baseline, shift, column):
    """Windows of 5,000: a 15 % rise in day minutes, 25 % international plans, 10 % of a new state."""
    for seed in (2, 3, 4):
        assert drifted(baseline, seed, (shift,)) == [column]


def test_windows_from_the_training_distribution_rarely_drift(baseline):
    """At most 1 of 20 windows of 5,000 (the benchmark measures the rate over 200)."""
    flagged = [seed for seed in range(10, 30) if drifted(baseline, seed)]
    assert len(flagged) <= 1, flagged


def test_a_whole_number_column_with_ties_is_compared_on_its_own_shares(baseline):
    """CustServ Calls takes a few values: its deciles tie, and the expected shares are the baseline's own."""
    calls = next(f for f in baseline["features"] if f["name"] == "CustServ Calls")
    shares = monitoring.expected_shares(calls)
    assert calls["inferred_type"] == "Integral" and sum(shares) == pytest.approx(1.0)
    assert len(set(monitoring.deciles(calls))) < 9 and max(shares) > 0.15


def test_the_baseline_keeps_model_monitors_fields(baseline):
    """MONITOR-FORMATS"""
    monitoring.check_statistics(baseline, "baseline")
    day = next(f for f in baseline["features"] if f["name"] == "Day Mins")["numerical_statistics"]
    assert sum(b["count"] for b in day["distribution"]["kll"]["buckets"]) == baseline["dataset"]["item_count"]
    constraints = monitoring.constraints_document(baseline)
    state = next(f for f in constraints["features"] if f["name"] == "State")
    assert state["completeness"] == 1.0 and synthetic.NEW_STATE not in state["string_constraints"]["domains"]
    with pytest.raises(PipelineError, match="not a Model Monitor statistics.json"):
        monitoring.check_statistics({"dataset": {"item_count": "many"}, "features": []}, "x.json")


def test_a_window_without_rows_or_columns_is_refused(baseline):
    counts = monitoring.window_counts(baseline, synthetic.generate_synthetic(100, 5))
    columns = counts["columns"]
    with pytest.raises(PipelineError, match="no counts for Day Mins"):
        monitoring.feature_drift(baseline, {**counts, "columns": {k: v for k, v in columns.items() if k != "Day Mins"}})
    emptied = {**columns, "Day Mins": {**columns["Day Mins"], "deciles": [0] * 10}}
    with pytest.raises(PipelineError, match="no rows"):
        monitoring.feature_drift(baseline, {**counts, "columns": emptied})


def test_constraint_violations_use_model_monitors_check_types(baseline):
    """MONITOR-FORMATS: constraint_violations.json of a window with a new state, a text in a number column,
    a negative value, a missing value and a column the baseline lacks."""
    constraints = monitoring.constraints_document(baseline)
    window = synthetic.generate_synthetic(1_000, 6, ("new-state",))
    window["State"] = window["State"].astype(object)
    window["State"][:100] = "PR"  # 10 % plus the draws: over the 10 % domain threshold
    window["Day Calls"] = window["Day Calls"].astype(object)
    window["Day Calls"][:150] = "many"
    window["Eve Mins"] = window["Eve Mins"].copy()
    window["Eve Mins"][0] = -1.0
    window["VMail Plan"] = window["VMail Plan"].astype(object)
    window["VMail Plan"][5] = ""
    counts = monitoring.window_counts(baseline, window)
    counts["columns"]["Tenure"] = {"present": 1_000, "missing": 0, "values": {}}
    found = monitoring.constraint_violations(constraints, counts)["violations"]
    kinds = {(v["feature_name"], v["constraint_check_type"]) for v in found}
    assert kinds == {
        ("State", "categorical_values_check"),
        ("Day Calls", "data_type_check"),
        ("Eve Mins", "data_type_check"),
        ("VMail Plan", "completeness_check"),
        ("Tenure", "extra_column_check"),
    }
    assert all(set(v) == {"feature_name", "constraint_check_type", "description"} for v in found)
    drift = monitoring.drift_violations(monitoring.feature_drift(baseline, counts))
    assert {v["feature_name"] for v in drift} >= {"State"} and {v["constraint_check_type"] for v in drift} == {
        "baseline_drift_check"
    }


def test_generate_data_writes_a_named_shift_and_refuses_an_unknown_one(tmp_path):
    plain = synthetic.generate_synthetic(2_000, 9)
    shifted = synthetic.generate_synthetic(2_000, 9, ("day-mins-up",))
    assert (shifted["Eve Mins"] == plain["Eve Mins"]).all() and shifted["Day Mins"].mean() > plain["Day Mins"].mean()
    with pytest.raises(PipelineError, match="unknown shift warmer; the shifts are day-mins-up"):
        synthetic.generate_file(tmp_path / "x.csv", 10, 1, ("warmer",))
    assert not (tmp_path / "x.csv").exists()
