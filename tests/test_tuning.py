"""Hyper-parameter tuning: the search space by AMT's rules, the strategies' seeded proposals, and the local
tuning jobs' semantics (limits, the best job, failures, stopping, listing)."""

import threading
import time

import pytest
from botocore.exceptions import ClientError

from churn_pipeline import config, training, tuning
from churn_pipeline.backends.local import LocalBackend
from churn_pipeline.backends.local.tuning_jobs import FAILED_BEFORE_GIVING_UP, Proposer
from churn_pipeline.errors import ConfigError
from churn_pipeline.pipeline.search import search_progress


def _config(**overrides):
    return tuning.tuning_config(config.load(overrides={"tuning_max_jobs": 6, **overrides}))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"tuning_ranges": {"depth": {"min": 1, "max": 3}}}, "'depth': not a hyper-parameter"),
        ({"tuning_ranges": {"eta": {"min": 0.3, "max": 0.3}}}, "an empty range"),
        ({"tuning_ranges": {"max_depth": {"min": 1.5, "max": 3}}}, "an integer hyper-parameter"),
        ({"tuning_ranges": {"subsample": {"min": 0.5, "max": 2}}}, "outside what XGBoost accepts"),
        ({"tuning_ranges": {"eta": {"values": []}}}, "values must be a non-empty list"),
        ({"tuning_ranges": {"eta": {"min": 0.0, "max": 0.3, "scaling": "Logarithmic"}}}, "Logarithmic scaling"),
        ({"tuning_ranges": {"max_depth": {"min": 1, "max": 3, "scaling": "ReverseLogarithmic"}}}, "ReverseLogarithmic"),
        ({"tuning_ranges": {"eta": {"min": 0.1, "max": 0.2, "scaling": "Cubic"}}}, "ScalingType must be one of"),
        ({"tuning_strategy": "Grid"}, "categorical ranges only"),
        (
            {
                "tuning_strategy": "Grid",
                "tuning_ranges": {"max_depth": {"values": [2, 3, 4]}, "eta": {"values": [0.1, 0.3, 0.5]}},
            },
            "the grid has 9 points and tuning_max_jobs is 6",
        ),
        ({"tuning_objective": "validation:f1"}, "tuning_objective"),
    ],
)
def test_a_bad_search_space_is_refused_naming_the_parameter(overrides, words):
    """AMT-SEARCH-SPACE, in the parameters: the error names the range and what AMT refuses."""
    with pytest.raises(ConfigError, match=words):
        _config(**overrides)


