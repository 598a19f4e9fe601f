"""The training state machine, built once with the ``stepfunctions`` SDK.

Reuse ETL? (Choice on the execution input: skip the ETL when an identical one
already ran) -> ETL (Glue) -> Model Training -> Save Model -> Query Training Results (Lambda)
-> accuracy gate (``metrics['validation:accuracy'] > threshold``) -> Update
Model Registry (Lambda), or Fail. AWS Step Functions receives this JSON; the
local executor interprets the very same JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .container import ENDPOINT_PROGRAM, endpoint_environment, script_mode
from .sdk import definition_once, import_sdks, validate_definition

ACCURACY_PATH = "$.TrainingResults.Payload.metrics['validation:accuracy']"
STATE_REUSE = "Reuse Previous ETL?"
STATE_ETL = "ETL"
STATE_TRAIN = "Model Training"
STATE_TUNE_OR_TRAIN = "Tune Hyper-Parameters?"
STATE_TUNE = "Hyper-Parameter Tuning"
STATE_BEST = "Best Training Job"
STATE_SAVE = "Save Model"
STATE_QUERY = "Query Training Results"
STATE_GATE = "Accuracy Above Threshold"
STATE_REGISTER = "Update Model Registry"
STATE_TOO_LOW = "Accuracy Below Threshold"
GATE_ERROR = "ModelAccuracyBelowThreshold"
#: The estimator needs an output path as a string (else the SDK looks up a default bucket); the
#: training state replaces it with the execution input's ModelOutputUri, so it never reaches AWS.
OUTPUT_PATH_FROM_INPUT = "s3://replaced-by-execution-input/"
TRAINING_JOB_NAME = "States.Format('{}-{}', $$.Execution.Input.TrainingJobName, $$.Execution.RedriveCount)"
TUNING_JOB_NAME = "States.Format('{}-{}', $$.Execution.Input.TuningJobName, $$.Execution.RedriveCount)"
#: the best training job's description, as a training state's output (row SFN-AWS-SDK-DESCRIBE)
DESCRIBE_TRAINING_JOB = "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob"
LAMBDA_RETRY = [
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
]
#: training and scoring share one ETL job: a start refused while it is busy is retried (row SFN-GLUE-BUSY)
GLUE_BUSY = "Glue.ConcurrentRunsExceededException"
GLUE_BUSY_RETRY = {"interval_seconds": 60, "max_attempts": 5, "backoff_rate": 2.0}


@dataclass(frozen=True)
class WorkflowSpec:
    """Everything the definition needs that is not an execution input: nothing run-specific, so
    every run with the same parameters deploys the same definition and publishes no new version."""

    glue_job_name: str
    training_image: str
    threshold: float
    environment: str
    region: str
    sagemaker_role: str
    instance_type: str
    instance_count: int
    train_fraction: float
    validation_fraction: float
    split_seed: int


def execution_input_schema() -> dict[str, type]:
    """The run-specific values, read by the definition from ``$$.Execution.Input``.

    Channel URIs end with ``/``: S3Prefix matches keys by prefix, and ``.../train``
    would also match the ``train_$folder$`` marker beside the folder. ``ReuseEtl``
    (with ``EtlSourceRunId``, the run whose ETL output ``EtlOutputUri`` is) sends the
    execution past the ETL; ``EtlRecordUri`` is where a fresh ETL records itself
    for later runs to reuse. ``EtlScript`` and ``EtlPackage`` are the ETL code the
    run deployed, at content-addressed keys: the job runs them, not whatever the
    job's definition holds when a redrive or an overlapping build starts it;
    ``QueryFunction`` and ``RegistryFunction`` are the qualified ARNs of the
    function versions it published, for the same reason. The saved model runs the
    endpoint's script from ``SourceDirUri`` with the run's ``ManifestUri`` and the
    ``DecisionUri`` notebook 03 writes. ``Tuning`` sends the execution to a tuning job
    (``TuningConfig``: AMT's HyperParameterTuningJobConfig; ``HyperParameters`` are then the static
    ones) instead of one training job: the search space is input, so changing it publishes nothing.
    """
    return {
        "RunId": str,
        "TrainingJobName": str,
        "ModelName": str,
        "DataUri": str,
        "DataSha256": str,
        "GitCommit": str,
        "ReuseEtl": bool,
        "EtlSourceRunId": str,
        "EtlKey": str,
        "EtlRecordUri": str,
        "EtlOutputUri": str,
        "EtlScript": str,
        "EtlPackage": str,
        "QueryFunction": str,
        "RegistryFunction": str,
        "SourceDirUri": str,
        "ManifestUri": str,
        "DecisionUri": str,
        "BaselineStatisticsUri": str,
        "BaselineConstraintsUri": str,
        "TrainUri": str,
        "ValidationUri": str,
        "ModelOutputUri": str,
        "HyperParameters": dict,
        "Tuning": bool,
        "TuningJobName": str,
        "TuningConfig": dict,
        "TuningRecord": dict,
    }


def sdk_session(region: str):
    """A SageMaker SDK session for ``region`` only: no call is made while a definition is built."""
    import boto3
    import sagemaker

    return sagemaker.Session(boto_session=boto3.Session(region_name=region))


def retrying_when_busy(step):
    """``step`` (a Glue job start) tried again while the job's concurrent runs are all taken."""
    from stepfunctions import steps

    step.add_retry(steps.Retry(error_equals=[GLUE_BUSY], **GLUE_BUSY_RETRY))
    return step


