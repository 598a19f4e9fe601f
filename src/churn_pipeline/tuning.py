"""Hyper-parameter tuning as SageMaker Automatic Model Tuning (AMT) defines it: the search space a run's
parameters name, written as AMT's ``HyperParameterTuningJobConfig``, AMT's rules on it, and the three
strategies' proposals (the local tuning jobs run them; on AWS, AMT does).

Ranges in the parameters (``tuning_ranges``), one entry per hyper-parameter::

    max_depth: {min: 3, max: 10}                        # integer: the hyper-parameter's own kind
    eta: {min: 0.01, max: 0.5, scaling: Logarithmic}    # continuous, AMT's scaling types
    num_round: {values: [50, 100, 200]}                 # categorical (the only kind Grid takes)

An empty mapping means ``DEFAULT_RANGES``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from typing import Any

from .errors import ConfigError

#: the XGBoost hyper-parameters a search may tune: (kind, lowest allowed, highest allowed)
TUNABLE: dict[str, tuple[str, float, float]] = {
    "max_depth": ("Integer", 1, 32),
    "num_round": ("Integer", 1, 10000),
    "eta": ("Continuous", 0.0, 1.0),
    "gamma": ("Continuous", 0.0, 1e6),
    "min_child_weight": ("Continuous", 0.0, 1e6),
    "subsample": ("Continuous", 0.01, 1.0),
    "colsample_bytree": ("Continuous", 0.01, 1.0),
    "alpha": ("Continuous", 0.0, 1e6),
    "lambda": ("Continuous", 0.0, 1e6),
}
#: the search space when the parameters name none (around the lab's settings, XGBoost's usual ranges)
DEFAULT_RANGES: dict[str, dict[str, Any]] = {
    "max_depth": {"min": 2, "max": 10},
    "eta": {"min": 0.01, "max": 0.5, "scaling": "Logarithmic"},
    "gamma": {"min": 0.0, "max": 10.0},
    "min_child_weight": {"min": 1.0, "max": 20.0, "scaling": "Logarithmic"},
    "subsample": {"min": 0.5, "max": 1.0},
    "colsample_bytree": {"min": 0.5, "max": 1.0},
    "num_round": {"min": 50, "max": 400},
}
#: objective metrics the training job emits, and AMT's direction for each (the XGBoost algorithm's page)
OBJECTIVES = {"validation:auc": "Maximize", "validation:error": "Minimize", "validation:logloss": "Minimize"}
STRATEGIES = ("Bayesian", "Random", "Grid")
SCALING_TYPES = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
#: AMT's limits: ranges per tuning job, values per categorical range, jobs of a Grid search
MAX_RANGES, MAX_CATEGORICAL_VALUES, MAX_GRID_JOBS = 30, 30, 750
#: a tuning job's name (HyperParameterTuningJobName): at most 32 characters of this pattern
TUNING_JOB_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}$")
#: the hyper-parameter AMT adds to every training job it starts: the objective's metric name
OBJECTIVE_HYPERPARAMETER = "_tuning_objective_metric"
KINDS = {"Integer": "IntegerParameterRanges", "Continuous": "ContinuousParameterRanges"}
CATEGORICAL = "CategoricalParameterRanges"


def _number(text: str, name: str, kind: str, source: str) -> float:
    value = float(text)
    if kind == "Integer" and not value.is_integer():
        raise ConfigError(f"{source}: tuning range of {name!r}: an integer hyper-parameter; got {text}")
    return value


def parameter_ranges(ranges: Mapping[str, Any], source: str = "parameters") -> dict[str, list[dict[str, Any]]]:
    """AMT's ``ParameterRanges`` from the parameters' ``tuning_ranges`` (empty: ``DEFAULT_RANGES``);
    a ConfigError names the hyper-parameter and what is wrong with its range."""
    found: dict[str, list[dict[str, Any]]] = {CATEGORICAL: [], **{k: [] for k in KINDS.values()}}
    for name, spec in (ranges or DEFAULT_RANGES).items():
        where = f"{source}: tuning range of {name!r}"
        if name not in TUNABLE:
            raise ConfigError(f"{where}: not a hyper-parameter the search may tune ({', '.join(TUNABLE)})")
        kind, lowest, highest = TUNABLE[name]
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where}: a mapping with min and max (and scaling), or with values")
        if "values" in spec:
            values = spec["values"]
            if set(spec) != {"values"} or not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: values must be a non-empty list, and alone")
            if len(values) > MAX_CATEGORICAL_VALUES or len(set(map(str, values))) != len(values):
                raise ConfigError(f"{where}: at most {MAX_CATEGORICAL_VALUES} values, none twice")
            for value in values:
                if isinstance(value, bool) or not isinstance(value, int | float):
                    raise ConfigError(f"{where}: values are numbers; got {value!r}")
                _check_bounds(_number(str(value), name, kind, source), lowest, highest, where)
            found[CATEGORICAL].append({"Name": name, "Values": [str(v) for v in values]})
            continue
        unknown = set(spec) - {"min", "max", "scaling"}
        if unknown or not {"min", "max"} <= set(spec):
            raise ConfigError(f"{where}: min and max (and scaling) only; got {', '.join(map(str, spec))}")
        bounds = []
        for key in ("min", "max"):
            if isinstance(spec[key], bool) or not isinstance(spec[key], int | float):
                raise ConfigError(f"{where}: {key} must be a number; got {spec[key]!r}")
            bounds.append(_check_bounds(_number(str(spec[key]), name, kind, source), lowest, highest, where))
        if bounds[0] >= bounds[1]:
            raise ConfigError(f"{where}: an empty range (min {spec['min']} is not below max {spec['max']})")
        scaling = spec.get("scaling", "Auto")
        entry = {"Name": name, "MinValue": _text(bounds[0], kind), "MaxValue": _text(bounds[1], kind)}
        found[KINDS[kind]].append({**entry, "ScalingType": scaling})
    if sum(len(v) for v in found.values()) > MAX_RANGES:
        raise ConfigError(f"{source}: AMT tunes at most {MAX_RANGES} hyper-parameters at once")
    return {key: value for key, value in found.items() if value}


def _check_bounds(value: float, lowest: float, highest: float, where: str) -> float:
    if not lowest <= value <= highest:
        raise ConfigError(f"{where}: {value:g} is outside what XGBoost accepts ({lowest:g} to {highest:g})")
    return value


def _text(value: float, kind: str) -> str:
    return str(int(value)) if kind == "Integer" else repr(float(value))


def tuning_config(params: Mapping[str, Any], source: str = "parameters") -> dict[str, Any]:
    """AMT's ``HyperParameterTuningJobConfig`` for a run's parameters (``tuning_max_jobs`` above 0),
    checked by AMT's rules (a ConfigError names the parameter)."""
    objective = params["tuning_objective"]
    ranges = parameter_ranges(params["tuning_ranges"], source)
    config = {
        "Strategy": params["tuning_strategy"],
        "RandomSeed": params["tuning_seed"],
        "HyperParameterTuningJobObjective": {"Type": OBJECTIVES[objective], "MetricName": objective},
        "ResourceLimits": {
            "MaxNumberOfTrainingJobs": params["tuning_max_jobs"],
            "MaxParallelTrainingJobs": params["tuning_max_parallel_jobs"],
        },
        "ParameterRanges": ranges,
        "TrainingJobEarlyStoppingType": "Off",
    }
    if config["Strategy"] == "Grid" and set(ranges) == {CATEGORICAL}:
        jobs = grid_size(ranges)
        if jobs > params["tuning_max_jobs"]:
            raise ConfigError(
                f"{source}: the grid has {jobs:,} points and tuning_max_jobs is {params['tuning_max_jobs']}: "
                "a Grid search runs every point (raise tuning_max_jobs, or fewer values)"
            )
        config["ResourceLimits"]["MaxNumberOfTrainingJobs"] = jobs  # AMT: if given, it equals the grid
    problem = config_problem(config)
    if problem:
        raise ConfigError(f"{source}: tuning: {problem}")
    return config


