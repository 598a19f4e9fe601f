"""The embedded local backend: one module per emulated service, as moto has one package per service.

the object store: a folder mirroring buckets (``storage.MirroredS3``); ``glue``: jobs run by local Spark;
``awslambda``: handlers called in process; ``sagemaker``: XGBoost trained in
process; ``stepfunctions``: the local ASL executor and its task integrations;
the registry is SQLite. Each client implements the subset of the boto3 client
the pipeline calls, with the same parameter names, response shapes and error
codes (``aws_errors``), so the code that drives a backend is the same for both.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import PipelineError
from ...registry import migrate_registry, open_registry
from ...s3 import s3_storage
from ...storage import MirroredS3, Storage
from . import asl
from .awslambda import LocalLambda
from .common import arn
from .glue import LocalGlue
from .sagemaker import LocalSageMaker
from .stepfunctions import LocalStepFunctions
from .tasks import task_runners

#: the one registry file every environment shared before each had its own
LEGACY_REGISTRY = "registry.db"

SERVICES = {"glue": LocalGlue, "lambda": LocalLambda, "sagemaker": LocalSageMaker, "stepfunctions": LocalStepFunctions}


class LocalBackend:
    """Everything the local backend keeps lives under one folder, ``home``: its S3 is a mirror there
    (``store``); a user's ``s3://`` data is read from S3 itself (``inputs``)."""

    name = "local"

    def __init__(self, params: Mapping[str, Any] | None, home: str | os.PathLike):
        self.home = Path(home)
        self.mirror = MirroredS3(self.home / "s3")
        self.store, self.inputs = Storage(self.mirror), s3_storage()
        self.params = dict(params or {})
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in SERVICES:
            raise PipelineError(f"the local backend has no {service!r} service")
        if service not in self._clients:
            self._clients[service] = SERVICES[service](self)
        return self._clients[service]

    def default_bucket(self) -> str:
        return "churn-pipeline-local"

    def registry_url(self, table: str) -> str:
        """One SQLite file per registry table, as each environment has a DynamoDB table of its own; before
        its first use, this environment's records of the single file of earlier versions are copied in."""
        path = self.home / "registries" / f"{table}.db"
        legacy = self.home / LEGACY_REGISTRY
        if not path.exists() and legacy.exists() and self.params.get("environment"):
            migrate_registry(legacy, path, self.params["environment"])
        return f"sqlite:///{path.resolve()}"

    def registry(self, table: str):
        """The SQLite registry of ``table``."""
        return open_registry(self.registry_url(table))

    def glue_default_arguments(self) -> dict[str, str]:
        return {"--SPARK_MASTER": self.params.get("spark_master", "local[*]")}

    def function_environment(self, registry_table: str) -> dict[str, str]:
        return {"MODEL_REGISTRY_TABLE": registry_table, "MODEL_REGISTRY_URL": self.registry_url(registry_table)}

    def function_poll_seconds(self) -> float:
        return 0.0

    def state_machine_arn(self, name: str) -> str:
        return arn("states", "stateMachine:", name)

    def execution_history(self, execution_arn: str) -> dict[str, Any]:
        return self.client("stepfunctions").local_execution(execution_arn)

    def runners(self) -> dict[str, asl.Runner]:
        """What each Task ``Resource`` of the definition does locally."""
        return task_runners(self)
