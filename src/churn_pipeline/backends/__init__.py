"""Backends: one interface, one implementation per backend, looked up by name.

A backend supplies clients (the boto3 subset the pipeline uses), an object store
composed for its URIs (``storage``) and task runners; it holds no pipeline logic. Cloud SDKs are imported only by the
``aws`` backend.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any, Protocol

from .. import workspace
from ..errors import ConfigError
from ..storage import Storage

BACKENDS = {"local": "churn_pipeline.backends.local:LocalBackend", "aws": "churn_pipeline.backends.aws:AwsBackend"}


class Backend(Protocol):
    """What the pipeline asks of a backend; both are built as ``Backend(params, home)``."""

    name: str
    #: where the pipeline's objects live (``s3://`` URIs and local paths)
    store: Storage
    #: where a user's data is read from (a path, or an ``s3://`` URI on S3)
    inputs: Storage

    def __init__(self, params: Mapping[str, Any] | None, home: str | os.PathLike) -> None: ...

    def client(self, service: str) -> Any:
        """A client for ``glue``, ``lambda``, ``sagemaker``, ``stepfunctions`` with boto3's calls and errors."""

    def default_bucket(self) -> str: ...

    def registry(self, table: str) -> Any: ...

    def glue_default_arguments(self) -> dict[str, str]:
        """Job arguments only this backend needs (the Spark master locally)."""

    def function_environment(self, registry_table: str) -> dict[str, str]: ...

    def function_poll_seconds(self) -> float: ...

    def state_machine_arn(self, name: str) -> str: ...

    def execution_history(self, execution_arn: str) -> dict[str, Any]:
        """One row per state (input, output, start, end), the same shape on both backends."""


def backend_class(name: str) -> type[Backend]:
    try:
        module_name, _, attribute = BACKENDS[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module_name), attribute)


def open_backend(params: Mapping[str, Any]) -> Backend:
    """The backend ``params['backend']`` names, keeping its state under the workspace home."""
    return backend_class(params["backend"])(params, workspace.home())


def client(service: str, region: str | None = None) -> Any:
    """The client a Lambda handler uses: boto3 on AWS, the local backend's when it runs locally."""
    if os.environ.get(workspace.BACKEND_ENV) == "local":
        return backend_class("local")(None, os.environ[workspace.HOME_ENV]).client(service)
    import boto3

    return boto3.client(service, region_name=region)
