"""The task integrations of local Step Functions: what each Task ``Resource`` of a definition does,
through the local services' clients, with Step Functions' error names for Retry and Catch."""

from __future__ import annotations

import json

from botocore.exceptions import ClientError

from ...errors import TaskFailed
from . import asl


# --- task integrations: what each Task Resource of the definition does locally ---------------------------
def _service_error(prefix: str, exc: Exception) -> TaskFailed:
    """A service error as Step Functions names it to Retry/Catch (``<Service>.<Code>``)."""
    if isinstance(exc, ClientError):
        return TaskFailed(f"{prefix}.{exc.response['Error']['Code']}", str(exc))
    return TaskFailed("States.TaskFailed", str(exc))


def task_runners(backend) -> dict[str, asl.Runner]:
    """The runner of each Task ``Resource`` the pipeline's definitions use."""

    def run_glue_job(parameters: dict) -> dict:
        glue = backend.client("glue")
        try:
            run_id = glue.start_job_run(**parameters)["JobRunId"]
        except ClientError as exc:
            raise _service_error("Glue", exc) from exc
        run = glue.get_job_run(JobName=parameters["JobName"], RunId=run_id)["JobRun"]
        if run["JobRunState"] != "SUCCEEDED":
            raise TaskFailed("States.TaskFailed", json.dumps(run))
        return run

    def invoke_function(parameters: dict) -> dict:
        try:
            response = backend.client("lambda").invoke(**parameters)
        except ClientError as exc:
            raise _service_error("Lambda", exc) from exc
        if response.get("FunctionError"):
            payload = response["Payload"]
            raise TaskFailed(payload["errorType"], json.dumps(payload))
        return response

    return {
        "arn:aws:states:::glue:startJobRun.sync": run_glue_job,
        "arn:aws:states:::sagemaker:createTrainingJob.sync": _sagemaker_job(backend, "Training", "training"),
        "arn:aws:states:::sagemaker:createTransformJob.sync": _sagemaker_job(backend, "Transform", "transform"),
        "arn:aws:states:::sagemaker:createHyperParameterTuningJob.sync": _sagemaker_job(
            backend, "HyperParameterTuning", "hyper_parameter_tuning"
        ),
        "arn:aws:states:::sagemaker:createModel": _sagemaker_call(backend, "create_model"),
        # the best training job's description: an AWS SDK integration, the API's response as output
        "arn:aws:states:::aws-sdk:sagemaker:describeTrainingJob": _sagemaker_call(backend, "describe_training_job"),
        "arn:aws:states:::lambda:invoke": invoke_function,
    }


def _sagemaker_job(backend, kind: str, method: str) -> asl.Runner:
    """A ``.sync`` SageMaker job (``Training``, ``Transform``, ``HyperParameterTuning``; ``method``: the
    client's name for it): created, then its description is the state's output, or the failed task's
    cause (contract row SFN-SYNC-CAUSE)."""

    def run(parameters: dict) -> dict:
        sagemaker = backend.client("sagemaker")
        try:
            getattr(sagemaker, f"create_{method}_job")(**parameters)
        except ClientError as exc:
            raise _service_error("SageMaker", exc) from exc
        name = f"{kind}JobName"
        job = getattr(sagemaker, f"describe_{method}_job")(**{name: parameters[name]})
        if job[f"{kind}JobStatus"] != "Completed":
            raise TaskFailed("States.TaskFailed", json.dumps(job))
        return job

    return run


def _sagemaker_call(backend, method: str) -> asl.Runner:
    """One SageMaker call whose response is the state's output."""

    def run(parameters: dict) -> dict:
        try:
            return getattr(backend.client("sagemaker"), method)(**parameters)
        except ClientError as exc:
            raise _service_error("SageMaker", exc) from exc

    return run