def _etl_step(spec: WorkflowSpec, execution_input):
    from stepfunctions import steps

    return retrying_when_busy(
        steps.GlueStartJobRunStep(
            STATE_ETL,
            result_path="$.EtlResult",
            parameters={
                "JobName": spec.glue_job_name,
                "Arguments": {
                    "--S3_SOURCE": execution_input["DataUri"],
                    "--S3_DEST": execution_input["EtlOutputUri"],
                    "--ETL_RECORD": execution_input["EtlRecordUri"],
                    "--ETL_KEY": execution_input["EtlKey"],
                    "--RUN_ID": execution_input["RunId"],
                    # the code this execution runs, pinned (contract row GLUE-RUN-CODE)
                    "--scriptLocation": execution_input["EtlScript"],
                    "--extra-py-files": execution_input["EtlPackage"],
                    "--TRAIN_KEY": "train",
                    "--VAL_KEY": "validation",
                    "--TEST_KEY": "test",
                    "--TRAIN_FRACTION": str(spec.train_fraction),
                    "--VALIDATION_FRACTION": str(spec.validation_fraction),
                    "--SPLIT_SEED": str(spec.split_seed),
                },
            },
        )
    )


def _training_steps(spec: WorkflowSpec, execution_input):
    """(Model Training, Hyper-Parameter Tuning, Best Training Job, Save Model): one estimator and one set
    of channels for the training job and for every job of a tuning job."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.tuner import ContinuousParameter, HyperparameterTuner
    from stepfunctions import steps

    # The 3.0-5 container ignores the debugger hook: leave it out (disable_profiler likewise).
    estimator = Estimator(
        image_uri=spec.training_image,
        role=spec.sagemaker_role,
        instance_count=spec.instance_count,
        instance_type=spec.instance_type,
        output_path=OUTPUT_PATH_FROM_INPUT,
        sagemaker_session=sdk_session(spec.region),
        disable_profiler=True,
        debugger_hook_config=False,
    )
    # several instances: each reads a share of the train parts (distributed XGBoost); one instance,
    # or the validation channel: every part (the default, FullyReplicated)
    data = {
        "train": TrainingInput(
            execution_input["TrainUri"],
            content_type="text/csv",
            distribution="ShardedByS3Key" if spec.instance_count > 1 else None,
        ),
        "validation": TrainingInput(execution_input["ValidationUri"], content_type="text/csv"),
    }
    train = steps.TrainingStep(
        STATE_TRAIN,
        estimator=estimator,
        job_name=execution_input["TrainingJobName"],
        data=data,
        hyperparameters=execution_input["HyperParameters"],
        output_data_config_path=execution_input["ModelOutputUri"],
    )
    # the tuner's search space is a stand-in: ``build_definition`` reads the real one from the input
    tuner = HyperparameterTuner(estimator, "validation:auc", {"eta": ContinuousParameter(0, 1)}, max_jobs=1)
    tune = steps.TuningStep(
        STATE_TUNE, tuner=tuner, job_name=execution_input["TuningJobName"], data=data, result_path="$.TuningResults"
    )
    best = steps.Task(
        STATE_BEST,
        resource=DESCRIBE_TRAINING_JOB,
        parameters={"TrainingJobName.$": "$.TuningResults.BestTrainingJob.TrainingJobName"},
    )
    return train, tune, best, _save_step(spec, execution_input)


def _tuning_from_input(state: dict[str, Any]) -> None:
    """The tuning state's search space, static hyper-parameters, output path and name from the input."""
    parameters = state["Parameters"]
    del parameters["HyperParameterTuningJobConfig"], parameters["HyperParameterTuningJobName.$"]
    parameters["HyperParameterTuningJobConfig.$"] = "$$.Execution.Input.TuningConfig"
    parameters["HyperParameterTuningJobName.$"] = TUNING_JOB_NAME
    definition = parameters["TrainingJobDefinition"]
    del definition["StaticHyperParameters"]
    definition["StaticHyperParameters.$"] = "$$.Execution.Input.HyperParameters"
    definition["OutputDataConfig"] = {"S3OutputPath.$": "$$.Execution.Input.ModelOutputUri"}


def _save_step(spec: WorkflowSpec, execution_input):
    """Save Model: the trained model in the container's script mode with the endpoint's script
    (``inference``), so the endpoint the deploy stack creates answers as the local one does."""
    environment = {
        **script_mode(ENDPOINT_PROGRAM, execution_input["SourceDirUri"], spec.region),
        **endpoint_environment(execution_input["ManifestUri"], execution_input["DecisionUri"]),
    }
    return create_model_task(
        STATE_SAVE,
        "$.ModelStepResults",
        {"ModelName": execution_input["ModelName"], "ExecutionRoleArn": spec.sagemaker_role},
        spec.training_image,
        {"ModelDataUrl.$": "$.ModelArtifacts.S3ModelArtifacts"},
        environment,
    )


