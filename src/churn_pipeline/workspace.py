"""Where things live: the project checkout, the local backend's home, run artifacts.

``CHURN_PIPELINE_PROJECT`` names the checkout (default: found by walking up from
the working directory); ``CHURN_PIPELINE_HOME`` the local backend's folder
(default ``<project>/.churn-pipeline``); ``CHURN_PIPELINE_ARTIFACTS`` the
artifacts root (default ``<project>/artifacts``).
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from .errors import ConfigError, EnvironmentProblem

PROJECT_ENV = "CHURN_PIPELINE_PROJECT"
HOME_ENV = "CHURN_PIPELINE_HOME"
#: set to ``local`` in a function the local backend runs: its clients are the local services
BACKEND_ENV = "CHURN_PIPELINE_BACKEND"
ARTIFACTS_ENV = "CHURN_PIPELINE_ARTIFACTS"
CACHE_ENV = "CHURN_PIPELINE_CACHE"
#: the cores a local training job's process may use (set when several run at once: a tuning job's)
TRAINING_THREADS_ENV = "CHURN_PIPELINE_TRAINING_THREADS"
#: where the warm local Spark worker lives (default ``<home>/spark-worker``): one folder, one worker, so
#: several homes share one only when this names the same folder for them
SPARK_WORKER_DIR_ENV = "CHURN_PIPELINE_SPARK_WORKER_DIR"
#: seconds the worker waits unused before it exits (default 600); 0: no worker, a job run starts its own Spark
SPARK_WORKER_IDLE_ENV = "CHURN_PIPELINE_SPARK_WORKER_IDLE"
#: a process id: the worker exits with that process (the test suite names itself)
SPARK_WORKER_OWNER_ENV = "CHURN_PIPELINE_SPARK_WORKER_OWNER"
#: set in a local job run's environment to the worker's folder: the run's Spark is the worker's
SPARK_ATTACH_ENV = "CHURN_PIPELINE_SPARK_ATTACH"
DEFAULT_SPARK_WORKER_IDLE = 600.0
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}[A-Za-z0-9])?$")


def project_root() -> Path:
    """The checkout holding ``code/`` and ``notebooks/``."""
    named = os.environ.get(PROJECT_ENV)
    if named:
        root = Path(named)
        if not (root / "code" / "glue_etl.py").exists():
            raise EnvironmentProblem(f"{PROJECT_ENV}={named} does not hold code/glue_etl.py")
        return root.resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "code" / "glue_etl.py").exists() and (folder / "notebooks").is_dir():
            return folder
    raise EnvironmentProblem(
        f"run from inside the project checkout (no code/glue_etl.py above {here}), or set {PROJECT_ENV}"
    )


def home() -> Path:
    return Path(os.environ.get(HOME_ENV) or project_root() / ".churn-pipeline").resolve()


def artifacts_root() -> Path:
    return Path(os.environ.get(ARTIFACTS_ENV) or project_root() / "artifacts").resolve()


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    if not RUN_ID_PATTERN.match(run_id):
        raise ConfigError(
            f"run id {run_id!r} must be 1-40 letters, digits or inner hyphens "
            "(it becomes part of training-job, model and execution names)"
        )
    return run_id


CODEBUILD_SOURCE_ENV = "CODEBUILD_RESOLVED_SOURCE_VERSION"


def git_commit(root: Path | None = None) -> str | None:
    """The checkout's commit (with ``-dirty`` when it has uncommitted changes), when known.

    CodePipeline hands CodeBuild a zip of the commit with no ``.git``; CodeBuild
    names the commit in ``CODEBUILD_RESOLVED_SOURCE_VERSION`` instead.
    """
    resolved = os.environ.get(CODEBUILD_SOURCE_ENV, "").strip()
    if resolved:
        return resolved
    try:
        root = root or project_root()
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError, EnvironmentProblem):
        return None
    return f"{commit}-dirty" if dirty else commit or None


def sdk_cache() -> Path:
    """Where values built with the SageMaker SDK are kept between runs (see ``statemachine``); keyed by
    content, so ``CHURN_PIPELINE_CACHE`` may point several homes at one folder."""
    return Path(os.environ.get(CACHE_ENV) or home() / "cache") / "sdk"


def process_alive(pid: int | None) -> bool:
    """Whether process ``pid`` still runs (a child of ours that has exited is reaped first)."""
    if not pid:
        return False
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def spark_worker_idle() -> float:
    """``CHURN_PIPELINE_SPARK_WORKER_IDLE`` in seconds (0 turns the worker off)."""
    text = os.environ.get(SPARK_WORKER_IDLE_ENV, "").strip()
    if not text:
        return DEFAULT_SPARK_WORKER_IDLE
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:
        raise ConfigError(f"{SPARK_WORKER_IDLE_ENV}={text!r} must be a number of seconds, 0 or more")
    return seconds


def spark_worker_dir(local_home: Path) -> Path | None:
    """The warm Spark worker's folder for a local home, or None when the worker is turned off."""
    if spark_worker_idle() == 0:
        return None
    named = os.environ.get(SPARK_WORKER_DIR_ENV, "").strip()
    return Path(named).resolve() if named else local_home / "spark-worker"
