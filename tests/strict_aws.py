"""A strict layer over moto: where moto is more lenient than AWS, or lacks an operation the
pipeline calls, behave as ``docs/aws-behaviours.md`` says AWS does.

Applied by patching moto's classes (never instances, which moto re-creates on
reset), so it holds for ``mock_aws`` and for a ``ThreadedMotoServer`` in this
process alike. Each patch names the row it enforces.
"""

from __future__ import annotations

import json

import pytest
from moto.core.exceptions import JsonRESTError
from moto.core.responses import ActionResult, EmptyResult

from churn_pipeline.backends.local.glue import SPARK_WORKER_TYPES

_ORIGINALS: dict[tuple[type, str], object] = {}


def _patch(monkeypatch, cls: type, name: str, replacement) -> None:
    original = cls.__dict__[name]
    _ORIGINALS[(cls, name)] = original
    monkeypatch.setattr(cls, name, replacement)


def _original(cls: type, name: str):
    return _ORIGINALS[(cls, name)]


# --- Glue ----------------------------------------------------------------------------------------
#: worker types Glue runs Spark jobs on: the local Glue service's list, one source for both
GLUE_SPARK_WORKER_TYPES = set(SPARK_WORKER_TYPES)
_JOB_FIELDS = {
    "Description": "description",
    "LogUri": "log_uri",
    "Role": "role",
    "ExecutionProperty": "execution_property",
    "Command": "command",
    "DefaultArguments": "default_arguments",
    "NonOverridableArguments": "non_overridable_arguments",
    "Connections": "connections",
    "MaxRetries": "max_retries",
    "AllocatedCapacity": "allocated_capacity",
    "Timeout": "timeout",
    "MaxCapacity": "max_capacity",
    "SecurityConfiguration": "security_configuration",
    "NotificationProperty": "notification_property",
    "GlueVersion": "glue_version",
    "NumberOfWorkers": "number_of_workers",
    "WorkerType": "worker_type",
    "CodeGenConfigurationNodes": "code_gen_configuration_nodes",
    "ExecutionClass": "execution_class",
    "SourceControlDetails": "source_control_details",
}


def _check_worker_type(definition: dict) -> None:
    """GLUE-WORKER: G.025X is for streaming jobs; a glueetl job is refused it."""
    worker = definition.get("WorkerType")
    if definition.get("Command", {}).get("Name") == "glueetl" and worker and worker not in GLUE_SPARK_WORKER_TYPES:
        raise JsonRESTError("InvalidInputException", f"Worker type {worker} is not supported for glueetl jobs")


def _glue_create_job(self):
    """GLUE-CREATE: CreateJob for an existing name is refused, never an overwrite."""
    request = json.loads(self.body)
    name = request["Name"]
    definition = {k: v for k, v in request.items() if k not in ("Name", "Tags")}
    _check_worker_type(definition)
    existing = self.glue_backend.jobs.get(name)
    if existing is not None:
        if getattr(existing, "strict_definition", None) != definition:
            raise JsonRESTError(
                "IdempotentParameterMismatchException", "Job already submitted with different configuration"
            )
        raise JsonRESTError("AlreadyExistsException", f"Job with name {name} already exists")
    result = _original(type(self), "create_job")(self)
    self.glue_backend.jobs[name].strict_definition = definition
    return result


def _glue_update_job(self):
    """GLUE-UPDATE (moto lacks UpdateJob): JobUpdate replaces the whole definition."""
    name = self._get_param("JobName")
    update = self._get_param("JobUpdate")
    job = self.glue_backend.get_job(name)  # EntityNotFoundException when missing
    _check_worker_type(update)
    tags = self.glue_backend.get_tags(job.arn)
    self.glue_backend.create_job(name=name, tags=tags, **{field: update.get(key) for key, field in _JOB_FIELDS.items()})
    replaced = self.glue_backend.jobs[name]
    replaced.created_on, replaced.strict_definition = job.created_on, dict(update)
    return ActionResult({"JobName": name})


# --- Lambda --------------------------------------------------------------------------------------
def _lambda_init(self, *args, **kwargs):
    """LAMBDA-PENDING: a new function is Pending until Lambda has set it up."""
    _original(type(self), "__init__")(self, *args, **kwargs)
    self.state = "Pending"
    self.strict_update_in_progress = False