def create_model_task(state: str, result_path: str, model: dict, image: str, model_data: dict, environment: dict):
    """A ``createModel`` task: the model's name and role (``model``), its container's image, artifact
    (``model_data``: its ``ModelDataUrl`` entry, a value or a path) and environment."""
    from stepfunctions import steps

    return steps.Task(
        state,
        resource="arn:aws:states:::sagemaker:createModel",
        result_path=result_path,
        parameters={**model, "PrimaryContainer": {"Image": image, **model_data, "Environment": environment}},
    )


def _registry_step(spec: WorkflowSpec, execution_input):
    from stepfunctions import steps

    return steps.LambdaStep(
        STATE_REGISTER,
        result_path="$.RegistryResult",
        parameters={
            "FunctionName": execution_input["RegistryFunction"],
            "Payload": {
                "run_id": execution_input["RunId"],
                "model_name": execution_input["ModelName"],
                "data_uri": execution_input["DataUri"],
                "data_sha256": execution_input["DataSha256"],
                "git_commit": execution_input["GitCommit"],
                "training_job_name.$": "$.TrainingJobName",
                "model_data_url.$": "$.ModelArtifacts.S3ModelArtifacts",
                "image.$": "$.AlgorithmSpecification.TrainingImage",
                "hyperparameters.$": "$.HyperParameters",
                "metrics.$": "$.TrainingResults.Payload.metrics",
                "environment": spec.environment,
                "algorithm": "xgboost",
                "threshold": spec.threshold,
                "extra": {
                    "etl": {
                        "output_uri": execution_input["EtlOutputUri"],
                        "reused": execution_input["ReuseEtl"],
                        "source_run_id": execution_input["EtlSourceRunId"],
                    },
                    # the training split's baseline (Model Monitor's formats), beside the ETL output
                    "baseline": {
                        "statistics": execution_input["BaselineStatisticsUri"],
                        "constraints": execution_input["BaselineConstraintsUri"],
                    },
                    # the search that chose the hyper-parameters ({} when none ran)
                    "tuning": execution_input["TuningRecord"],
                },
            },
        },
    )


def build_definition(spec: WorkflowSpec) -> dict[str, Any]:
    """The ASL definition as a dict (serialise with ``sdk.definition_json``)."""
    import_sdks()
    from stepfunctions import steps
    from stepfunctions.inputs import ExecutionInput

    execution_input = ExecutionInput(schema=execution_input_schema())
    etl = _etl_step(spec, execution_input)
    train, tune, best, save = _training_steps(spec, execution_input)
    query = steps.LambdaStep(
        STATE_QUERY,
        result_path="$.TrainingResults",
        parameters={
            "FunctionName": execution_input["QueryFunction"],
            "Payload": {"TrainingJobName.$": "$.TrainingJobName"},
        },
    )
    register = _registry_step(spec, execution_input)
    for step in (query, register):
        step.add_retry(steps.Retry(error_equals=LAMBDA_RETRY, interval_seconds=2, max_attempts=3, backoff_rate=2.0))
    too_low = steps.Fail(STATE_TOO_LOW, error=GATE_ERROR, cause=f"validation accuracy is not above {spec.threshold}")
    gate = steps.Choice(STATE_GATE)
    gate.add_choice(
        steps.ChoiceRule.NumericGreaterThan(variable=ACCURACY_PATH, value=spec.threshold), next_step=register
    )
    gate.default_choice(too_low)
    tune_or_train = steps.Choice(STATE_TUNE_OR_TRAIN)
    tune_or_train.add_choice(steps.ChoiceRule.BooleanEquals(variable="$.Tuning", value=True), next_step=tune)
    tune_or_train.default_choice(train)
    steps.Chain([etl, tune_or_train])
    steps.Chain([tune, best, save])
    steps.Chain([train, save, query, gate])
    # The decision is the execution input's (the pipeline found an identical ETL's output); the
    # history shows this state choosing, and the input says which run's output is reused.
    reuse = steps.Choice(STATE_REUSE)
    reuse.add_choice(steps.ChoiceRule.BooleanEquals(variable="$.ReuseEtl", value=True), next_step=tune_or_train)
    reuse.default_choice(etl)
    definition = json.loads(steps.Graph(reuse).to_json())
    # SageMaker refuses a second training job of the same name, and a redriven execution runs the
    # failed training state again: each attempt's job is named after the redrive count.
    definition["States"][STATE_TRAIN]["Parameters"]["TrainingJobName.$"] = TRAINING_JOB_NAME
    _tuning_from_input(definition["States"][STATE_TUNE])
    validate_definition(definition)
    return definition


def definition_for(spec: WorkflowSpec, cache_dir: Path | None = None) -> dict[str, Any]:
    """``build_definition(spec)``, built once per spec (kept in ``cache_dir``) and validated every time."""
    return definition_once(cache_dir, "definition", spec, build_definition)
