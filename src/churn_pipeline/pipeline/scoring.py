"""``score`` as AWS runs it: the ETL job in its scoring mode and a Batch Transform, in a state machine.

The customers are kept under ``--out``'s ``input/``; the ETL job checks every row
by the run's rules and encodes them into ``<identifier>,<held>,<features>`` parts
in input order (``held``: the control group); the scoring model runs the
container's script-mode functions (``container``), and Batch Transform joins each
answer to its input row, keeping the identifier. The scores land under ``--out``
as one ``<part>.csv.out`` per encoded part, with ``score``'s columns, described by
``_scores.json`` once every part is scored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .. import archives, container, decisions, formats, names, scoring_statemachine, serving, workspace
from ..backends import open_backend
from ..errors import PipelineError
from .deploy import deploy_etl_job, deploy_state_machine
from .execution import raise_if_failed, wait_for_execution
from .run import Run
from .staging import stage_code

#: where batch scores go, one folder per scoring: under the environment's prefix, apart from runs and code
SCORES_FOLDER = "scores"
#: written beside the ``.out`` parts once every part is scored
SCORES_DESCRIPTION = "_scores.json"
#: under ``--out``: the scored customers, as they were given
INPUT_FOLDER = "input/"
#: in the scoring's artifacts folder: the definition and the execution's history
STATE_MACHINE, HISTORY = "statemachine.json", "execution-history.json"


def batch_transform(
    params: dict[str, Any],
    reference: str,
    data_location: str,
    out_uri: str,
    explain_count: int = 0,
    cutoff: float | None = None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
    holdout: decisions.Holdout | None = None,
) -> dict[str, Any]:
    """Score ``data_location`` with the model ``reference`` (run id or ``s3://`` URI) into ``out_uri``,
    ``holdout``'s control group kept out of the offers; what was written, and how it was decided."""
    holdout = holdout or decisions.Holdout(0.0, "")
    stamp = workspace.new_run_id()
    run = Run(params, stamp, open_backend(params), workspace.artifacts_root() / "scoring" / stamp)
    out_uri = _checked_out_uri(run, out_uri, overwrite)
    model_uri, record = serving.model_in_store(reference, run.registry())
    manifest_uri = serving.manifest_uri_for(model_uri)
    manifest = json.loads(run.backend.store.local_path(manifest_uri).read_text())
    decisions.check_explain_count(explain_count, manifest)
    cutoff, cutoff_origin = serving.decision_cutoff(record, cutoff)
    identifier = _identifier_of(data_location, run.backend)
    version_arn = _deploy_scoring(run)
    scratch = f"{run.environment_prefix}/scoring/{stamp}"
    data_location = _capture_input(run, data_location, out_uri, overwrite)
    name = names.resource_name(params, f"score-{stamp}")
    execution_input = {
        "DataUri": data_location,
        "EtlScript": run.state["glue_job"]["script"],
        "EtlPackage": run.state["glue_job"]["package"],
        "EncodedUri": f"{scratch}/customers/",
        "OutputUri": out_uri,
        "ManifestUri": manifest_uri,
        "ModelName": name,
        "ModelDataUrl": model_uri,
        "SourceDirUri": stage_code(run, "scoring.tar.gz", archives.source_dir(manifest)),
        "TransformJobName": name,
        **_decision_input(manifest, cutoff, explain_count, holdout),
    }
    start = run.backend.client("stepfunctions").start_execution
    arn = start(stateMachineArn=version_arn, name=stamp, input=json.dumps(execution_input))["executionArn"]
    run.state.update(execution_arn=arn, execution_input=execution_input)
    run.save()
    result = {
        "model": reference,
        "input": data_location[len(out_uri) :],
        "holdout": holdout.to_dict(),
        "output_uri": out_uri,
        "columns": decisions.output_columns(identifier, explain_count),
        "cutoff": cutoff,
        "cutoff_origin": cutoff_origin,
        "execution_arn": arn,
        "transform_job": name,
        "status": "RUNNING",
        "artifacts": str(run.artifacts_dir),
    }
    if params["wait_for_execution"]:
        result["status"] = _wait_and_describe(run, arn, result, scratch, progress)
    return result


def _decision_input(manifest: dict[str, Any], cutoff: float, explain_count: int, holdout) -> dict[str, str]:
    """The execution input's decision settings: the cutoff, the reasons, the control group, and the
    output filter that keeps the identifier and the answer."""
    return {
        "Cutoff": repr(float(cutoff)),
        "Explain": str(explain_count),
        "OutputFilter": container.transform_data_processing(len(manifest["features"]))["OutputFilter"],
        "HoldoutFraction": repr(float(holdout.fraction)),
        "ScoringDate": holdout.date,
    }


def _capture_input(run: Run, data_location: str, out_uri: str, overwrite: bool) -> str:
    """The customers kept beside their scores, under ``--out``'s ``input/`` (copied inside S3 when the
    input is in S3; earlier scores removed first with ``overwrite``): where the Glue role reads them,
    and what a monitor reads of the window later."""
    if overwrite:
        run.backend.store.remove_prefix(out_uri)
    file_name = data_location.rstrip("/").rsplit("/", 1)[-1]
    target = f"{out_uri}{INPUT_FOLDER}{file_name}"
    run.backend.store.stage(target, data_location, run.backend.inputs)
    return target


def _checked_out_uri(run: Run, out_uri: str, overwrite: bool) -> str:
    """``--out`` as a folder of its own under the project's scores, empty unless ``overwrite``."""
    out_uri = out_uri.rstrip("/") + "/"
    scores_root = f"{run.environment_prefix}/{SCORES_FOLDER}/"
    if not out_uri.startswith(scores_root) or out_uri == scores_root:
        raise PipelineError(
            f"--out {out_uri}: scores go to a folder of their own under {scores_root} (the stack's "
            "SageMaker role writes under the environment's prefix, where runs, models and code also "
            "live: --overwrite must never reach those)"
        )
    if run.backend.store.objects_under(out_uri) and not overwrite:
        raise PipelineError(
            f"--out {out_uri} holds earlier scores; they are not mixed with new ones (choose "
            "another --out, or pass --overwrite to replace them)"
        )
    return out_uri


def _deploy_scoring(run: Run) -> str:
    """This package's ETL job (it has the scoring mode) and the scoring state machine; the version to run."""
    params = run.params
    deploy_etl_job(run)
    environment = container.transform_environment(
        scoring_statemachine.input_path("SourceDirUri"),
        scoring_statemachine.input_path("Cutoff"),
        scoring_statemachine.input_path("Explain"),
        params["region"],
    )
    spec = scoring_statemachine.ScoringSpec(
        run.glue_job_name,
        run.training_image,
        params["region"],
        params["sagemaker_execution_role"],
        params["endpoint_instance_type"],
        params["endpoint_instance_count"],
        tuple(environment.items()),
    )
    definition = scoring_statemachine.scoring_definition_for(spec, workspace.sdk_cache())
    run.write_artifact(STATE_MACHINE, definition)  # drawn with the execution's history by `score`
    deploy_state_machine(run, definition, name=names.scoring_state_machine_name(params))
    return run.state["state_machine"]["version_arn"]


def _wait_and_describe(run: Run, arn: str, result: dict[str, Any], scratch: str, progress) -> str:
    """Wait for the scoring; once every part is scored, describe the scores beside them and remove the
    encoded customers. The execution's status."""
    status = wait_for_execution(run, arn, progress=progress)["status"]
    history = run.backend.execution_history(arn)
    run.write_artifact(HISTORY, history)
    raise_if_failed(history)
    kept = ("model", "input", "columns", "cutoff", "cutoff_origin", "holdout", "execution_arn", "transform_job")
    described = {k: result[k] for k in kept}
    run.backend.store.put(f"{result['output_uri']}{SCORES_DESCRIPTION}", json.dumps(described, indent=2).encode())
    run.backend.store.remove_prefix(scratch + "/")
    return status


def _identifier_of(location: str, backend) -> str:
    """The identifier column of a file's scores, from its first line (the rest is read where it is)."""
    lines = backend.inputs.lines(location)
    first = next(lines, "")
    lines.close()
    return formats.detect(first, location, labelled=False).identifier
