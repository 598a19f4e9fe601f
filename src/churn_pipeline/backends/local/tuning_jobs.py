"""Local SageMaker hyper-parameter tuning jobs, with AMT's semantics: training jobs (each in a process of
its own, as ``create_training_job`` runs them) up to the parallel limit, proposed by the job's strategy.

Strategies: ``Grid`` runs every point of the categorical grid in order; ``Random`` draws each range by its
scaling (``Auto`` as ``Linear``); ``Bayesian`` asks Optuna's TPE sampler (a tree-structured Parzen
estimator; AMT's Bayesian search is a Gaussian-process regression, so the two explore differently but
both learn from the finished jobs). Every strategy is seeded by the config's ``RandomSeed``, and proposals
come in batches of the parallel limit, told back in job order: which job ends first never changes the
next batch, so the same config gives the same jobs.
"""

from __future__ import annotations

import itertools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ... import tuning
from ...aws_errors import SageMakerResourceInUse, SageMakerResourceNotFound, SageMakerValidation
from .common import JsonStore, arn, now

#: AMT ends a tuning job as failed when this many training jobs failed and none succeeded (the
#: FailureReason it gives: "No training job succeeded after 5 attempts"; row AMT-FAILED-JOBS)
FAILED_BEFORE_GIVING_UP = 5


class Proposer:
    """The next hyper-parameters of a tuning job's strategy, as AMT's strings."""

    def __init__(self, config: dict[str, Any]):
        import numpy as np

        self.config, self.ranges = config, config["ParameterRanges"]
        self.random = np.random.default_rng(config.get("RandomSeed", 0))
        self.grid = self._grid() if config["Strategy"] == "Grid" else None
        self.study, self.pending = self._study() if config["Strategy"] == "Bayesian" else None, []

    def _grid(self):
        categorical = self.ranges[tuning.CATEGORICAL]
        names = [entry["Name"] for entry in categorical]
        return iter([dict(zip(names, point)) for point in itertools.product(*[e["Values"] for e in categorical])])

    def _study(self):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        objective = self.config["HyperParameterTuningJobObjective"]["Type"]
        sampler = optuna.samplers.TPESampler(seed=self.config.get("RandomSeed", 0), multivariate=True)
        return optuna.create_study(direction=objective.lower(), sampler=sampler)  # Maximize, Minimize

    def propose(self, count: int) -> list[dict[str, str]]:
        if self.grid is not None:
            return list(itertools.islice(self.grid, count))
        if self.study is not None:
            self.pending = [self.study.ask(self._distributions()) for _ in range(count)]
            return [self._from_trial(trial.params) for trial in self.pending]
        return [self._drawn() for _ in range(count)]

    def observe(self, values: list[float | None]) -> None:
        """The objective of each job of the last batch, in proposal order (None: the job failed)."""
        import optuna

        for trial, value in zip(self.pending, values):
            if value is None or math.isnan(value):
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                self.study.tell(trial, value)
        self.pending = []

    def _drawn(self) -> dict[str, str]:
        drawn = {}
        for kind, entries in self.ranges.items():
            for entry in entries:
                if kind == tuning.CATEGORICAL:
                    drawn[entry["Name"]] = entry["Values"][int(self.random.integers(len(entry["Values"])))]
                    continue
                low, high, scaling = float(entry["MinValue"]), float(entry["MaxValue"]), entry.get("ScalingType")
                integer = kind == tuning.KINDS["Integer"]
                if scaling == "Logarithmic":
                    value = math.exp(self.random.uniform(math.log(low), math.log(high + integer)))
                elif scaling == "ReverseLogarithmic":
                    value = 1 - math.exp(self.random.uniform(math.log(1 - high), math.log(1 - low)))
                else:
                    value = self.random.uniform(low, high + integer)
                drawn[entry["Name"]] = str(min(int(value), int(high))) if integer else repr(value)
        return drawn

    def _distributions(self) -> dict[str, Any]:
        import optuna.distributions as d

        found = {}
        for kind, entries in self.ranges.items():
            for entry in entries:
                name = entry["Name"]
                if kind == tuning.CATEGORICAL:
                    found[name] = d.CategoricalDistribution(entry["Values"])
                    continue
                low, high, scaling = float(entry["MinValue"]), float(entry["MaxValue"]), entry.get("ScalingType")
                if kind == tuning.KINDS["Integer"]:
                    found[name] = d.IntDistribution(int(low), int(high), log=scaling == "Logarithmic")
                elif scaling == "ReverseLogarithmic":  # searched as 1 - x on a log scale
                    found[name] = d.FloatDistribution(1 - high, 1 - low, log=True)
                else:
                    found[name] = d.FloatDistribution(low, high, log=scaling == "Logarithmic")
        return found

    def _from_trial(self, chosen: dict[str, Any]) -> dict[str, str]:
        """A trial's values as AMT's strings (a reverse-logarithmic range was searched as 1 - x)."""
        continuous = self.ranges.get(tuning.KINDS["Continuous"], [])
        reverse = {e["Name"] for e in continuous if e.get("ScalingType") == "ReverseLogarithmic"}
        return {
            name: repr(1 - value) if name in reverse else value if isinstance(value, str) else _text(value)
            for name, value in chosen.items()
        }