def _lambda_get_configuration(self, on_create: bool = False):
    """LAMBDA-PENDING/LAMBDA-UPDATE: the state a describe sees; the change completes after it."""
    configuration = _original(type(self), "get_configuration")(self, on_create)
    if getattr(self, "strict_update_in_progress", False) and not on_create:
        configuration["LastUpdateStatus"] = "InProgress"
    if not on_create:
        self.state, self.strict_update_in_progress = "Active", False
    return configuration


def _lambda_refuse_while_changing(method_name: str):
    def method(self, function_name, qualifier, body):
        """LAMBDA-UPDATE: no change while the function is Pending or an update is in progress."""
        function = self.get_function(function_name, qualifier)
        if function.state != "Active" or getattr(function, "strict_update_in_progress", False):
            conflict = JsonRESTError(
                "ResourceConflictException",
                "The operation cannot be performed at this time. "
                f"An update is in progress for resource: {function.function_arn}",
            )
            conflict.code = 409
            raise conflict
        result = _original(type(self), method_name)(self, function_name, qualifier, body)
        function.strict_update_in_progress = True
        return result

    return method


def _lambda_publish_version(self):
    """LAMBDA-VERSIONS: refused while the function changes, and when CodeSha256 is not $LATEST's."""
    from urllib.parse import unquote

    function = self.backend.get_function(unquote(self.path.split("/")[-2]), None)
    if function.state != "Active" or getattr(function, "strict_update_in_progress", False):
        conflict = JsonRESTError(
            "ResourceConflictException",
            f"The operation cannot be performed at this time. An update is in progress for resource: "
            f"{function.function_arn}",
        )
        conflict.code = 409
        raise conflict
    wanted = self._get_param("CodeSha256")
    if wanted is not None and wanted != function.code_sha_256:
        raise JsonRESTError(
            "InvalidParameterValueException",
            f"CodeSHA256 ({wanted}) is different from current CodeSHA256 in $LATEST ({function.code_sha_256}). "
            "Please try again with the CodeSHA256 in $LATEST.",
        )
    return _original(type(self), "publish_version")(self)


# --- Step Functions ------------------------------------------------------------------------------
def _sfn_create_state_machine(self, name, definition, roleArn, **kwargs):
    """SFN-CREATE: idempotent only for the same definition, else StateMachineAlreadyExists."""
    from moto.stepfunctions.exceptions import StateMachineDoesNotExist

    arn = f"arn:aws:states:{self.region_name}:{self.account_id}:stateMachine:{name}"
    try:
        existing = self.describe_state_machine(arn)
    except StateMachineDoesNotExist:
        return _original(type(self), "create_state_machine")(self, name, definition, roleArn, **kwargs)
    if existing.definition != definition:
        raise JsonRESTError("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'")
    return existing


def _publish_if_new(machine, description):
    """SFN-PUBLISH: a version is created only for a revision that has none."""
    latest = machine.latest_version
    if latest is not None and latest.definition == machine.definition and latest.roleArn == machine.roleArn:
        return latest
    machine.publish(description)
    return machine.latest_version


def _sfn_publish_state_machine_version(self):
    """SFN-PUBLISH (moto lacks PublishStateMachineVersion)."""
    machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
    version = _publish_if_new(machine, self._get_param("description"))
    if len(machine.versions) > 1000:
        raise JsonRESTError("ServiceQuotaExceededException", "a state machine holds at most 1,000 versions")
    return ActionResult({"stateMachineVersionArn": version.arn, "creationDate": version.creation_date})


def _sfn_list_state_machine_versions(self):
    """SFN-VERSIONS (moto lacks ListStateMachineVersions): newest first."""
    machine = self.stepfunction_backend.describe_state_machine(self._get_param("stateMachineArn"))
    versions = [machine.versions[n] for n in sorted(machine.versions, reverse=True)]
    return ActionResult(
        {"stateMachineVersions": [{"stateMachineVersionArn": v.arn, "creationDate": v.creation_date} for v in versions]}
    )


