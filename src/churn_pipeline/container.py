"""The SageMaker XGBoost container's contract, as the scoring chain meets it.

The built-in algorithm reads ``text/csv`` rows of features (``csv_input``);
in script mode (``SAGEMAKER_PROGRAM``) the container calls a script's
``model_fn``, ``input_fn``, ``predict_fn`` and ``output_fn``: the ``transform_*``
functions here, which ``code/score_transform.py`` hands over. Batch Transform
joins each answer to its input row by ``transform_data_processing``. Everything
here runs inside the container's Python 3.10 as well as on this machine.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import decisions, inference
from .errors import PipelineError
from .training import load_model_dir

#: the script the scoring model names in SAGEMAKER_PROGRAM, and the manifest packed beside it
TRANSFORM_PROGRAM = "score_transform.py"
#: the script of the model behind the endpoint (``inference``)
ENDPOINT_PROGRAM = "serve_endpoint.py"
#: the Accept the container's worker hands over when a request has none or ``*/*``
DEFAULT_ACCEPT_VARIABLE = "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT"
#: the container's model server ends a request after this long (``SAGEMAKER_MODEL_SERVER_TIMEOUT``'s default)
MODEL_SERVER_TIMEOUT_SECONDS = 60
#: vCPUs by an instance type's size (EC2's hardware tables: a ``large`` has 2, an ``xlarge`` 4, an
#: ``Nxlarge`` 4N, in every general-purpose, compute- and memory-optimised family): one model-server worker
#: and one concurrent mini-batch per vCPU
SIZE_VCPUS = {"large": 2, "xlarge": 4}
#: the scoring model server's timeout per mini-batch (``SAGEMAKER_MODEL_SERVER_TIMEOUT``), and the
#: mini-batch size: measured (``benchmarks/transform.py``), a 6 MB mini-batch with every reason takes a
#: few seconds on one core even for a large model, well inside the timeout
TRANSFORM_TIMEOUT_SECONDS = 300
TRANSFORM_PAYLOAD_MB = 6
#: CreateTransformJob: MaxConcurrentTransforms x MaxPayloadInMB may not exceed this
TRANSFORM_CONCURRENT_PAYLOAD_MB = 100
#: pip without build isolation: script mode ``pip install``s the source dir, and with isolation pip
#: downloads setuptools first, which fails with no package index reachable (row SM-SCRIPT-OFFLINE;
#: pip reads ``PIP_NO_*`` inverted: ``false`` turns isolation off)
OFFLINE_START = {"PIP_NO_BUILD_ISOLATION": "false"}


TRANSFORM_MANIFEST = "manifest.json"


#: the scoring model's environment variables that carry the decision's cutoff and the reasons asked for
CUTOFF_VARIABLE = inference.CUTOFF_VARIABLE


EXPLAIN_VARIABLE = "CHURN_EXPLAIN"


@dataclass
class TransformModel:
    booster: Any
    manifest: dict[str, Any]
    cutoff: float
    explain_count: int


def transform_model(model_dir: str | os.PathLike, code_dir: str | os.PathLike) -> TransformModel:
    """``model_fn``: the booster the container extracted to ``model_dir``, the manifest packed with the
    script, the cutoff and reasons from the model's environment."""
    booster = load_model_dir(model_dir)
    manifest = json.loads((Path(code_dir) / TRANSFORM_MANIFEST).read_text())
    return TransformModel(
        booster, manifest, float(os.environ[CUTOFF_VARIABLE]), int(os.environ.get(EXPLAIN_VARIABLE, "0"))
    )


def csv_input(body: str | bytes, content_type: str):
    """The built-in algorithm's ``text/csv`` input, and the scoring script's ``input_fn``: rows of numbers
    (Batch Transform's InputFilter has removed the identifier) -> a float32 matrix."""
    import numpy as np

    if inference.media_type(content_type)[0] != "text/csv":
        raise PipelineError(f"the model reads text/csv, not {content_type}")
    text = body.decode() if isinstance(body, bytes) else body
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def transform_predict(matrix, model: TransformModel) -> list[str]:
    """``predict_fn``: one CSV line (score, decision, reasons) per row of (held, features...): ``held`` is
    1 for a customer of the control group (``scoring.held_column``), whose offer becomes ``holdout``."""
    features = len(model.manifest["features"])
    if matrix.shape[1] != features + 1:
        raise PipelineError(
            f"rows have {matrix.shape[1]} columns; the scoring model takes the control-group flag and "
            f"{features} features"
        )
    columns = decisions.decided(model.booster, matrix[:, 1:], model.manifest, model.cutoff, model.explain_count)
    columns["decision"] = decisions.decided_with_holdout(columns["decision"], matrix[:, 0] == 1)
    return [",".join(str(value) for value in row) for row in zip(*columns.values())]