def test_the_default_search_is_amts_config():
    found = _config()
    assert found["Strategy"] == "Bayesian" and found["RandomSeed"] == 42
    assert found["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "validation:auc"}
    assert found["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 6, "MaxParallelTrainingJobs": 2}
    assert set(tuning.tuned_names(found)) == set(tuning.DEFAULT_RANGES)
    grid = _config(
        tuning_strategy="Grid", tuning_ranges={"max_depth": {"values": [2, 3]}, "eta": {"values": [0.1, 0.3]}}
    )
    assert grid["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4  # AMT: the grid's size
    assert config.load()["tuning_max_jobs"] == 0  # no search unless asked


def test_random_draws_are_seeded_and_respect_each_ranges_scaling():
    ranges = {
        "max_depth": {"min": 2, "max": 4},
        "eta": {"min": 0.001, "max": 1.0, "scaling": "Logarithmic"},
        "subsample": {"min": 0.5, "max": 0.999, "scaling": "ReverseLogarithmic"},
        "num_round": {"values": [10, 20]},
    }
    found = _config(tuning_strategy="Random", tuning_ranges=ranges)
    drawn = Proposer(found).propose(400)
    assert drawn == Proposer(found).propose(400)
    assert drawn != Proposer({**found, "RandomSeed": 7}).propose(400)
    assert {d["max_depth"] for d in drawn} == {"2", "3", "4"} and {d["num_round"] for d in drawn} == {"10", "20"}
    etas = sorted(float(d["eta"]) for d in drawn)
    assert 0.001 <= etas[0] and etas[-1] <= 1.0
    assert 0.01 < etas[len(etas) // 2] < 0.1  # log scale: the median near the geometric middle (0.03)
    samples = sorted(float(d["subsample"]) for d in drawn)
    assert samples[len(samples) // 2] > 0.9  # reverse log: most draws near 1


def test_grid_runs_every_point_in_order_and_bayesian_learns_seeded():
    grid = _config(
        tuning_strategy="Grid", tuning_ranges={"max_depth": {"values": [2, 3]}, "eta": {"values": [0.1, 0.3]}}
    )
    points = Proposer(grid).propose(10)
    assert points == [{"max_depth": a, "eta": b} for a in ("2", "3") for b in ("0.1", "0.3")]

    bayesian = _config(tuning_ranges={"eta": {"min": 0.01, "max": 1.0}, "max_depth": {"min": 2, "max": 10}})

    def search(seed):
        proposer, seen = Proposer({**bayesian, "RandomSeed": seed}), []
        for _ in range(12):
            batch = proposer.propose(2)
            seen += batch
            proposer.observe([-abs(float(p["eta"]) - 0.3) - abs(int(p["max_depth"]) - 4) / 10 for p in batch])
        return seen

    first = search(1)
    assert first == search(1) and first != search(2)
    minimising = Proposer({**_config(tuning_objective="validation:logloss"), "RandomSeed": 3})
    minimising.propose(2)
    minimising.observe([0.3, 0.2])  # AMT's Minimize, as the study's direction
    assert minimising.study.best_value == 0.2 and len(minimising.propose(2)) == 2
    assert all(0.01 <= float(p["eta"]) <= 1.0 and 2 <= int(p["max_depth"]) <= 10 for p in first)
    late = [abs(float(p["eta"]) - 0.3) for p in first[12:]]
    early = [abs(float(p["eta"]) - 0.3) for p in first[:8]]  # the first batches are TPE's random start
    assert sorted(late)[len(late) // 2] < sorted(early)[len(early) // 2]


@pytest.fixture
def sagemaker(tmp_path):
    backend = LocalBackend(None, tmp_path / "home")
    rows = [(i % 2, (i % 2) * 1.0 + (i % 7) * 0.3, (i % 5) * 1.0) for i in range(300)]
    text = "".join(f"{label},{a},{b}\n" for label, a, b in rows).encode()
    backend.store.put("s3://b/etl/train/part-00000.csv", text)
    backend.store.put("s3://b/etl/validation/part-00000.csv", text)
    return backend.client("sagemaker")


def _definition(**static):
    channels = [
        {"ChannelName": c, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://b/etl/{c}/"}}}
        for c in ("train", "validation")
    ]
    hyperparameters = {**training.hyperparameters_from(config.DEFAULTS), "num_round": "3", **static}
    for name in ("max_depth", "eta"):
        hyperparameters.pop(name)
    return {
        "AlgorithmSpecification": {"TrainingImage": "xgb", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::123456789012:role/r",
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": "s3://b/models"},
        "StaticHyperParameters": hyperparameters,
    }


def _search(strategy="Random", jobs=4, parallel=2):
    ranges = {"max_depth": {"min": 1, "max": 6}, "eta": {"min": 0.05, "max": 0.9}}
    return _config(
        tuning_strategy=strategy, tuning_ranges=ranges, tuning_max_jobs=jobs, tuning_max_parallel_jobs=parallel
    )


def test_a_local_tuning_job_runs_its_jobs_and_names_the_best(sagemaker):
    """AMT-BEST-JOB: every training job carries the tuning job's ARN and the objective hyper-parameter; the
    best job is the one with the best final objective; the list sorts and pages as AMT's does."""
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="churn-tune-1",
        HyperParameterTuningJobConfig=_search(),
        TrainingJobDefinition=_definition(),
    )
    job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="churn-tune-1")
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert job["TrainingJobStatusCounters"] == {
        "Completed": 4,
        "InProgress": 0,
        "RetryableError": 0,
        "NonRetryableError": 0,
        "Stopped": 0,
    }
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 4, "Pending": 0, "Failed": 0}
    listed = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="churn-tune-1", SortBy="FinalObjectiveMetricValue", SortOrder="Descending"
    )["TrainingJobSummaries"]
    assert len(listed) == 4 and all(s["TrainingJobName"].startswith("churn-tune-1-00") for s in listed)
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in listed]
    assert values == sorted(values, reverse=True)
    best = job["BestTrainingJob"]
    assert best["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == values[0]
    assert set(best["TunedHyperParameters"]) == {"max_depth", "eta"}
    trained = sagemaker.describe_training_job(TrainingJobName=best["TrainingJobName"])
    assert trained["TuningJobArn"] == job["HyperParameterTuningJobArn"]
    assert trained["HyperParameters"][tuning.OBJECTIVE_HYPERPARAMETER] == "validation:auc"
    assert trained["HyperParameters"]["max_depth"] == best["TunedHyperParameters"]["max_depth"]
    assert "validation:auc" in training.metrics_by_name(trained["FinalMetricDataList"])
    page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="churn-tune-1", MaxResults=3
    )
    rest = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="churn-tune-1", MaxResults=3, NextToken=page["NextToken"]
    )
    names = [s["TrainingJobName"] for s in page["TrainingJobSummaries"] + rest["TrainingJobSummaries"]]
    assert names == sorted(names) and len(names) == 4 and "NextToken" not in rest

    assert (
        search_progress(sagemaker, "churn-tune-1") == f"4/4 jobs done, 0 running, best validation:auc {values[0]:.4f}"
    )
    assert search_progress(sagemaker, "churn-tune-2") == "starting"

    with pytest.raises(ClientError, match="already exists"):
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="churn-tune-1",
            HyperParameterTuningJobConfig=_search(),
            TrainingJobDefinition=_definition(),
        )


def test_amt_names_limits_and_failures(sagemaker):
    """AMT-NAME: a tuning job's name is at most 32 characters. AMT-FAILED-JOBS: failed training jobs count,
    and a search whose first five all fail ends Failed with AMT's reason."""
    with pytest.raises(ClientError, match="length less than or equal to 32"):
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="t" * 33,
            HyperParameterTuningJobConfig=_search(),
            TrainingJobDefinition=_definition(),
        )
    with pytest.raises(ClientError, match="categorical ranges only"):
        sagemaker.create_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="grid",
            HyperParameterTuningJobConfig={**_search(), "Strategy": "Grid"},
            TrainingJobDefinition=_definition(),
        )
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName="all-fail",
        HyperParameterTuningJobConfig=_search(jobs=9),
        TrainingJobDefinition=_definition(objective="reg:nonsense"),
    )
    job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="all-fail")
    failed = job["TrainingJobStatusCounters"]["NonRetryableError"]
    assert job["HyperParameterTuningJobStatus"] == "Failed" and "No training job succeeded" in job["FailureReason"]
    assert FAILED_BEFORE_GIVING_UP <= failed < FAILED_BEFORE_GIVING_UP + 2  # those already running finish
    assert job["ObjectiveStatusCounters"]["Failed"] == failed and "BestTrainingJob" not in job


