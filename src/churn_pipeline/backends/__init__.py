"""Backends: one interface, one implementation per backend, looked up by name.

A backend supplies clients (the boto3 subset the pipeline uses), storage and
task runners; it holds no pipeline logic. Cloud SDKs are imported only by the
``aws`` backend.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from .. import workspace
from ..errors import ConfigError

BACKENDS = {"local": "churn_pipeline.backends.local:LocalBackend", "aws": "churn_pipeline.backends.aws:AwsBackend"}


class Backend(Protocol):
    """What the pipeline asks of a backend; both are built as ``Backend(params, home)``."""

    name: str

    def __init__(self, params: Mapping[str, Any] | None, home: str | os.PathLike) -> None: ...

    def client(self, service: str) -> Any:
        """A client for ``glue``, ``lambda``, ``sagemaker``, ``stepfunctions`` with boto3's calls and errors."""

    def s3_client(self) -> Any:
        """The client that reads a user's ``s3://`` input."""

    def default_bucket(self) -> str: ...

    def stage_file(self, source: str, uri: str) -> str:
        """Copy a local file or S3 object to ``uri``; return its SHA-256."""

    def stage_bytes(self, content: bytes, uri: str) -> str:
        """Write ``content`` to ``uri``; return its SHA-256."""

    def object_exists(self, uri: str) -> bool: ...

    def local_copy(self, uri: str) -> Path:
        """A local path holding the object or every object under the prefix ``uri``."""

    def keys_under(self, uri: str) -> list[str]:
        """The keys of the objects under the prefix ``uri``."""

    def remove_prefix(self, uri: str) -> None:
        """Remove every object under the prefix ``uri/``."""

    def text_lines(self, location: str) -> Iterator[str]:
        """The lines of a local file or an ``s3://`` object, read as they are needed."""

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