def transform_output(lines: list[str], accept: str) -> tuple[str, str]:
    """``output_fn``: the lines as ``text/csv``, one per input record (Batch Transform joins them in order)."""
    if inference.media_type(accept)[0] not in ("text/csv", "*/*"):
        raise PipelineError(f"the scoring model answers text/csv, not {accept}")
    return "".join(line + "\n" for line in lines), "text/csv"


def transform_data_processing(features_count: int) -> dict[str, str]:
    """Batch Transform's DataProcessing for ``<identifier>,<held>,<features>`` rows: the model sees the
    flag and the features; each answer is appended to its whole input row, and the identifier and the
    answer are kept (contract row SM-TRANSFORM-JOIN)."""
    return {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": f"$[0,{features_count + 2}:]"}


def script_mode(program: str, source_dir_uri: Any, region: str) -> dict[str, Any]:
    """The XGBoost container's script mode (contract row SM-SCRIPT-MODE), startable offline."""
    return {
        "SAGEMAKER_PROGRAM": program,
        "SAGEMAKER_SUBMIT_DIRECTORY": source_dir_uri,
        "SAGEMAKER_REGION": region,
        **OFFLINE_START,
    }


def transform_environment(source_dir_uri: Any, cutoff: Any, explain_count: Any, region: str) -> dict[str, Any]:
    """The scoring model's environment: script mode and the decision's settings, as strings (or the
    definition's execution-input placeholders for them)."""
    return {
        **script_mode(TRANSFORM_PROGRAM, source_dir_uri, region),
        CUTOFF_VARIABLE: cutoff,
        EXPLAIN_VARIABLE: explain_count,
    }


def instance_vcpus(instance_type: str) -> int:
    """The vCPUs of an ``ml.<family>.<size>`` instance type, from its size."""
    size = instance_type.rsplit(".", 1)[-1]
    multiple = size[: -len("xlarge")] if size.endswith("xlarge") and size != "xlarge" else ""
    if (
        instance_type.count(".") == 2
        and instance_type.startswith("ml.")
        and (size in SIZE_VCPUS or multiple.isdecimal())
    ):
        return SIZE_VCPUS[size] if size in SIZE_VCPUS else 4 * int(multiple)
    raise PipelineError(
        f"endpoint_instance_type {instance_type!r}: Batch Transform scoring needs an ml.<family>.<size> type "
        "of size large, xlarge or <N>xlarge (its vCPUs set the concurrency)"
    )


def transform_settings(instance_type: str) -> dict[str, Any]:
    """CreateTransformJob's settings for ``instance_type`` (row SM-TRANSFORM-SPEED): one mini-batch in
    flight and one model-server worker per vCPU (without them the script-mode server, which has no
    ``/execution-parameters``, gets one request at a time on one core), a set timeout, and a payload
    within the 100 MB the concurrent mini-batches may hold together."""
    vcpus = instance_vcpus(instance_type)
    concurrent = min(vcpus, TRANSFORM_CONCURRENT_PAYLOAD_MB)  # mini-batches are at least 1 MB
    return {
        "MaxConcurrentTransforms": concurrent,
        "MaxPayloadInMB": min(TRANSFORM_PAYLOAD_MB, TRANSFORM_CONCURRENT_PAYLOAD_MB // concurrent),
        "Environment": {
            "SAGEMAKER_MODEL_SERVER_WORKERS": str(vcpus),
            "SAGEMAKER_MODEL_SERVER_TIMEOUT": str(TRANSFORM_TIMEOUT_SECONDS),
        },
        "ModelClientConfig": {"InvocationsTimeoutInSeconds": TRANSFORM_TIMEOUT_SECONDS, "InvocationsMaxRetries": 0},
    }


def endpoint_environment(manifest: Any, decision: Any = None, cutoff: float | None = None) -> dict[str, Any]:
    """What ``inference.model_fn`` reads: the feature manifest, and the run's recorded decision or a
    cutoff given; answers are CSV unless the request asks otherwise, as the built-in algorithm's."""
    environment = {DEFAULT_ACCEPT_VARIABLE: "text/csv", inference.MANIFEST_VARIABLE: manifest}
    if decision is not None:
        environment[inference.DECISION_VARIABLE] = decision
    if cutoff is not None:
        environment[inference.CUTOFF_VARIABLE] = repr(float(cutoff))
    return environment