def grid_size(ranges: Mapping[str, list[dict[str, Any]]]) -> int:
    return math.prod(len(r["Values"]) for r in ranges.get(CATEGORICAL, []))


def config_problem(config: Mapping[str, Any]) -> str | None:
    """What AMT refuses in a ``HyperParameterTuningJobConfig``, in words, or None."""
    strategy, ranges = config.get("Strategy"), config.get("ParameterRanges", {})
    limits = config.get("ResourceLimits", {})
    if strategy not in STRATEGIES:
        return f"Strategy must be one of {', '.join(STRATEGIES)}; got {strategy!r}"
    if not limits.get("MaxParallelTrainingJobs", 0) >= 1:
        return "ResourceLimits.MaxParallelTrainingJobs must be at least 1"
    if strategy == "Grid":
        if set(ranges) - {CATEGORICAL} or not ranges:
            return "a Grid search takes categorical ranges only (tuning_ranges entries with values)"
        if grid_size(ranges) > MAX_GRID_JOBS:
            return f"a Grid search runs at most {MAX_GRID_JOBS} training jobs; the grid has {grid_size(ranges):,}"
        given = limits.get("MaxNumberOfTrainingJobs")
        if given is not None and given != grid_size(ranges):
            return f"MaxNumberOfTrainingJobs of a Grid search must equal the grid's {grid_size(ranges)} points"
    elif not limits.get("MaxNumberOfTrainingJobs", 0) >= 1:
        return f"ResourceLimits.MaxNumberOfTrainingJobs must be at least 1 for a {strategy} search"
    for kind in KINDS.values():
        for entry in ranges.get(kind, []):
            low, high, scaling = float(entry["MinValue"]), float(entry["MaxValue"]), entry.get("ScalingType", "Auto")
            if scaling not in SCALING_TYPES:
                return f"{entry['Name']}: ScalingType must be one of {', '.join(SCALING_TYPES)}; got {scaling!r}"
            if scaling == "Logarithmic" and low <= 0:
                return f"{entry['Name']}: Logarithmic scaling needs a range above 0 (min {entry['MinValue']})"
            if scaling == "ReverseLogarithmic" and (kind != KINDS["Continuous"] or low < 0 or high >= 1):
                return f"{entry['Name']}: ReverseLogarithmic scaling is for continuous ranges within 0 <= x < 1"
    return None