def _sfn_delete_state_machine_version(self):
    """SFN-VERSIONS (moto lacks DeleteStateMachineVersion)."""
    source, _, number = self._get_param("stateMachineVersionArn").rpartition(":")
    machine = self.stepfunction_backend.describe_state_machine(source)
    removed = machine.versions.pop(int(number), None)
    if removed is not None and machine.latest_version is removed:
        machine.latest_version = machine.versions[max(machine.versions)] if machine.versions else None
    return EmptyResult()


def _sfn_redrive_execution(self):
    """SFN-REDRIVE (moto lacks RedriveExecution): only a FAILED, ABORTED or TIMED_OUT execution is
    redriven, under its own ARN; anything else is ExecutionNotRedrivable."""
    from moto.core.utils import utcnow

    execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
    if execution.status not in ("FAILED", "ABORTED", "TIMED_OUT"):
        raise JsonRESTError("ExecutionNotRedrivable", f"Execution is {execution.status} and cannot be redriven")
    execution.status, execution.stop_date, execution.error, execution.cause = "RUNNING", None, None, None
    execution.redrive_count = getattr(execution, "redrive_count", 0) + 1
    return ActionResult({"redriveDate": utcnow()})


def _version_start_execution(self, region_name, account_id, execution_name, execution_input):
    """SFN-START-VERSION: moto cannot start an execution on a version ARN; AWS runs that version."""
    from moto.stepfunctions import models

    source = models.stepfunctions_backends[account_id][region_name].describe_state_machine(self.source_arn)
    return source.start_execution(region_name, account_id, execution_name, execution_input)


# --- SageMaker and CloudFormation ------------------------------------------------------------------
def _sagemaker_create_model(self, model_name, *args, **kwargs):
    """SM-MODEL: CreateModel for an existing name fails, never overwrites."""
    from moto.sagemaker.exceptions import ValidationError

    if model_name in self._models:
        raise ValidationError(f'Cannot create already existing model "{self._models[model_name].arn}".')
    return _original(type(self), "create_model")(self, model_name, *args, **kwargs)


def _sagemaker_create_training_job(self, training_job_name, *args, **kwargs):
    """SM-TRAINING: training job names are unique in an account and region."""
    from moto.sagemaker.exceptions import ResourceInUseException

    if training_job_name in self.training_jobs:
        raise ResourceInUseException(
            f"Training job names must be unique within an AWS account and region, and "
            f"a training job with this name already exists ({training_job_name})"
        )
    return _original(type(self), "create_training_job")(self, training_job_name, *args, **kwargs)


def _sagemaker_create_transform_job(self, transform_job_name, model_name, *args, **kwargs):
    """SM-TRANSFORM-JOIN: a filter outside the forms Batch Transform applies to CSV rows is refused;
    SM-TRANSFORM-SPEED: so is more than 100 MB of concurrent mini-batches."""
    from moto.sagemaker.exceptions import ValidationError

    from churn_pipeline.backends.local.transform import check_filter, check_payload
    from churn_pipeline.errors import PipelineError

    processing = kwargs.get("data_processing") or {}
    try:
        for name in ("InputFilter", "OutputFilter"):
            check_filter(processing.get(name, "$"), name)
        check_payload(kwargs.get("max_concurrent_transforms"), kwargs.get("max_payload_in_mb"))
    except PipelineError as exc:
        raise ValidationError(str(exc)) from None
    return _original(type(self), "create_transform_job")(self, transform_job_name, model_name, *args, **kwargs)


def _sagemaker_create_tuning_job(
    self, hyper_parameter_tuning_job_name, hyper_parameter_tuning_job_config, *args, **kwargs
):
    """AMT-NAME: at most 32 characters of AMT's pattern, unique; AMT-SEARCH-SPACE: AMT's rules on the
    config (moto stores both unchecked)."""
    from moto.sagemaker.exceptions import ResourceInUseException, ValidationError

    from churn_pipeline import tuning

    if not tuning.TUNING_JOB_NAME.match(hyper_parameter_tuning_job_name):
        raise ValidationError(
            f"1 validation error detected: Value '{hyper_parameter_tuning_job_name}' at 'hyperParameterTuningJobName' "
            "failed to satisfy constraint: Member must have length less than or equal to 32"
        )
    if hyper_parameter_tuning_job_name in self.hyper_parameter_tuning_jobs:
        raise ResourceInUseException(f"Hyperparameter tuning job {hyper_parameter_tuning_job_name} already exists")
    problem = tuning.config_problem(hyper_parameter_tuning_job_config)
    if problem:
        raise ValidationError(problem)
    return _original(type(self), "create_hyper_parameter_tuning_job")(
        self, hyper_parameter_tuning_job_name, hyper_parameter_tuning_job_config, *args, **kwargs
    )


