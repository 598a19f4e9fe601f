"""Pipeline parameters: one flat, typed set, merged in one documented order.

Order: package defaults (``DEFAULTS``), then a parameters file
(``parameters/*.yaml``), then overrides (papermill ``-p`` / CLI). The merged set
is validated once, before anything runs, because papermill writes each value
into a notebook as Python code: a key must be an identifier and a value one of
the plain types below.
"""

from __future__ import annotations

import keyword
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import names, tuning, workspace
from .errors import ConfigError, PipelineError


@dataclass(frozen=True)
class Parameter:
    default: Any
    kind: type
    help: str
    choices: tuple = ()
    minimum: float | None = None
    maximum: float | None = None


_P = Parameter

PARAMETERS: dict[str, Parameter] = {
    # where and how
    "backend": _P("local", str, "local (embedded, no cloud) or aws", choices=("local", "aws")),
    "project": _P("churn", str, "project name; prefixes every resource name"),
    "environment": _P("local", str, "environment name (local, dev, prod, ...); part of resource names"),
    "region": _P("eu-west-1", str, "AWS region (also names the container image locally)"),
    "bucket": _P("churn-pipeline-local", str, "object-store bucket for data, code and models"),
    "run_id": _P("", str, "run id; empty means a new one (notebook 01) or the current run (02, 03)"),
    # data
    "data": _P("", str, "input CSV by path or s3:// URI; empty means seeded synthetic data"),
    "synthetic_rows": _P(5000, int, "rows of synthetic data when `data` is empty", minimum=100),
    "synthetic_seed": _P(42, int, "seed of the synthetic data generator", minimum=0),
    "train_fraction": _P(0.7, float, "share of rows for training", minimum=0.05, maximum=0.95),
    "validation_fraction": _P(0.2, float, "share of rows for validation (the rest is test)", minimum=0.05, maximum=0.9),
    "split_seed": _P(42, int, "seed of the stratified split", minimum=0),
    "spark_master": _P("local[*]", str, "Spark master for the local ETL"),
    # training (SageMaker built-in XGBoost hyper-parameters)
    "max_depth": _P(5, int, "XGBoost max_depth", minimum=1, maximum=32),
    "eta": _P(0.2, float, "XGBoost learning rate", minimum=0.0, maximum=1.0),
    "gamma": _P(4.0, float, "XGBoost minimum loss reduction to split", minimum=0.0),
    "min_child_weight": _P(6.0, float, "XGBoost min_child_weight", minimum=0.0),
    "subsample": _P(0.8, float, "XGBoost row subsample ratio", minimum=0.01, maximum=1.0),
    "objective": _P("binary:logistic", str, "XGBoost objective", choices=("binary:logistic",)),
    "eval_metric": _P("error", str, "XGBoost evaluation metric reported by the job"),
    "num_round": _P(100, int, "boosting rounds", minimum=1, maximum=10000),
    "xgboost_version": _P("3.0-5", str, "SageMaker XGBoost container version (matches the pinned xgboost)"),
    "training_instance_type": _P("ml.m5.xlarge", str, "SageMaker training instance type"),
    "training_instance_count": _P(1, int, "SageMaker training instance count", minimum=1),
    # tuning (SageMaker Automatic Model Tuning; the local backend runs the same tuning jobs)
    "tuning_max_jobs": _P(
        0,
        int,
        "training jobs of a hyper-parameter search (0: train once with the settings above)",
        minimum=0,
        maximum=750,
    ),
    "tuning_max_parallel_jobs": _P(2, int, "training jobs of a search at once", minimum=1, maximum=100),
    "tuning_strategy": _P("Bayesian", str, "how the search proposes settings", choices=tuning.STRATEGIES),
    "tuning_objective": _P(
        "validation:auc",
        str,
        "the metric the search optimises (its direction is AMT's)",
        choices=tuple(tuning.OBJECTIVES),
    ),
    "tuning_ranges": _P(
        {}, dict, "hyper-parameter ranges to search: name: {min, max[, scaling]} or {values: [...]} ({}: the defaults)"
    ),
    "tuning_seed": _P(42, int, "seed of the search's proposals (AMT's RandomSeed)", minimum=0),
    # gate and deploy
    "accuracy_threshold": _P(
        0.90, float, "validation accuracy the model must exceed to be registered", minimum=0.0, maximum=1.0
    ),
    # decisions
    "retention_offer_cost": _P(
        100.0, float, "cost of one retention offer (every customer scored above the cutoff gets one)", minimum=0.0
    ),
    "churn_loss": _P(
        500.0,
        float,
        "what a churner who gets no offer costs; with retention_offer_cost it chooses the cutoff",
        minimum=0.0,
    ),
    "holdout_fraction": _P(
        0.05,
        float,
        "share of the customers above the cutoff that `score` holds out of the offers (the control group)",
        minimum=0.0,
        maximum=0.5,
    ),
    "endpoint_instance_type": _P("ml.m5.large", str, "SageMaker endpoint instance type"),
    "endpoint_instance_count": _P(1, int, "SageMaker endpoint instance count", minimum=1),
    "endpoint_capture_percent": _P(
        0,
        int,
        "share of the AWS endpoint's requests captured (DataCaptureConfig; 0: none)",
        minimum=0,
        maximum=100,
    ),
    "sagemaker_execution_role": _P(
        "arn:aws:iam::000000000000:role/churn-local-sagemaker", str, "role SageMaker assumes for training and hosting"
    ),
    "workflow_execution_role": _P(
        "arn:aws:iam::000000000000:role/churn-local-workflow", str, "role Step Functions assumes"
    ),
    "glue_role": _P("arn:aws:iam::000000000000:role/churn-local-glue", str, "role the Glue job assumes"),
    "lambda_role": _P(
        "arn:aws:iam::000000000000:role/churn-local-lambda", str, "role of the query-training-results function"
    ),
    "model_registry_lambda_role": _P(
        "arn:aws:iam::000000000000:role/churn-local-registry", str, "role of the update-model-registry function"
    ),
    "execution_timeout_minutes": _P(120, int, "how long to wait for the state machine", minimum=1),
    "wait_for_execution": _P(True, bool, "wait for the execution to end (false: start it and move on)"),
    "reuse_etl": _P(
        True,
        bool,
        "skip the ETL when a previous ETL ran on the same data, code, fractions and seed (false: always run it)",
    ),
    "resume": _P(
        False,
        bool,
        "continue the run's failed or interrupted execution from the state that did not "
        "succeed (Step Functions redrive) instead of refusing to run it again",
    ),
    # aws backend
    "allow_us_east_1": _P(False, bool, "permit the region us-east-1 (refused by default)"),
    "glue_worker_type": _P(
        "G.1X", str, "Glue worker type (G.025X is for streaming jobs only)", choices=("G.1X", "G.2X", "G.4X", "G.8X")
    ),
    "glue_number_of_workers": _P(2, int, "Glue workers", minimum=2, maximum=299),
    "glue_timeout_minutes": _P(60, int, "Glue job timeout", minimum=1, maximum=2880),
    "glue_max_concurrent_runs": _P(2, int, "Glue job runs at once", minimum=1, maximum=1000),
    "state_machine_versions_to_keep": _P(
        20, int, "published state-machine versions kept (Step Functions allows 1,000)", minimum=1, maximum=900
    ),
    "lambda_runtime": _P("python3.12", str, "Lambda runtime of the two functions"),
}

