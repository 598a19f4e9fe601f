"""Backends: one interface, one implementation per backend, looked up by name.

A backend supplies clients (the boto3 subset the pipeline uses), storage and
task runners; it holds no pipeline logic. Cloud SDKs are imported only by the
``aws`` backend.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ..errors import ConfigError

BACKEND_ENV = "CHURN_PIPELINE_BACKEND"
HOME_ENV = "CHURN_PIPELINE_HOME"

BACKENDS = {"local": "churn_pipeline.backends.local:LocalBackend",
            "aws": "churn_pipeline.backends.aws:AwsBackend"}


def backend_class(name: str):
    try:
        module_name, _, attribute = BACKENDS[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module_name), attribute)


def client(service: str, region: str | None = None) -> Any:
    """The client a Lambda handler uses: boto3 on AWS, the local backend's when it runs locally."""
    if os.environ.get(BACKEND_ENV) == "local":
        from .local import LocalBackend

        return LocalBackend(os.environ[HOME_ENV]).client(service)
    import boto3

    return boto3.client(service, region_name=region)