# --- CodePipeline ---------------------------------------------------------------------------------
def _codepipeline_start_pipeline_execution(self, name, variables):
    """CP-VARIABLES: variable names match [A-Za-z0-9@\\-_]+ and a value is never empty."""
    import re

    for variable in variables or []:
        if not re.fullmatch(r"[A-Za-z0-9@\-_]+", variable.get("name", "")) or not variable.get("value"):
            raise JsonRESTError(
                "ValidationException", f"pipeline variable {variable}: a name of [A-Za-z0-9@-_], a value"
            )
    return _original(type(self), "start_pipeline_execution")(self, name, variables)


def apply(monkeypatch) -> None:
    """Hold moto to the AWS behaviours the pipeline relies on, for one test."""
    from moto.awslambda.models import LambdaBackend, LambdaFunction
    from moto.awslambda.responses import LambdaResponse
    from moto.codepipeline.models import CodePipelineBackend
    from moto.glue.responses import GlueResponse
    from moto.sagemaker.models import FakeEndpoint, Model, SageMakerModelBackend
    from moto.stepfunctions.models import StateMachineVersion, StepFunctionBackend
    from moto.stepfunctions.responses import StepFunctionResponse

    _patch(monkeypatch, GlueResponse, "create_job", _glue_create_job)
    monkeypatch.setattr(GlueResponse, "update_job", _glue_update_job, raising=False)
    _patch(monkeypatch, LambdaFunction, "__init__", _lambda_init)
    _patch(monkeypatch, LambdaFunction, "get_configuration", _lambda_get_configuration)
    for name in ("update_function_code", "update_function_configuration"):
        _patch(monkeypatch, LambdaBackend, name, _lambda_refuse_while_changing(name))
    _patch(monkeypatch, LambdaResponse, "publish_version", _lambda_publish_version)
    _patch(monkeypatch, StepFunctionBackend, "create_state_machine", _sfn_create_state_machine)
    monkeypatch.setattr(
        StepFunctionResponse, "publish_state_machine_version", _sfn_publish_state_machine_version, raising=False
    )
    monkeypatch.setattr(
        StepFunctionResponse, "list_state_machine_versions", _sfn_list_state_machine_versions, raising=False
    )
    monkeypatch.setattr(
        StepFunctionResponse, "delete_state_machine_version", _sfn_delete_state_machine_version, raising=False
    )
    monkeypatch.setattr(StepFunctionResponse, "redrive_execution", _sfn_redrive_execution, raising=False)
    monkeypatch.setattr(StateMachineVersion, "start_execution", _version_start_execution, raising=False)
    _patch(monkeypatch, CodePipelineBackend, "start_pipeline_execution", _codepipeline_start_pipeline_execution)
    _patch(monkeypatch, SageMakerModelBackend, "create_model", _sagemaker_create_model)
    _patch(monkeypatch, SageMakerModelBackend, "create_training_job", _sagemaker_create_training_job)
    _patch(monkeypatch, SageMakerModelBackend, "create_transform_job", _sagemaker_create_transform_job)
    _patch(monkeypatch, SageMakerModelBackend, "create_hyper_parameter_tuning_job", _sagemaker_create_tuning_job)
    # CFN-NAMES: CloudFormation creates SageMaker models and endpoints under the names the template
    # gives (moto invents names).
    monkeypatch.setattr(Model, "cloudformation_name_type", staticmethod(lambda: "ModelName"))
    monkeypatch.setattr(FakeEndpoint, "cloudformation_name_type", staticmethod(lambda: "EndpointName"))


@pytest.fixture
def strict_aws(monkeypatch):
    apply(monkeypatch)
