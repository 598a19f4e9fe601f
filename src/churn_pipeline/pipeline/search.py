"""A run's hyper-parameter search: the execution input that chooses it, and its tuning job's training
jobs as the CLI's progress and notebook 02 show them."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from .. import names, tuning
from ..training import hyperparameters_from
from .run import Run


def tuning_input(run: Run) -> dict[str, Any]:
    """The execution input that chooses one training job or a tuning job (``tuning_max_jobs`` > 0):
    AMT's config, the static hyper-parameters (the tuned ones left out) and what the registry keeps."""
    hyperparameters = hyperparameters_from(run.params)
    if not run.params["tuning_max_jobs"]:
        return {
            "HyperParameters": hyperparameters,
            "Tuning": False,
            "TuningJobName": "",
            "TuningConfig": {},
            "TuningRecord": {},
        }
    config = tuning.tuning_config(run.params)
    name = names.tuning_job_name(run.params, run.run_id)
    tuned = tuning.tuned_names(config)
    return {
        "HyperParameters": {k: v for k, v in hyperparameters.items() if k not in tuned},
        "Tuning": True,
        "TuningJobName": name,
        "TuningConfig": config,
        "TuningRecord": {"job_name": name, **config},
    }


def tuning_job_name(run: Run, redrive_count: int) -> str:
    """The tuning job an execution's attempt runs (the state machine appends the redrive count)."""
    return f"{names.tuning_job_name(run.params, run.run_id)}-{redrive_count}"


def search_progress(sagemaker, tuning_job: str) -> str:
    """One line: jobs done of the limit, running, and the best objective so far (``starting`` until the
    tuning job exists)."""
    try:
        job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    except ClientError:
        return "starting"
    counters = job["TrainingJobStatusCounters"]
    done = sum(counters.values()) - counters["InProgress"]
    limit = job["HyperParameterTuningJobConfig"]["ResourceLimits"].get("MaxNumberOfTrainingJobs", "?")
    line = f"{done}/{limit} jobs done, {counters['InProgress']} running"
    best = job.get("BestTrainingJob", {}).get("FinalHyperParameterTuningJobObjectiveMetric")
    return f"{line}, best {best['MetricName']} {best['Value']:.4f}" if best else line


def search_jobs(run: Run, redrive_count: int | None = None) -> list[dict[str, Any]] | None:
    """The search's training jobs (name, status, objective, tuned hyper-parameters, best or not), in job
    order; None when the run trained one job."""
    if not run.params["tuning_max_jobs"]:
        return None
    redrive_count = run.state.get("redriven", 0) if redrive_count is None else redrive_count
    sagemaker, name = run.backend.client("sagemaker"), tuning_job_name(run, redrive_count)
    job = sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    best = job.get("BestTrainingJob", {}).get("TrainingJobName")
    summaries, token = [], None
    while True:
        page = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, MaxResults=100, **({"NextToken": token} if token else {})
        )
        summaries += page["TrainingJobSummaries"]
        token = page.get("NextToken")
        if not token:
            break
    return [
        {
            "job": s["TrainingJobName"],
            "status": s["TrainingJobStatus"],
            "objective": s.get("FinalHyperParameterTuningJobObjectiveMetric", {}).get("Value"),
            "best": s["TrainingJobName"] == best,
            **s["TunedHyperParameters"],
        }
        for s in summaries
    ]
