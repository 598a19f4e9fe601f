"""Run the three notebooks in order with papermill and keep every artifact of the run.

``artifacts/<run-id>/`` receives the executed notebooks and their HTML, the
state machine and its execution history, the metrics, the CloudFormation
parameters (only when the model passed the gate) and ``manifest.json``
(parameters, package versions, data hash, timings, status). A failed run keeps
its executed notebooks, with the failure visible in them.

``resume_notebooks`` continues a failed or interrupted run with its own
parameters: notebook 02 redrives the execution (the states that succeeded are
not run again), and the failed attempt's files move to ``attempt-<n>/`` beside
the new ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import backends, names, workspace
from .aws_errors import ExecutionDoesNotExist
from .errors import NotebookFailed, PipelineError
from .pipeline.execution import current_state, elapsed, execution_arn
from .pipeline.run import RUN_FILE

NOTEBOOKS = ("01-etl-setup.ipynb", "02-train-workflow.ipynb", "03-register-and-export.ipynb")
WORKFLOW_NOTEBOOK = NOTEBOOKS[1]
PARAMETERS_FILE = "parameters.json"
#: what a new attempt replaces; the earlier attempt's copies move to attempt-<n>/
ATTEMPT_FILES = ("manifest.json", "execution-history.json", "metrics.json", "cloudformation_parameters.json")
PACKAGES = (
    "churn-pipeline",
    "xgboost",
    "pyspark",
    "sagemaker",
    "stepfunctions",
    "boto3",
    "papermill",
    "nbconvert",
    "pandas",
    "numpy",
)


@dataclass
class RunResult:
    run_id: str
    artifacts_dir: Path
    status: str
    notebooks: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def scrub(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def path_replacements(root: Path) -> list[tuple[str, str]]:
    """Absolute paths that must not appear in a kept notebook, longest first, with what replaces them."""
    pairs = {str(root): ".", str(Path.home()): "~"}
    for name in (workspace.HOME_ENV, workspace.ARTIFACTS_ENV):
        value = os.environ.get(name)
        if value:
            pairs[str(Path(value).resolve())] = f"${name}"
    return sorted(((k, v) for k, v in pairs.items() if k not in ("", "/")), key=lambda kv: -len(kv[0]))


def sanitise_notebook(path: Path, replacements: list[tuple[str, str]]) -> None:
    """Replace absolute paths in an executed notebook (outputs and metadata), in place."""
    text = path.read_text()
    escaped = [(json.dumps(old)[1:-1], json.dumps(new)[1:-1]) for old, new in replacements]
    path.write_text(scrub(text, escaped))


def render_html(notebook: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    body, _ = HTMLExporter().from_notebook_node(nbformat.read(notebook, as_version=4))
    target = notebook.with_suffix(".html")
    target.write_text(body)
    return target


def describe_failure(executed: Path, error: Exception) -> str:
    """Name the failing cell (1-based, as a person counts in the executed notebook) and its error."""
    if executed.exists():
        import nbformat

        notebook = nbformat.read(executed, as_version=4)
        for number, cell in enumerate(notebook.cells, start=1):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    first_line = next((line for line in cell.source.splitlines() if line.strip()), "")
                    return f"cell {number} (`{first_line.strip()[:60]}`): {output.get('ename')}: {output.get('evalue')}"
    return f"{type(error).__name__}: {error}"


class ExecutionProgress:
    """Follow the run's execution from this process while notebook 02 waits for it, and report each
    state it enters with the time since the notebook started."""

    def __init__(self, params: dict[str, Any], log: Callable[[str], None], poll_seconds: float = 1.0):
        self.params, self.log, self.poll_seconds = params, log, poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="execution-progress", daemon=True)

    def __enter__(self) -> ExecutionProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _follow(self) -> None:
        run_id, started, shown = self.params["run_id"], time.monotonic(), None
        try:
            backend = backends.open_backend(self.params)
            sfn = backend.client("stepfunctions")
            machine = backend.state_machine_arn(names.state_machine_name(self.params))
            arn = execution_arn(machine, run_id)
        except Exception as exc:  # progress is a courtesy: the notebook reports failures itself
            self.log(f"[{run_id}] execution progress unavailable: {exc}")
            return
        stopping = False
        while not stopping:  # one last look after the notebook ends: the state it ended in
            stopping = self._stop.wait(self.poll_seconds)
            try:
                status = sfn.describe_execution(executionArn=arn)["status"]
                state = current_state(sfn, arn) if status == "RUNNING" else status.lower()
            except Exception as exc:
                if not ExecutionDoesNotExist.matches(exc) and str(exc) != shown:  # not started yet: quiet
                    self.log(f"[{run_id}] execution progress: {exc}")
                    shown = str(exc)
                continue
            if state != shown:
                self.log(f"[{run_id}]   {elapsed(started)} state machine: {state}")
                shown = state


def run_notebooks(
    params: dict[str, Any],
    progress: bool = True,
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr),
    notebooks: tuple[str, ...] = NOTEBOOKS,
    earlier: dict[str, Any] | None = None,
) -> RunResult:
    """Execute 01, 02, 03 with ``params`` (already validated); stop at the first failure.

    ``notebooks`` and ``earlier`` (the previous attempt's manifest) are for
    ``resume_notebooks``: the notebooks not run again keep their earlier entries.
    """
    import papermill

    root = workspace.project_root()
    params = dict(params, run_id=workspace.check_run_id(params["run_id"] or workspace.new_run_id()))
    run_id = params["run_id"]
    out = workspace.artifacts_root() / run_id
    if (out / "manifest.json").exists():
        raise PipelineError(f"artifacts for run {run_id!r} exist already ({out}); choose another run id")
    out.mkdir(parents=True, exist_ok=True)
    (out / PARAMETERS_FILE).write_text(json.dumps(params, indent=2, sort_keys=True))
    # Kernels are started by name: make sure "python3" is this interpreter and finds this checkout.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ[workspace.PROJECT_ENV] = str(root)
    replacements = path_replacements(root)
    result = RunResult(run_id, out, "running")
    kept = {e["notebook"]: e for e in (earlier or {}).get("notebooks", []) if e["notebook"] not in notebooks}
    result.notebooks.extend(kept.values())
    started = time.time()
    for name in notebooks:
        log(f"[{run_id}] {name} ...")
        t0 = time.perf_counter()
        entry: dict[str, Any] = {"notebook": name, "status": "succeeded"}
        following = ExecutionProgress(params, log) if name == WORKFLOW_NOTEBOOK else contextlib.nullcontext()
        try:
            with following:
                papermill.execute_notebook(
                    str(root / "notebooks" / name),
                    str(out / name),
                    parameters=params,
                    cwd=str(root / "notebooks"),
                    kernel_name="python3",
                    progress_bar=progress,
                    log_output=False,
                    # the kernel's start-up warnings are noise on the run's console
                    extra_arguments=["--IPKernelApp.log_level=ERROR"],
                )
        except Exception as exc:  # papermill raises its own errors and kernel failures alike
            entry.update(status="failed", error=describe_failure(out / name, exc))
            result.error = f"notebook {name} failed in {entry['error']}"
        finally:
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            if (out / name).exists():
                sanitise_notebook(out / name, replacements)
                render_html(out / name)
            result.notebooks.append(entry)
        log(f"[{run_id}] {name} {entry['status']} in {entry['seconds']:.1f} s")
        if result.error:
            break
    result.status = "failed" if result.error else "succeeded"
    run_state = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    manifest = {
        "run_id": run_id,
        "status": result.status,
        "error": result.error,
        "parameters": params,
        "packages": package_versions(),
        "data": {
            k: run_state.get(k)
            for k in (
                "data_source",
                "data_uri",
                "data_sha256",
                "data_format",
                "data_rows",
                "data_rows_counted",
                "churn_rate",
            )
        },
        "git_commit": run_state.get("git_commit"),
        "etl": run_state.get("etl"),
        "decision": run_state.get("decision"),
        "execution_status": run_state.get("execution_status"),
        "redriven": run_state.get("redriven", 0),
        "attempt": (earlier or {}).get("attempt", 0) + 1 if earlier is not None else 1,
        "notebooks": result.notebooks,
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 2),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True, default=str))
    return result


def resume_notebooks(
    run_id: str, progress: bool = True, log: Callable[[str], None] = lambda message: print(message, file=sys.stderr)
) -> RunResult:
    """Continue a failed or interrupted run with the parameters it started with.

    Notebook 01 runs again only if it did not finish; 02 and 03 always do (02
    redrives the execution). The earlier attempt's copies of what is run again
    move to ``attempt-<n>/``.
    """
    workspace.check_run_id(run_id)
    out = workspace.artifacts_root() / run_id
    if not (out / PARAMETERS_FILE).exists():
        raise PipelineError(
            f"run {run_id!r} has no {PARAMETERS_FILE} in {out}: it was not started by "
            "`churn-pipeline run`, so there is nothing to resume"
        )
    earlier = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else {}
    if earlier.get("status") == "succeeded":
        raise PipelineError(f"run {run_id!r} succeeded: there is nothing to resume (start a new run to train again)")
    state = json.loads((out / RUN_FILE).read_text()) if (out / RUN_FILE).exists() else {}
    notebooks = NOTEBOOKS[1:] if "functions" in state else NOTEBOOKS
    number = _next_attempt(out)
    attempt = out / f"attempt-{number}"
    attempt.mkdir()
    for name in notebooks:
        for path in (out / name, (out / name).with_suffix(".html")):
            if path.exists():
                shutil.move(str(path), attempt / path.name)
    for name in ATTEMPT_FILES:
        if (out / name).exists():
            shutil.move(str(out / name), attempt / name)
    for name in (RUN_FILE, PARAMETERS_FILE):
        if (out / name).exists():
            shutil.copy2(out / name, attempt / name)
    params = dict(json.loads((out / PARAMETERS_FILE).read_text()), resume=True)
    log(f"[{run_id}] resuming: the earlier attempt is kept in {attempt.name}/; running {', '.join(notebooks)}")
    return run_notebooks(
        params, progress=progress, log=log, notebooks=notebooks, earlier={**earlier, "attempt": number}
    )


def _next_attempt(out: Path) -> int:
    numbers = [int(p.name.split("-")[1]) for p in out.glob("attempt-*") if p.name.split("-")[1].isdigit()]
    return max(numbers, default=0) + 1


def raise_for_result(result: RunResult) -> RunResult:
    if not result.succeeded:
        raise NotebookFailed(result.error or "the run failed")
    return result


def refresh_committed_notebooks(names: tuple[str, ...] = NOTEBOOKS) -> None:
    """Re-execute the committed notebooks in place with their default parameters, in a fresh home.

    These outputs are what nbval compares every later run against.
    """
    import tempfile

    import nbformat
    from nbclient import NotebookClient

    root = workspace.project_root()
    with tempfile.TemporaryDirectory(prefix="churn-notebooks-") as scratch:
        os.environ[workspace.HOME_ENV] = os.path.join(scratch, "home")
        os.environ[workspace.ARTIFACTS_ENV] = os.path.join(scratch, "artifacts")
        os.environ[workspace.PROJECT_ENV] = str(root)
        os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
        replacements = path_replacements(root)
        for name in names:
            path = root / "notebooks" / name
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(
                notebook,
                timeout=900,
                kernel_name="python3",
                record_timing=False,
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
            nbformat.write(notebook, path)
            sanitise_notebook(path, replacements)
