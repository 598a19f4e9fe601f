"""A run: its parameters, its names and places, and what one notebook hands to the next.

A ``Run`` carries the parameters, the resource names and the URIs; what one
notebook learns that the next needs (data hash, execution ARN) is kept in the
run's ``run.json`` beside its other artifacts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import backends, names, sdk, workspace
from ..errors import PipelineError
from ..storage import write_atomic


@dataclass
class Run:
    params: dict[str, Any]
    run_id: str
    backend: Any
    artifacts_dir: Path
    state: dict[str, Any] = field(default_factory=dict)

    # names and places, all derived from project, environment and run id
    @property
    def bucket(self) -> str:
        """The parameters' bucket, else the backend's default (kept so every notebook uses the same)."""
        if "bucket" not in self.state:
            self.state["bucket"] = self.params["bucket"] or self.backend.default_bucket()
        return self.state["bucket"]

    @property
    def environment_prefix(self) -> str:
        """``s3://<bucket>/<project>/<environment>``: the environment's runs, staged code, ETL records and
        scores. Nothing of another environment lies under it, even with the same run id in one bucket."""
        return f"s3://{self.bucket}/{self.params['project']}/{self.params['environment']}"

    @property
    def prefix(self) -> str:
        """The run's folder, kept in its state from its start; a run begun before environments had folders
        of their own goes on in the one it began in (``s3://<bucket>/<project>/<run-id>``)."""
        return self.state.get("prefix") or f"s3://{self.bucket}/{self.params['project']}/{self.run_id}"

    @property
    def model_name(self) -> str:
        return names.resource_name(self.params, self.run_id)

    @property
    def training_job_name(self) -> str:
        """The base of the training job names: the state machine appends ``-<redrive count>``."""
        return names.training_job_name(self.params, self.run_id)

    @property
    def glue_job_name(self) -> str:
        return names.resource_name(self.params, "etl")

    @property
    def state_machine_name(self) -> str:
        return names.state_machine_name(self.params)

    @property
    def registry_table(self) -> str:
        return names.registry_table(self.params)

    def function_name(self, role: str) -> str:
        return names.function_name(self.params, role)

    @property
    def code_prefix(self) -> str:
        """Where code is staged, under its content hash: shared by runs, never rewritten."""
        return f"{self.environment_prefix}/code"

    @property
    def own_etl_output_uri(self) -> str:
        """Where this run's ETL writes (and where its manifest is, even when the ETL is reused)."""
        return f"{self.prefix}/etl"

    @property
    def etl_output_uri(self) -> str:
        """The ETL output this run trains on: its own, or the one ``plan_etl`` chose to reuse."""
        return self.state.get("etl", {}).get("output_uri") or self.own_etl_output_uri

    def etl_record_uri(self, key: str) -> str:
        """Where a finished ETL with inputs ``key`` records which run's output it is."""
        return f"{self.environment_prefix}/etl-records/{key}.json"

    def run_prefix(self, run_id: str) -> str:
        """The folder of a run of this environment."""
        return f"{self.environment_prefix}/{run_id}"

    def channel_uri(self, split: str) -> str:
        """A split's folder as a training channel: the trailing slash keeps ``<split>_$folder$`` out."""
        return f"{self.etl_output_uri}/{split}/"

    @property
    def model_output_uri(self) -> str:
        return f"{self.prefix}/models"

    @property
    def decision_uri(self) -> str:
        """The run's decision (cutoff and costs), written once by notebook 03; the saved model reads it."""
        return f"{self.prefix}/{names.DECISION}"

    @property
    def training_image(self) -> str:
        return sdk.training_image_uri(self.params["region"], self.params["xgboost_version"], workspace.sdk_cache())

    def registry(self):
        return self.backend.registry(self.registry_table)

    def save(self) -> None:
        document = {"run_id": self.run_id, "backend": self.params["backend"], **self.state}
        write_atomic(self.artifacts_dir / names.RUN_STATE, json.dumps(document, indent=2, sort_keys=True))

    def write_artifact(self, name: str, content: Any) -> Path:
        """Write a JSON (or text) artifact of this run atomically."""
        text = content if isinstance(content, str) else json.dumps(content, indent=2, sort_keys=True, default=str)
        return write_atomic(self.artifacts_dir / name, text)


def start_run(params: dict[str, Any]) -> Run:
    """Begin a run (notebook 01): a new run id unless one is given; it becomes the current run."""
    run_id = workspace.check_run_id(params["run_id"] or workspace.new_run_id())
    run = Run(params, run_id, backends.open_backend(params), workspace.artifacts_root() / run_id)
    run.state = {"git_commit": workspace.git_commit()}
    run.state["prefix"] = run.run_prefix(run_id)
    run.save()
    marker = workspace.home() / names.CURRENT_RUN
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(run_id)
    return run


def resume_run(params: dict[str, Any]) -> Run:
    """Continue a run (notebooks 02, 03): the given run id, or the one notebook 01 started last."""
    run_id = params["run_id"]
    if not run_id:
        marker = workspace.home() / names.CURRENT_RUN
        if not marker.exists():
            raise PipelineError("no run id given and no current run: run notebook 01 first")
        run_id = marker.read_text().strip()
    workspace.check_run_id(run_id)
    artifacts = workspace.artifacts_root() / run_id
    if not (artifacts / names.RUN_STATE).exists():
        raise PipelineError(
            f"run {run_id!r} has not been started (no {names.RUN_STATE} in its artifacts); run notebook 01 first"
        )
    state = json.loads((artifacts / names.RUN_STATE).read_text())
    state.pop("run_id", None)
    state.pop("backend", None)
    return Run(params, run_id, backends.open_backend(params), artifacts, state)
