"""Batch scoring: every customer of a file scored where the data is, in input order.

The rows are checked by the run's rules, encoded with the transform in the
model's manifest and scored on Spark: ``mapInPandas`` hands each task Arrow
batches, and each Python worker loads the model once, so memory does not grow
with the file. Spark's parts, written in input order, are joined into one CSV:

``<identifier>,score,decision[,reason_1,contribution_1,...]``

The identifier is ``Phone`` for raw customer records and ``row`` (the line in
the file) for pre-encoded rows; ``score`` is the churn probability (six
decimals), ``decision`` is 1 when the score is above the model's cutoff, and
``--explain K`` adds the K largest reasons (``explain.top_columns``): a raw
column and its signed contribution in log-odds, positive towards churn.

On AWS the same columns come from a SageMaker Batch Transform: the ETL job, in
its scoring mode (``encode_for_transform``), checks and encodes the rows into
``<identifier>,<features>`` parts in input order; the transform's model runs
this module's ``transform_*`` functions in the XGBoost container's script mode
(``code/score_transform.py``), and Batch Transform joins each answer to its
input row, keeping the identifier (``transform_data_processing``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import data, etl, explain, features
from .errors import DataValidationError, PipelineError

#: Spark's CSV writes as RFC 4180 (a quote in a field doubled, as Batch Transform and Python's csv read
#: it), values as they are (Spark trims white space by default)
CSV_WRITE = {"escape": '"', "ignoreLeadingWhiteSpace": "false", "ignoreTrailingWhiteSpace": "false"}
#: the identifier column of pre-encoded input: the row's line in the file
ROW_NUMBER = "row"
#: decimals of the written score
SCORE_DECIMALS = 6


@dataclass(frozen=True)
class ScoredFile:
    path: Path
    rows: int
    offers: int
    cutoff: float
    columns: list[str]


def output_columns(identifier: str, explain_count: int) -> list[str]:
    reasons = [name for i in range(1, explain_count + 1) for name in (f"reason_{i}", f"contribution_{i}")]
    return [identifier, "score", "decision", *reasons]


def _output_schema(identifier: str, explain_count: int) -> str:
    """Numbers are formatted by the batch (fixed decimals; Spark would write 1.0E-4)."""
    return ", ".join(
        f"{name} {'long' if name == ROW_NUMBER else 'int' if name == 'decision' else 'string'}"
        for name in output_columns(identifier, explain_count)
    )


def _decimals(values):
    import numpy as np

    return np.char.mod(f"%.{SCORE_DECIMALS}f", values.astype(np.float64))


_BOOSTERS: dict[str, Any] = {}


def _booster(model_path: str):
    """The model, loaded once per Python worker (Spark reuses workers across tasks)."""
    if model_path not in _BOOSTERS:
        from .training import load_model_archive

        booster = load_model_archive(model_path)
        booster.set_param({"nthread": 1})  # Spark runs one task per core
        _BOOSTERS[model_path] = booster
    return _BOOSTERS[model_path]


def decided(booster, matrix, manifest: dict[str, Any], cutoff: float, explain_count: int) -> dict[str, Any]:
    """The output columns after the identifier, for a matrix of encoded rows: ``score`` (fixed
    decimals), ``decision`` (1 above ``cutoff``) and the reasons."""
    import numpy as np

    scores = booster.inplace_predict(matrix, validate_features=False) if len(matrix) else np.zeros(0)
    scores = scores.astype(np.float64)  # compared as the endpoint and the evaluation compare them
    columns = {"score": _decimals(scores), "decision": (scores > cutoff).astype(np.int32)}
    if explain_count and len(matrix):
        names = np.asarray(explain.reason_columns(manifest), dtype=object)
        order, values = explain.top_columns(explain.contributions(booster, matrix, manifest)[0], explain_count)
        for i in range(explain_count):
            columns[f"reason_{i + 1}"] = names[order[:, i]]
            columns[f"contribution_{i + 1}"] = _decimals(values[:, i])
    return columns


def batch_scorer(
    model_path: str, manifest: dict[str, Any], cutoff: float, identifier: str, explain_count: int
) -> Callable[[Iterator[Any]], Iterator[Any]]:
    """The function ``mapInPandas`` runs: (identifier, features...) batches -> output rows."""

    def score(batches):
        import numpy as np
        import pandas as pd

        booster = _booster(model_path)
        for batch in batches:
            matrix = batch.iloc[:, 1:].to_numpy(dtype=np.float32)
            yield pd.DataFrame(
                {identifier: batch.iloc[:, 0].to_numpy(), **decided(booster, matrix, manifest, cutoff, explain_count)}
            )

    return score


def check_explain_count(explain_count: int, manifest: dict[str, Any]) -> int:
    """``--explain K``: 0 (no reasons) up to the model's number of raw columns."""
    columns = len(explain.reason_columns(manifest))
    if not 0 <= explain_count <= columns:
        raise PipelineError(f"--explain must be between 0 and {columns} (the model's columns); got {explain_count}")
    return explain_count