def training_job_name(tuning_job: str, number: int) -> str:
    """The name of a tuning job's ``number``-th training job, as AMT forms it (``<tuning job>-<3 digits>-
    <8 hex>``), deterministic here."""
    tag = hashlib.sha256(f"{tuning_job}/{number}".encode()).hexdigest()[:8]
    return f"{tuning_job}-{number:03d}-{tag}"


#: what a training job of a tuning job takes from its ``TrainingJobDefinition`` when given
OPTIONAL_TRAINING_FIELDS = ("ResourceConfig", "StoppingCondition")


def training_job_request(definition: Mapping[str, Any], name: str, hyperparameters: dict[str, str]) -> dict:
    """The CreateTrainingJob request for one training job of a tuning job's ``TrainingJobDefinition``
    (its static hyper-parameters and the tuned ones already merged into ``hyperparameters``)."""
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": definition["AlgorithmSpecification"],
        "RoleArn": definition["RoleArn"],
        "InputDataConfig": definition["InputDataConfig"],
        "OutputDataConfig": definition["OutputDataConfig"],
        "HyperParameters": hyperparameters,
        **{field: definition[field] for field in OPTIONAL_TRAINING_FIELDS if field in definition},
    }


def tuned_names(config: Mapping[str, Any]) -> list[str]:
    return [entry["Name"] for kind in config["ParameterRanges"].values() for entry in kind]