#: parameters the aws backend takes from the environment (the CodeBuild project sets them)
ROLE_VARIABLES = (
    "workflow_execution_role",
    "sagemaker_execution_role",
    "glue_role",
    "lambda_role",
    "model_registry_lambda_role",
)
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]{1,512}$")

DEFAULTS: dict[str, Any] = {name: p.default for name, p in PARAMETERS.items()}


def _check_value(name: str, value: Any) -> Any:
    spec = PARAMETERS[name]
    if spec.kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if isinstance(value, bool) and spec.kind is not bool or not isinstance(value, spec.kind):
        raise ConfigError(f"parameter {name!r} must be {spec.kind.__name__}, got {type(value).__name__} {value!r}")
    if spec.choices and value not in spec.choices:
        raise ConfigError(f"parameter {name!r} must be one of {', '.join(spec.choices)}; got {value!r}")
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError(f"parameter {name!r} must be >= {spec.minimum}; got {value!r}")
    if spec.maximum is not None and value > spec.maximum:
        raise ConfigError(f"parameter {name!r} must be <= {spec.maximum}; got {value!r}")
    return value


def validate(values: Mapping[str, Any], source: str = "parameters") -> dict[str, Any]:
    """Check every key and value; return a complete, typed parameter set."""
    merged = dict(DEFAULTS)
    for name, value in values.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ConfigError(f"{source}: parameter name {name!r} is not a Python identifier")
        if name not in PARAMETERS:
            raise ConfigError(f"{source}: unknown parameter {name!r}; known: {', '.join(sorted(PARAMETERS))}")
        merged[name] = _check_value(name, value)
    if merged["backend"] == "aws" and merged["region"] == "us-east-1" and not merged["allow_us_east_1"]:
        raise ConfigError(f"{source}: region us-east-1 is refused unless the parameters say allow_us_east_1: true")
    if merged["churn_loss"] <= 0:
        raise ConfigError(
            f"{source}: churn_loss must be above 0 (what a lost customer costs); got {merged['churn_loss']}"
        )
    if merged["train_fraction"] + merged["validation_fraction"] >= 0.99:
        raise ConfigError(
            f"{source}: train_fraction + validation_fraction must leave at least 1 % for the test split; "
            f"got {merged['train_fraction']} + {merged['validation_fraction']}"
        )
    _check_names(merged, source)
    if merged["tuning_max_jobs"] > 0:
        tuning.tuning_config(merged, source)  # the search space, by AMT's rules
    return merged


