"""Names: resources are ``<project>-<environment>-<suffix>``, so two environments never share one;
and the files a run writes, each name with one meaning."""

from __future__ import annotations

import hashlib
from typing import Any

from .errors import PipelineError

#: the ETL output's feature manifest: the format, features, encoding and categories a model takes
FEATURE_MANIFEST = "manifest.json"
#: in an ETL output: the training split's baseline in Model Monitor's formats (``monitoring``)
BASELINE_STATISTICS = "baseline/statistics.json"
BASELINE_CONSTRAINTS = "baseline/constraints.json"
#: in a run's folder: its decision (the cost-chosen cutoff), which the model behind an endpoint reads
DECISION = "decision.json"
#: in a run's folder: the test split's figures and score distribution, what a monitor compares a window with
EVALUATION = "evaluation.json"
#: a run's artifacts (``artifacts/<run-id>/``): what each notebook hands to the next, the parameters the
#: run started with (what ``--resume`` uses), its summary (parameters, packages, data, timings, status),
#: and the deploy stage's parameters (only for a model that passed the gate)
RUN_STATE = "run.json"
RUN_PARAMETERS = "parameters.json"
RUN_SUMMARY = "summary.json"
DEPLOY_PARAMETERS = "cloudformation_parameters.json"
#: in the local home: the run notebook 01 started last
CURRENT_RUN = "current-run"
#: the modules of ``code/`` that are the two functions' handlers, by the role each plays
FUNCTION_MODULES = {"query": "query_training_status", "registry": "update_model_registry"}


def resource_name(params: dict[str, Any], suffix: str, limit: int = 63) -> str:
    """``<project>-<environment>-<suffix>``, checked against the strictest limit of the services."""
    name = f"{params['project']}-{params['environment']}-{suffix}"
    if len(name) > limit or not all(c.isalnum() or c == "-" for c in name):
        raise PipelineError(
            f"resource name {name!r} (from project, environment and {suffix!r}) must be at most "
            f"{limit} letters, digits and hyphens; shorten project or environment"
        )
    return name


def registry_table(params: dict[str, Any]) -> str:
    return resource_name(params, "model-registry", limit=255)


def state_machine_name(params: dict[str, Any]) -> str:
    return resource_name(params, "training-pipeline", limit=80)


def scoring_state_machine_name(params: dict[str, Any]) -> str:
    return resource_name(params, "scoring")


def function_name(params: dict[str, Any], role: str) -> str:
    """The function of ``role`` (``query`` or ``registry``), named after its handler module."""
    return resource_name(params, FUNCTION_MODULES[role].replace("_", "-"), limit=64)


def tuning_job_name(params: dict[str, Any], run_id: str) -> str:
    """The base of a run's tuning job names: AMT allows 32 characters (row AMT-NAME) with the state
    machine's ``-<redrive count>``, so ``<project>-<environment>-`` (the prefix the roles grant, for the
    tuning job and the training jobs it names after itself) and a digest of the run's training job name."""
    digest = hashlib.sha256(training_job_name(params, run_id).encode()).hexdigest()[:8]
    return resource_name(params, digest, limit=32 - TRAINING_JOB_SUFFIX_LENGTH)


#: what the state machine appends to a training job's name (``-<redrive count>``; an execution can be
#: redriven 1,000 times): SageMaker names are at most 63 characters
TRAINING_JOB_SUFFIX_LENGTH = 5


def training_job_name(params: dict[str, Any], run_id: str) -> str:
    """The base of a run's training job names: the state machine appends ``-<redrive count>``."""
    return resource_name(params, run_id, limit=63 - TRAINING_JOB_SUFFIX_LENGTH)
