"""The scoring state machine: the ETL job in its scoring mode -> a scoring model in the XGBoost
container's script mode -> a Batch Transform that joins each answer to its row."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .container import transform_settings
from .sdk import definition_once, import_sdks, validate_definition
from .statemachine import OUTPUT_PATH_FROM_INPUT, create_model_task, retrying_when_busy, sdk_session

STATE_PREPARE = "Check and Encode Customers"


STATE_SCORING_MODEL = "Create Scoring Model"


STATE_SCORE = "Score Customers"


@dataclass(frozen=True)
class ScoringSpec:
    """What the scoring definition needs besides the execution input (one definition per environment)."""

    glue_job_name: str
    image: str
    region: str
    sagemaker_role: str
    instance_type: str
    instance_count: int
    #: the scoring model's environment (``container.transform_environment``); a value ``input_path(key)``
    #: is taken from the execution input
    environment: tuple[tuple[str, str], ...]


def input_path(key: str) -> str:
    """The path of an execution-input value, as a definition reads it."""
    return f"$$.Execution.Input['{key}']"


def _with_inputs(values: tuple[tuple[str, str], ...], execution_input) -> dict[str, Any]:
    """``values`` with each ``input_path(key)`` replaced by the SDK's placeholder for that input."""
    keys = {input_path(key): key for key in scoring_input_schema()}
    return {name: execution_input[keys[value]] if value in keys else value for name, value in values}


def scoring_input_schema() -> dict[str, type]:
    """The scoring execution's values: the customers (``DataUri``), where their encoded rows and the
    scores go, the model (its data, the feature manifest, the script's source directory), the
    decision's settings (strings: they become the scoring model's environment) and the control group's
    (the ETL job's arguments)."""
    return {
        "DataUri": str,
        "EncodedUri": str,
        "OutputUri": str,
        "ManifestUri": str,
        "ModelName": str,
        "ModelDataUrl": str,
        "SourceDirUri": str,
        "Cutoff": str,
        "Explain": str,
        "TransformJobName": str,
        "EtlScript": str,
        "EtlPackage": str,
        "OutputFilter": str,
        "HoldoutFraction": str,
        "ScoringDate": str,
    }


def _transform_step(spec: ScoringSpec, execution_input):
    """Score Customers: a Batch Transform that joins each answer to its input row."""
    from sagemaker.transformer import Transformer
    from stepfunctions import steps

    settings = transform_settings(spec.instance_type)
    transformer = Transformer(
        model_name="replaced-by-execution-input",
        instance_count=spec.instance_count,
        instance_type=spec.instance_type,
        strategy="MultiRecord",
        assemble_with="Line",
        output_path=OUTPUT_PATH_FROM_INPUT,
        accept="text/csv",
        max_concurrent_transforms=settings["MaxConcurrentTransforms"],
        max_payload=settings["MaxPayloadInMB"],
        env=settings["Environment"],
        sagemaker_session=sdk_session(spec.region),
    )
    return steps.TransformStep(
        STATE_SCORE,
        transformer=transformer,
        job_name=execution_input["TransformJobName"],
        model_name=execution_input["ModelName"],
        data=execution_input["EncodedUri"],
        content_type="text/csv",
        split_type="Line",
        input_filter="$[1:]",
        join_source="Input",
        output_filter=execution_input["OutputFilter"],
        result_path="$.TransformResult",
    )


def build_scoring_definition(spec: ScoringSpec) -> dict[str, Any]:
    """Batch scoring as a state machine: the ETL job in its scoring mode (every row checked, encoded
    with the model's encoding, in input order), a scoring model in the XGBoost container's script
    mode, and a Batch Transform (the SDK's ``TransformStep``) that joins each answer to its row."""
    import_sdks()
    from stepfunctions import steps
    from stepfunctions.inputs import ExecutionInput

    execution_input = ExecutionInput(schema=scoring_input_schema())
    prepare = retrying_when_busy(
        steps.GlueStartJobRunStep(
            STATE_PREPARE,
            result_path="$.PrepareResult",
            parameters={
                "JobName": spec.glue_job_name,
                "Arguments": {
                    "--ETL_MODE": "score",
                    "--scriptLocation": execution_input["EtlScript"],
                    "--extra-py-files": execution_input["EtlPackage"],
                    "--S3_SOURCE": execution_input["DataUri"],
                    "--S3_DEST": execution_input["EncodedUri"],
                    "--MANIFEST": execution_input["ManifestUri"],
                    "--HOLDOUT_FRACTION": execution_input["HoldoutFraction"],
                    "--SCORING_DATE": execution_input["ScoringDate"],
                },
            },
        )
    )
    model = create_model_task(
        STATE_SCORING_MODEL,
        "$.ModelResult",
        {"ModelName": execution_input["ModelName"], "ExecutionRoleArn": spec.sagemaker_role},
        spec.image,
        {"ModelDataUrl": execution_input["ModelDataUrl"]},
        _with_inputs(spec.environment, execution_input),
    )
    score = _transform_step(spec, execution_input)
    definition = json.loads(steps.Graph(steps.Chain([prepare, model, score])).to_json())
    parameters = definition["States"][STATE_SCORE]["Parameters"]
    parameters["TransformOutput"].pop("S3OutputPath")
    parameters["TransformOutput"]["S3OutputPath.$"] = input_path("OutputUri")
    # the SDK's Transformer has no ModelClientConfig: the platform waits as long as the model server
    parameters["ModelClientConfig"] = transform_settings(spec.instance_type)["ModelClientConfig"]
    validate_definition(definition)
    return definition


def scoring_definition_for(spec: ScoringSpec, cache_dir: Path | None = None) -> dict[str, Any]:
    """``build_scoring_definition(spec)``, built once per spec (kept in ``cache_dir``) and validated every time."""
    return definition_once(cache_dir, "scoring-definition", spec, build_scoring_definition)