def _text(value: int | float) -> str:
    return str(value) if isinstance(value, int) else repr(float(value))


def _objective_value(job: dict[str, Any], metric: str) -> float | None:
    for found in job.get("FinalMetricDataList", []):
        if found["MetricName"] == metric and not math.isnan(float(found["Value"])):
            return float(found["Value"])
    return None


class TuningJobs:
    """The tuning-job calls of the local SageMaker (a mixin of ``LocalSageMaker``: its training jobs run
    them)."""

    tuning_jobs: JsonStore
    lock = threading.Lock()

    def create_hyper_parameter_tuning_job(
        self,
        HyperParameterTuningJobName: str,
        HyperParameterTuningJobConfig: dict,
        TrainingJobDefinition: dict | None = None,
        **settings,
    ) -> dict:
        """Run the tuning job to its end (its document shows the progress meanwhile) and record it as
        DescribeHyperParameterTuningJob shows it. AMT's checks first: the name (row AMT-NAME), the
        config (``tuning.config_problem``), a name already used (ResourceInUse)."""
        name, config = HyperParameterTuningJobName, HyperParameterTuningJobConfig
        if not tuning.TUNING_JOB_NAME.match(name):
            raise SageMakerValidation.error(
                f"1 validation error detected: Value '{name}' at 'hyperParameterTuningJobName' failed to satisfy "
                "constraint: Member must have length less than or equal to 32 and match "
                f"{tuning.TUNING_JOB_NAME.pattern[1:-1]}",
                "CreateHyperParameterTuningJob",
            )
        if self.tuning_jobs.exists(name):
            raise SageMakerResourceInUse.error(
                f"Hyperparameter tuning job {name} already exists", "CreateHyperParameterTuningJob"
            )
        problem = tuning.config_problem(config) or (None if TrainingJobDefinition else "TrainingJobDefinition")
        if problem:
            raise SageMakerValidation.error(problem, "CreateHyperParameterTuningJob")
        job = {
            "HyperParameterTuningJobName": name,
            "HyperParameterTuningJobArn": arn("sagemaker", "hyper-parameter-tuning-job/", name.lower()),
            "HyperParameterTuningJobConfig": config,
            "TrainingJobDefinition": TrainingJobDefinition,
            **settings,
            "HyperParameterTuningJobStatus": "InProgress",
            "CreationTime": now(),
            "TrainingJobStatusCounters": dict.fromkeys(
                ("Completed", "InProgress", "RetryableError", "NonRetryableError", "Stopped"), 0
            ),
            "ObjectiveStatusCounters": dict.fromkeys(("Succeeded", "Pending", "Failed"), 0),
        }
        self.tuning_jobs.write(name, job)
        self._run_tuning(job)
        return {"HyperParameterTuningJobArn": job["HyperParameterTuningJobArn"]}

    def _run_tuning(self, job: dict[str, Any]) -> None:
        """Propose, train and record until the limit, a stop, or AMT's giving up on failures."""
        config = job["HyperParameterTuningJobConfig"]
        limits, proposer = config["ResourceLimits"], Proposer(config)
        total = limits.get("MaxNumberOfTrainingJobs") or tuning.grid_size(config["ParameterRanges"])
        parallel, started = limits["MaxParallelTrainingJobs"], 0
        batch_size = parallel if config["Strategy"] == "Bayesian" else total  # see the module's docstring
        with ThreadPoolExecutor(max_workers=parallel) as pool:
            while started < total and not self._given_up(job):
                batch = proposer.propose(min(batch_size, total - started))
                if not batch:
                    break
                names = [
                    tuning.training_job_name(job["HyperParameterTuningJobName"], started + i + 1)
                    for i in range(len(batch))
                ]
                started += len(batch)
                values = list(pool.map(lambda args: self._tuning_training_job(job, *args), zip(names, batch)))
                if proposer.study is not None:
                    proposer.observe(values)
        with self.lock:
            current = self.tuning_jobs.read(job["HyperParameterTuningJobName"])["HyperParameterTuningJobStatus"]
            if current == "Stopping":
                job["HyperParameterTuningJobStatus"] = "Stopped"
            elif not job["TrainingJobStatusCounters"]["Completed"]:
                failed = job["TrainingJobStatusCounters"]["NonRetryableError"]
                job["HyperParameterTuningJobStatus"] = "Failed"
                job["FailureReason"] = (
                    f"No training job succeeded after {failed} attempts. Please take a look at the training job "
                    "failures to get more details."
                )
            else:
                job["HyperParameterTuningJobStatus"] = "Completed"
            job["HyperParameterTuningEndTime"] = job["LastModifiedTime"] = now()
            self.tuning_jobs.write(job["HyperParameterTuningJobName"], job)

    def _given_up(self, job: dict[str, Any]) -> bool:
        counters = job["TrainingJobStatusCounters"]
        stopping = self.tuning_jobs.read(job["HyperParameterTuningJobName"])["HyperParameterTuningJobStatus"]
        failed_only = not counters["Completed"] and counters["NonRetryableError"] >= FAILED_BEFORE_GIVING_UP
        return stopping == "Stopping" or failed_only

    def _tuning_training_job(self, job: dict[str, Any], name: str, tuned: dict[str, str]) -> float | None:
        """One training job of the tuning job; its objective value (None: failed, or no metric)."""
        if self._given_up(job):
            return None
        definition, config = job["TrainingJobDefinition"], job["HyperParameterTuningJobConfig"]
        metric = config["HyperParameterTuningJobObjective"]["MetricName"]
        hyperparameters = {**definition.get("StaticHyperParameters", {}), **tuned}
        hyperparameters[tuning.OBJECTIVE_HYPERPARAMETER] = metric
        self._count(job, InProgress=1, Pending=1)
        # the jobs at once share this machine's cores (on AWS each has its instance): oversubscribed,
        # two XGBoost processes each spinning on every core ran 10-25x slower (benchmarks/RESULTS.md)
        parallel = config["ResourceLimits"]["MaxParallelTrainingJobs"]
        self._train(
            max(1, (os.cpu_count() or 1) // parallel),
            **tuning.training_job_request(definition, name, hyperparameters),
            TuningJobArn=job["HyperParameterTuningJobArn"],
        )
        trained = self.describe_training_job(TrainingJobName=name)
        value = _objective_value(trained, metric) if trained["TrainingJobStatus"] == "Completed" else None
        completed = trained["TrainingJobStatus"] == "Completed"
        self._count(
            job,
            InProgress=-1,
            Pending=-1,
            Completed=int(completed),
            NonRetryableError=int(not completed),
            Succeeded=int(value is not None),
            Failed=int(value is None),
            best=self._summary(job, trained) if value is not None else None,
        )
        return value

    def _count(self, job: dict[str, Any], best: dict[str, Any] | None = None, **changes: int) -> None:
        """Counters moved and the best job kept, in the job's document, under the lock."""
        with self.lock:
            for key, change in changes.items():
                counters = job[
                    "TrainingJobStatusCounters"
                    if key in job["TrainingJobStatusCounters"]
                    else "ObjectiveStatusCounters"
                ]
                counters[key] += change
            if best is not None and _better(job, best):
                job["BestTrainingJob"] = best
            job["LastModifiedTime"] = now()
            status = self.tuning_jobs.read(job["HyperParameterTuningJobName"])["HyperParameterTuningJobStatus"]
            self.tuning_jobs.write(job["HyperParameterTuningJobName"], {**job, "HyperParameterTuningJobStatus": status})

    def _summary(self, job: dict[str, Any], trained: dict[str, Any]) -> dict[str, Any]:
        """A training job as AMT lists it (HyperParameterTrainingJobSummary)."""
        config = job["HyperParameterTuningJobConfig"]
        objective = config["HyperParameterTuningJobObjective"]
        value = _objective_value(trained, objective["MetricName"])
        summary = {
            "TrainingJobName": trained["TrainingJobName"],
            "TrainingJobArn": trained["TrainingJobArn"],
            "TuningJobName": job["HyperParameterTuningJobName"],
            "CreationTime": trained["CreationTime"],
            "TrainingStartTime": trained.get("TrainingStartTime"),
            "TrainingEndTime": trained.get("TrainingEndTime"),
            "TrainingJobStatus": trained["TrainingJobStatus"],
            "TunedHyperParameters": {n: trained["HyperParameters"][n] for n in tuning.tuned_names(config)},
            "ObjectiveStatus": "Succeeded" if value is not None else "Failed",
        }
        if value is not None:
            summary["FinalHyperParameterTuningJobObjectiveMetric"] = {**objective, "Value": value}
        if trained.get("FailureReason"):
            summary["FailureReason"] = trained["FailureReason"]
        return summary

    def describe_hyper_parameter_tuning_job(self, HyperParameterTuningJobName: str) -> dict:
        if not self.tuning_jobs.exists(HyperParameterTuningJobName):
            raise SageMakerResourceNotFound.error(
                f"Amazon SageMaker can't find a tuning job with name {HyperParameterTuningJobName}",
                "DescribeHyperParameterTuningJob",
            )
        return self.tuning_jobs.read(HyperParameterTuningJobName)

    def list_training_jobs_for_hyper_parameter_tuning_job(
        self,
        HyperParameterTuningJobName: str,
        SortBy: str = "Name",
        SortOrder: str = "Ascending",
        StatusEquals: str | None = None,
        MaxResults: int = 10,
        NextToken: str | None = None,
    ) -> dict:
        """The tuning job's training jobs as summaries, filtered, sorted and paged as AMT's list is
        (sorted by the objective, the jobs without one are left out)."""
        job = self.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName)
        if not 1 <= MaxResults <= 100:
            raise SageMakerValidation.error(
                "MaxResults must be from 1 to 100", "ListTrainingJobsForHyperParameterTuningJob"
            )
        found = [self.jobs.read(n) for n in self.jobs.names()]
        found = [t for t in found if t.get("TuningJobArn") == job["HyperParameterTuningJobArn"]]
        summaries = [self._summary(job, t) for t in found if StatusEquals in (None, t["TrainingJobStatus"])]
        keys = {
            "Name": lambda s: s["TrainingJobName"],
            "CreationTime": lambda s: s["CreationTime"],
            "Status": lambda s: s["TrainingJobStatus"],
            "FinalObjectiveMetricValue": lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"],
        }
        if SortBy == "FinalObjectiveMetricValue":
            summaries = [s for s in summaries if "FinalHyperParameterTuningJobObjectiveMetric" in s]
        summaries.sort(key=keys[SortBy], reverse=SortOrder == "Descending")
        start = int(NextToken or 0)
        page = {"TrainingJobSummaries": summaries[start : start + MaxResults]}
        if start + MaxResults < len(summaries):
            page["NextToken"] = str(start + MaxResults)
        return page

    def stop_hyper_parameter_tuning_job(self, HyperParameterTuningJobName: str) -> dict:
        """Stopping: no further training job starts (the local one lets running ones finish; AMT stops them)."""
        with self.lock:
            job = self.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName)
            if job["HyperParameterTuningJobStatus"] == "InProgress":
                self.tuning_jobs.write(
                    HyperParameterTuningJobName, {**job, "HyperParameterTuningJobStatus": "Stopping"}
                )
        return {}


def _better(job: dict[str, Any], candidate: dict[str, Any]) -> bool:
    """Whether ``candidate`` beats the job's best so far (a tie keeps the earlier job)."""
    best = job.get("BestTrainingJob")
    if best is None:
        return True
    new, old = (s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in (candidate, best))
    maximise = job["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["Type"] == "Maximize"
    if new == old:
        return candidate["TrainingJobName"] < best["TrainingJobName"]
    return new > old if maximise else new < old
