"""``cloudformation_parameters.json``: what the CloudFormation deploy stage needs, and nothing else."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import names
from .errors import PipelineError

PARAMETER_NAMES = (
    "ModelName",
    "ModelDataUrl",
    "TrainingImage",
    "InstanceType",
    "InstanceCount",
    "RoleArn",
    "DataCapturePercentage",
    "DataCaptureS3Uri",
)


def deploy_parameters(record, params: dict[str, Any], environment_prefix: str) -> dict[str, dict[str, str]]:
    """The template parameters for a registered model (CloudFormation wants every value as a string)."""
    if record.status != "approved":
        raise PipelineError(
            f"run {record.run_id!r} is {record.status!r} in the registry; only an approved "
            "model is exported for deployment"
        )
    parameters = {
        "ModelName": record.model_name,
        "ModelDataUrl": record.model_data_url,
        "TrainingImage": record.image,
        "InstanceType": params["endpoint_instance_type"],
        "InstanceCount": str(params["endpoint_instance_count"]),
        "RoleArn": params["sagemaker_execution_role"],
        # opt-in (row SM-DATA-CAPTURE): at 0 the stack sets no DataCaptureConfig
        "DataCapturePercentage": str(params["endpoint_capture_percent"]),
        "DataCaptureS3Uri": f"{environment_prefix}/capture",  # the SageMaker role writes there
    }
    return {"Parameters": parameters}


def write_parameters(run, record) -> Path:
    """Write the run's ``cloudformation_parameters.json``; never replace a different one."""
    content = json.dumps(deploy_parameters(record, run.params, run.environment_prefix), indent=2, sort_keys=True)
    content += "\n"
    target = run.artifacts_dir / names.DEPLOY_PARAMETERS
    if target.exists() and target.read_text() != content:
        raise PipelineError(
            f"{target} exists with other content; it is this run's deploy record and is not overwritten"
        )
    return run.write_artifact(names.DEPLOY_PARAMETERS, content)
