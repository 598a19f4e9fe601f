"""Versioned local deploys with blue/green switching and rollback.

Each environment (staging, prod, ...) has a stable address: a small router
process on the environment's port that forwards every request to the active
model server. A deploy starts the new model's server on a free port, waits for
its ``/ping``, then switches the router to it and stops the old server; a new
version that never answers ``/ping`` never takes traffic. The history of each
environment (version, model, run id, time, status) is kept in the registry
database.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import workspace
from .errors import PipelineError, RecordNotFound
from .storage import write_atomic

DEFAULT_PORTS = {"staging": 8080, "prod": 8081}
PING_TIMEOUT_SECONDS = 60.0


@dataclass
class Deployment:
    environment: str
    version: int
    run_id: str
    model_name: str
    model_data_url: str
    port: int
    pid: int
    status: str
    created_at: str


class DeploymentStore:
    """The ``deployments`` table in the registry database."""

    def __init__(self, path: Path):
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS deployments (environment TEXT, version INTEGER, run_id TEXT, "
                "model_name TEXT, model_data_url TEXT, port INTEGER, pid INTEGER, status TEXT, "
                "created_at TEXT, PRIMARY KEY (environment, version))"
            )

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(self.path, timeout=30)

    def add(self, deployment: Deployment) -> Deployment:
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM deployments WHERE environment = ?", (deployment.environment,)
            ).fetchone()
            deployment.version = row[0]
            db.execute("INSERT INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuple(vars(deployment).values()))
        return deployment

    def set_status(self, environment: str, version: int, status: str) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE deployments SET status = ? WHERE environment = ? AND version = ?",
                (status, environment, version),
            )

    def history(self, environment: str) -> list[Deployment]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM deployments WHERE environment = ? ORDER BY version DESC", (environment,)
            ).fetchall()
        return [Deployment(*row) for row in rows]

    def active(self, environment: str) -> Deployment | None:
        return next((d for d in self.history(environment) if d.status == "active"), None)


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    """A port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _stop(pid: int, wait: float = 15.0) -> None:
    if not pid or not workspace.process_alive(pid):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + wait
    while workspace.process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if workspace.process_alive(pid):
        os.killpg(pid, signal.SIGKILL)


def wait_for_ping(port: int, timeout: float = PING_TIMEOUT_SECONDS, pid: int | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None and not workspace.process_alive(pid):
            return False
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def _launch(arguments: list[str], log: Path) -> int:
    """Start a detached ``churn-pipeline`` process (its own session, so it outlives this command)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "churn_pipeline.cli", *arguments],
            stdout=output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=workspace.project_root(),
        )
    return process.pid


class LocalEndpoints:
    """Deploy, roll back and list model versions per environment on this machine."""

    def __init__(self, home: Path | None = None):
        self.home = Path(home or workspace.home())
        self.store = DeploymentStore(self.home / "registry.db")

    def _folder(self, environment: str) -> Path:
        return self.home / "endpoints" / environment

    def router_port(self, environment: str, port: int | None = None) -> int:
        settings = self._folder(environment) / "router.json"
        if settings.exists():
            return json.loads(settings.read_text())["port"]
        return port or DEFAULT_PORTS.get(environment) or free_port()

    def _ensure_router(self, environment: str, port: int | None) -> int:
        settings = self._folder(environment) / "router.json"
        if settings.exists():
            known = json.loads(settings.read_text())
            if workspace.process_alive(known["pid"]):
                return known["port"]
        port = port or self.router_port(environment)
        pid = _launch(
            ["route", "--environment", environment, "--port", str(port)], self._folder(environment) / "router.log"
        )
        if not wait_for_ping(port, pid=pid):
            _stop(pid)
            raise PipelineError(
                f"the {environment} router did not start on port {port}; see {self._folder(environment) / 'router.log'}"
            )
        settings.write_text(json.dumps({"port": port, "pid": pid}))
        return port

    def _start_version(self, environment: str, record, capture_percent: float = 0.0) -> tuple[int, int]:
        port = free_port()
        capture = (
            ["--capture-percent", repr(capture_percent), "--endpoint-name", environment] if capture_percent else []
        )
        pid = _launch(
            ["serve", "--model", record.run_id, "--port", str(port), "--workers", "2", *capture],
            self._folder(environment) / f"{record.run_id}.log",
        )
        return port, pid

    def _switch(self, environment: str, port: int) -> None:
        write_atomic(self._folder(environment) / "active.json", json.dumps({"port": port}))

    def deploy(self, record, environment: str, port: int | None = None, capture_percent: float = 0.0) -> Deployment:
        """Blue/green: the new version takes traffic only after it answers /ping; with ``capture_percent``
        it captures that share of its answered requests (``capture``) under ``<home>/capture/<environment>/``."""
        if record.status != "approved":
            raise PipelineError(
                f"run {record.run_id!r} is {record.status!r}: only a model that passed the gate is deployed"
            )
        self._ensure_router(environment, port)
        new_port, pid = self._start_version(environment, record, capture_percent)
        deployment = Deployment(
            environment,
            0,
            record.run_id,
            record.model_name,
            record.model_data_url,
            new_port,
            pid,
            "starting",
            datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        self.store.add(deployment)
        if not wait_for_ping(new_port, pid=pid):
            _stop(pid)
            self.store.set_status(environment, deployment.version, "failed")
            log = self._folder(environment) / f"{record.run_id}.log"
            raise PipelineError(
                f"version {deployment.version} ({record.run_id}) never answered /ping; traffic stays "
                f"where it was. Its log: {log}"
            )
        previous = self.store.active(environment)
        self._switch(environment, new_port)
        self.store.set_status(environment, deployment.version, "active")
        deployment.status = "active"
        if previous is not None:
            self.store.set_status(environment, previous.version, "retired")
            _stop(previous.pid)
        return deployment

    def rollback(self, environment: str, registry) -> Deployment:
        """Return to the newest healthy version before the active one."""
        history = self.store.history(environment)
        active = next((d for d in history if d.status == "active"), None)
        if active is None:
            raise PipelineError(f"nothing is deployed to {environment}")
        earlier = [
            d
            for d in history
            if d.version < active.version and d.status in ("retired", "rolled-back") and d.run_id != active.run_id
        ]
        if not earlier:
            raise PipelineError(f"{environment} has no earlier healthy version to roll back to")
        try:
            record = registry.get(earlier[0].run_id)
        except RecordNotFound as exc:
            raise PipelineError(
                f"version {earlier[0].version} ({earlier[0].run_id}) is no longer in the registry"
            ) from exc
        deployment = self.deploy(record, environment)
        self.store.set_status(environment, active.version, "rolled-back")
        return deployment

    def stop(self, environment: str) -> None:
        """Stop the router and every model server of an environment (the history stays)."""
        for deployment in self.store.history(environment):
            _stop(deployment.pid)
            if deployment.status in ("active", "starting"):
                self.store.set_status(environment, deployment.version, "stopped")
        settings = self._folder(environment) / "router.json"
        if settings.exists():
            _stop(json.loads(settings.read_text())["pid"])
            settings.unlink()