def test_a_stopped_tuning_job_starts_no_more_training_jobs(sagemaker):
    """AMT-STOP: no training job starts after the stop."""
    run = threading.Thread(
        target=sagemaker.create_hyper_parameter_tuning_job,
        kwargs={
            "HyperParameterTuningJobName": "stopped",
            "HyperParameterTuningJobConfig": _search(jobs=8, parallel=1),
            "TrainingJobDefinition": _definition(),
        },
    )
    run.start()
    while not sagemaker.tuning_jobs.exists("stopped"):
        time.sleep(0.05)
    sagemaker.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopped")
    run.join()
    job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="stopped")
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert sum(job["TrainingJobStatusCounters"].values()) < 8


def test_the_search_report_marks_the_best_job_and_plots_each_tuned_range():
    import matplotlib

    matplotlib.use("Agg")
    from churn_pipeline import tuning_report

    jobs = [
        {"job": "t-001-a", "status": "Completed", "objective": 0.91, "best": False, "eta": "0.1", "max_depth": "3"},
        {"job": "t-002-b", "status": "Completed", "objective": 0.93, "best": True, "eta": "0.3", "max_depth": "5"},
        {"job": "t-003-c", "status": "Failed", "objective": None, "best": False, "eta": "0.9", "max_depth": "9"},
    ]
    table = tuning_report.search_table(jobs, "validation:auc")
    assert list(table.index) == ["t-001-a", "t-002-b", "t-003-c"] and table.loc["t-002-b", "best"] == "best"
    assert table.loc["t-001-a", "validation:auc"] == 0.91
    axes = tuning_report.plot_search(jobs, "validation:auc")
    assert [ax.get_xlabel() for ax in axes] == ["eta", "max_depth"]
    assert len(axes[0].collections[0].get_offsets()) == 2  # the failed job has no objective to plot


def test_a_records_search_reads_as_lines_naming_the_tuning_job():
    from churn_pipeline import tuning_report

    search = {
        "job_name": "churn-local-1a2b3c4d",
        **_config(
            tuning_ranges={
                "eta": {"min": 0.05, "max": 0.5, "scaling": "Logarithmic"},
                "num_round": {"values": [50, 100]},
            }
        ),
    }
    lines = dict(tuning_report.search_lines(search, "churn-local-1a2b3c4d-1-004-0a1b2c3d"))
    assert lines["search"] == "Bayesian, 6 jobs (2 at once), validation:auc (Maximize), seed 42"
    assert lines["tuning job"] == "churn-local-1a2b3c4d-1"  # the redriven attempt's
    assert lines["range eta"] == "Continuous 0.05 to 0.5 (Logarithmic)" and lines["range num_round"] == "one of 50, 100"