def _transform_for(source: etl.Source, manifest: dict[str, Any]) -> features.Transform:
    """The manifest's transform for raw records; by position for pre-encoded rows of the model's width."""
    trained_on_raw = manifest.get("format", "raw") == "raw"
    if source.format == "raw":
        if not trained_on_raw:
            raise DataValidationError(
                source.location,
                "raw customer records, but the model was trained on pre-encoded rows: score rows encoded the same way",
                line=1,
            )
        return manifest["transform"]
    if source.width - 1 != len(manifest["features"]):
        raise DataValidationError(
            source.location,
            f"pre-encoded rows have {source.width - 1} features after "
            f"the label, the model takes {len(manifest['features'])}",
            line=1,
        )
    return features.encoded_transform(source.width)


def _identifier(source: etl.Source):
    """(name, Spark column) of the identifier: ``Phone`` of raw records, the line of pre-encoded rows."""
    from pyspark.sql import functions as F

    if source.format == "raw":
        return data.IDENTIFIER[0], F.trim(F.col(f"`{data.IDENTIFIER[0]}`"))
    return ROW_NUMBER, source.line_number(source.partition_offsets())


def encoded_customers(spark, data_location: str, manifest: dict[str, Any], s3_client=None):
    """(identifier name, Spark frame of identifier and features): every row checked by the run's rules
    (a bad row raises, naming its line), then encoded by the model's transform, in input order."""
    source = etl.Source(spark, data_location, s3_client, labelled=False)
    transform_spec = _transform_for(source, manifest)
    etl.check_rows(source)  # the run's rules, the run's words; nothing is written for a bad file
    identifier, key = _identifier(source)
    return identifier, etl.feature_frame(source, transform_spec, key.alias(identifier))


def encode_for_transform(
    spark, data_location: str, manifest: dict[str, Any], dest: str, s3_client=None
) -> dict[str, Any]:
    """The ETL job's scoring mode: ``<identifier>,<features>`` parts without a header under ``dest``,
    in input order (part names sort as the input), what the scoring Batch Transform reads."""
    identifier, frame = encoded_customers(spark, data_location, manifest, s3_client)
    frame.write.mode("overwrite").options(**CSV_WRITE).csv(dest, header=False)
    etl.keep_only_csv_parts(dest, s3_client)
    return {"identifier": identifier, "features": len(frame.columns) - 1}


def join_parts(folder: Path, header: str, target: Path, explain_count: int) -> tuple[int, int]:
    """Spark's CSV parts, in order, into one file with ``header``; (rows, decisions to offer). The
    decision is read from the right: an identifier may hold a (quoted) comma, reasons and numbers
    do not."""
    rows = offers = 0
    from_right = 2 * explain_count + 1
    with open(target, "wb") as out:
        out.write(header.encode() + b"\n")
        for part in sorted(folder.glob("part-*.csv")):
            with open(part, "rb") as lines:
                for line in lines:
                    out.write(line)
                    rows += 1
                    offers += line.rsplit(b",", from_right)[1].strip() == b"1"
    return rows, offers