#: a new run id's length (``workspace.new_run_id``): the longest name a run forms without one given
NEW_RUN_ID_LENGTH = 20


def _check_names(params: Mapping[str, Any], source: str) -> None:
    """Every resource name ``project`` and ``environment`` form, checked before anything runs (a name
    too long or with other characters than letters, digits and hyphens stops the run here)."""
    run_id = workspace.check_run_id(params["run_id"]) if params["run_id"] else "r" * NEW_RUN_ID_LENGTH
    try:
        names.state_machine_name(params)
        names.registry_table(params)
        for role in names.FUNCTION_MODULES:
            names.function_name(params, role)
        names.resource_name(params, "etl")
        names.training_job_name(params, run_id)
        if params["tuning_max_jobs"]:
            names.tuning_job_name(params, run_id)
    except PipelineError as exc:
        raise ConfigError(f"{source}: parameters project and environment: {exc}") from None


def read_parameters_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML parameters file into a mapping (not yet validated)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read parameters file {path}: {exc.strerror}") from exc
    try:
        loaded = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"parameters file {path} is not valid YAML: {exc}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"parameters file {path} must hold a mapping of name: value")
    return loaded


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``KEY=VALUE`` override; the value is read as YAML (so 0.99 is a float)."""
    name, sep, raw = text.partition("=")
    if not sep:
        raise ConfigError(f"override {text!r} must look like KEY=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML: {exc}") from exc
    if value is None:
        value = ""
    spec = PARAMETERS.get(name.strip())
    if spec is not None and spec.kind is str and not isinstance(value, str):
        value = raw.strip()  # e.g. -p run_id=2024 stays a string
    return name.strip(), value


def load(params_file: str | os.PathLike | None = None, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then the parameters file, then overrides; validated once."""
    values: dict[str, Any] = {}
    if params_file:
        values.update(read_parameters_file(params_file))
        validate(values, source=str(params_file))
    values.update(overrides or {})
    return resolve_roles(validate(values, source="overrides" if overrides else str(params_file or "parameters")))


def from_namespace(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """Collect the parameters a notebook's parameters cell defined, and validate them."""
    return resolve_roles(
        validate({name: namespace[name] for name in PARAMETERS if name in namespace}, source="notebook parameters")
    )


def role_from_environment(name: str, environ: Mapping[str, str]) -> str:
    """One role ARN from the environment variable ``name``, stripped and checked."""
    value = environ.get(name, "").strip()
    if not value:
        raise ConfigError(
            f"environment variable {name} is not set; the aws backend takes the {name.replace('_', ' ')} ARN from it"
        )
    if not ROLE_ARN.match(value):
        raise ConfigError(
            f"environment variable {name} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>): {value!r}"
        )
    return value


def resolve_roles(params: dict[str, Any], environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """On the aws backend, take the five role ARNs from the environment variables of the same names.

    Values are stripped of surrounding white space and must be IAM role ARNs;
    a missing or malformed one stops the run before any AWS call, naming the
    variable. The local backend keeps its placeholder roles.
    """
    if params["backend"] != "aws":
        return params
    environ = os.environ if environ is None else environ
    resolved = dict(params)
    for name in ROLE_VARIABLES:
        resolved[name] = role_from_environment(name, environ)
    return resolved