def score_file(
    spark,
    model_path: str | os.PathLike,
    manifest: dict[str, Any],
    cutoff: float,
    data_location: str,
    out: str | os.PathLike,
    explain_count: int = 0,
    overwrite: bool = False,
) -> ScoredFile:
    """Score every row of ``data_location`` into the CSV ``out`` (see the module's docstring)."""
    if "://" in str(out):
        raise PipelineError(
            f"--out {out}: scoring on this machine writes a local file; score into s3:// with "
            "--batch-transform (or the aws backend)"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise PipelineError(
            f"{out} exists; scores are not written over an earlier file (choose another --out, or pass --overwrite)"
        )
    check_explain_count(explain_count, manifest)
    identifier, frame = encoded_customers(spark, data_location, manifest)
    scored = frame.mapInPandas(
        batch_scorer(str(model_path), manifest, cutoff, identifier, explain_count),
        _output_schema(identifier, explain_count),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        scored.write.mode("overwrite").options(**CSV_WRITE).csv(str(staging / "parts"), header=False)
        columns = output_columns(identifier, explain_count)
        partial = staging / out.name
        rows, offers = join_parts(staging / "parts", ",".join(columns), partial, explain_count)
        os.replace(partial, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ScoredFile(out, rows, offers, cutoff, columns)


# --- Batch Transform (aws): what the container runs, and how SageMaker joins its answers ------------

#: the script the scoring model names in SAGEMAKER_PROGRAM, and the manifest packed beside it
TRANSFORM_PROGRAM = "score_transform.py"
TRANSFORM_MANIFEST = "manifest.json"
#: the scoring model's environment variables that carry the decision's cutoff and the reasons asked for
CUTOFF_VARIABLE = "CHURN_CUTOFF"
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
    import json

    from .training import load_model_dir

    booster = load_model_dir(model_dir)
    manifest = json.loads((Path(code_dir) / TRANSFORM_MANIFEST).read_text())
    return TransformModel(
        booster, manifest, float(os.environ[CUTOFF_VARIABLE]), int(os.environ.get(EXPLAIN_VARIABLE, "0"))
    )


def transform_input(body: str | bytes, content_type: str):
    """``input_fn``: a mini-batch of CSV rows of features (Batch Transform's InputFilter has removed
    the identifier) -> a float32 matrix."""
    import numpy as np

    if content_type.split(";")[0].strip().lower() != "text/csv":
        raise PipelineError(f"the scoring model reads text/csv, not {content_type}")
    text = body.decode() if isinstance(body, bytes) else body
    rows = [line.split(",") for line in text.splitlines() if line.strip()]
    return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)


def transform_predict(matrix, model: TransformModel) -> list[str]:
    """``predict_fn``: one CSV line (score, decision, reasons) per row."""
    if matrix.shape[1] != len(model.manifest["features"]):
        raise PipelineError(f"rows have {matrix.shape[1]} features, the model takes {len(model.manifest['features'])}")
    columns = decided(model.booster, matrix, model.manifest, model.cutoff, model.explain_count)
    return [",".join(str(value) for value in row) for row in zip(*columns.values())]


def transform_output(lines: list[str], accept: str) -> tuple[str, str]:
    """``output_fn``: the lines as ``text/csv``, one per input record (Batch Transform joins them in order)."""
    if accept.split(";")[0].strip().lower() not in ("text/csv", "*/*"):
        raise PipelineError(f"the scoring model answers text/csv, not {accept}")
    return "".join(line + "\n" for line in lines), "text/csv"


def transform_data_processing(features_count: int) -> dict[str, str]:
    """Batch Transform's DataProcessing for ``<identifier>,<features>`` rows: the model sees the
    features; each answer is appended to its whole input row, and the identifier and the answer are
    kept (contract row SM-TRANSFORM-JOIN)."""
    return {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": f"$[0,{features_count + 1}:]"}


def transform_environment(source_dir_uri: Any, cutoff: Any, explain_count: Any, region: str) -> dict[str, Any]:
    """The scoring model's environment: the XGBoost container's script mode (contract row
    SM-SCRIPT-MODE) and the decision's settings, as strings (or the definition's execution-input
    placeholders for them)."""
    return {
        "SAGEMAKER_PROGRAM": TRANSFORM_PROGRAM,
        "SAGEMAKER_SUBMIT_DIRECTORY": source_dir_uri,
        "SAGEMAKER_REGION": region,
        CUTOFF_VARIABLE: cutoff,
        EXPLAIN_VARIABLE: explain_count,
    }


def batch_transform(
    params: dict[str, Any],
    reference: str,
    data_location: str,
    out_uri: str,
    explain_count: int = 0,
    cutoff: float | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``score`` as AWS runs it: a state machine (``statemachine.build_scoring_definition``) with the
    ETL job in its scoring mode and a Batch Transform; the scores land under ``out_uri`` as one
    ``<part>.csv.out`` per encoded part, in input order, with ``score``'s columns and no header."""
    import hashlib
    import json

    from . import bundles, serving, statemachine, workflow, workspace
    from .backends import open_backend

    backend = open_backend(params)
    stamp = workspace.new_run_id()
    run = workflow.Run(params, stamp, backend, workspace.artifacts_root() / "scoring" / stamp)
    out_uri = out_uri.rstrip("/") + "/"
    scores_root = f"{run.project_prefix}/{SCORES_FOLDER}/"
    if not out_uri.startswith(scores_root) or out_uri == scores_root:
        raise PipelineError(
            f"--out {out_uri}: scores go to a folder of their own under {scores_root} (the stack's "
            "SageMaker role writes under the project's prefix, where runs, models and code also "
            "live: --overwrite must never reach those)"
        )
    if backend.keys_under(out_uri) and not overwrite:
        raise PipelineError(
            f"--out {out_uri} holds earlier scores; they are not mixed with new ones (choose "
            "another --out, or pass --overwrite to replace them)"
        )
    model_uri, record = serving.model_in_store(reference, run.registry())
    manifest_uri = serving.manifest_uri_for(model_uri)
    manifest = json.loads(backend.local_copy(manifest_uri).read_text())
    check_explain_count(explain_count, manifest)
    cutoff, cutoff_origin = serving.decision_cutoff(record, cutoff)
    identifier = _identifier_of(data_location, backend)
    source_dir = bundles.scoring_source_dir(manifest)
    source_dir_uri = f"{run.code_prefix}/scoring-{hashlib.sha256(source_dir).hexdigest()[:16]}.tar.gz"
    if not backend.object_exists(source_dir_uri):
        backend.stage_bytes(source_dir, source_dir_uri)
    workflow.deploy_etl_job(run)  # this package's ETL job: it has the scoring mode
    spec = statemachine.ScoringSpec(
        run.glue_job_name,
        run.training_image,
        params["region"],
        params["sagemaker_execution_role"],
        params["endpoint_instance_type"],
        params["endpoint_instance_count"],
    )
    definition = statemachine.scoring_definition_for(spec, workspace.sdk_cache())
    workflow.deploy_state_machine(run, definition, name=workflow.resource_name(params, "scoring"))
    scratch = f"{run.project_prefix}/scoring/{stamp}"
    if not data_location.startswith(run.project_prefix + "/"):  # where the Glue role reads: copied there
        file_name = data_location.rstrip("/").rsplit("/", 1)[-1]
        backend.stage_file(data_location, f"{scratch}/{file_name}")  # an s3:// input is copied inside S3
        data_location = f"{scratch}/{file_name}"
    name = workflow.resource_name(params, f"score-{stamp}")
    execution_input = {
        "DataUri": data_location,
        "EncodedUri": f"{scratch}/customers/",
        "OutputUri": out_uri,
        "ManifestUri": manifest_uri,
        "ModelName": name,
        "ModelDataUrl": model_uri,
        "SourceDirUri": source_dir_uri,
        "Cutoff": repr(float(cutoff)),
        "Explain": str(explain_count),
        "TransformJobName": name,
        "OutputFilter": transform_data_processing(len(manifest["features"]))["OutputFilter"],
    }
    if overwrite:
        backend.remove_prefix(out_uri)
    sfn = backend.client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=run.state["state_machine"]["version_arn"], name=stamp, input=json.dumps(execution_input)
    )["executionArn"]
    run.state.update(execution_arn=arn, execution_input=execution_input)
    run.save()
    result = {
        "output_uri": out_uri,
        "columns": output_columns(identifier, explain_count),
        "cutoff": cutoff,
        "cutoff_origin": cutoff_origin,
        "execution_arn": arn,
        "transform_job": name,
        "status": "RUNNING",
    }
    if not params["wait_for_execution"]:
        return result
    result["status"] = workflow.wait_for_execution(run, arn, progress=progress)["status"]
    history = backend.execution_history(arn)
    run.write_artifact("execution-history.json", history)
    workflow.raise_if_failed(history)
    # only a complete set of scores gets its description; the encoded customers are not kept
    backend.stage_bytes(
        json.dumps(
            {k: result[k] for k in ("columns", "cutoff", "cutoff_origin", "execution_arn", "transform_job")}, indent=2
        ).encode(),
        f"{out_uri}{SCORES_DESCRIPTION}",
    )
    backend.remove_prefix(scratch + "/")
    return result


#: where batch scores go, one folder per scoring: under the project's prefix, apart from runs and code
SCORES_FOLDER = "scores"
#: written beside the ``.out`` parts once every part is scored
SCORES_DESCRIPTION = "_scores.json"


def _identifier_of(location: str, backend) -> str:
    """The identifier column of a file's scores, from its first line (the rest is read where it is)."""
    lines = backend.text_lines(location)
    first = next(lines, "")
    lines.close()
    raw = data.detect_format(first, location, labelled=False) == "raw"
    return data.IDENTIFIER[0] if raw else ROW_NUMBER
