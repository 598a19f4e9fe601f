"""The aws backend: S3, Glue, SageMaker, Lambda, Step Functions and DynamoDB through boto3.

It supplies clients and staging; the pipeline logic (what to create, in which
order, with which definition) is the same code that drives the local backend.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..aws_errors import s3_not_found
from ..registry import DynamoDbRegistry
from ..s3 import S3Objects
from ..storage import Storage


def _json_safe(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def _maybe_json(text: str | None) -> Any:
    try:
        return json.loads(text) if text is not None else None
    except ValueError:
        return text


def _state_rows(events: list[dict[str, Any]], error: str | None, cause: str | None):
    """(one row per state entered, the execution's last error and cause) from its events."""
    states: list[dict[str, Any]] = []
    for event in events:
        kind, stamp = event["type"], event["timestamp"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            states.append(
                {
                    "state": details.get("name"),
                    "type": kind[: -len("StateEntered")],
                    "status": "RUNNING",
                    "input": _maybe_json(details.get("input")),
                    "output": None,
                    "started": stamp.isoformat(),
                    "ended": None,
                    "seconds": None,
                    "_t0": stamp,
                }
            )
        elif kind.endswith("StateExited") and states:
            details = event.get("stateExitedEventDetails", {})
            row = next((s for s in reversed(states) if s["state"] == details.get("name")), states[-1])
            row.update(
                status="SUCCEEDED",
                output=_maybe_json(details.get("output")),
                ended=stamp.isoformat(),
                seconds=round((stamp - row["_t0"]).total_seconds(), 3),
            )
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            details = event.get(f"{kind[0].lower()}{kind[1:]}EventDetails", {})
            error, cause = details.get("error", error), details.get("cause", cause)
            for row in states:  # an attempt ended: what it left open failed with it
                if row["status"] == "RUNNING":
                    row.update(status="FAILED", ended=stamp.isoformat())
        elif kind == "ExecutionRedriven":
            error = cause = None
    return states, error, cause


def normalise_history(described: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Step Functions' event history in the shape the local executor records (one row per state)."""
    states, error, cause = _state_rows(events, described.get("error"), described.get("cause"))
    failed_state = None
    if described["status"] != "SUCCEEDED":
        unfinished = [s for s in states if s["status"] in ("RUNNING", "FAILED")]
        if unfinished:
            failed_state = unfinished[-1]["state"]
            unfinished[-1]["status"] = "FAILED"
    for row in states:
        row.pop("_t0", None)
    return {
        "name": described.get("name"),
        "executionArn": described["executionArn"],
        "status": described["status"],
        "input": _maybe_json(described.get("input")),
        "output": _maybe_json(described.get("output")),
        "error": error,
        "cause": cause,
        "failedState": failed_state,
        "startDate": _json_safe(described.get("startDate")),
        "stopDate": _json_safe(described.get("stopDate")),
        "states": states,
        "events": _json_safe(events),
    }


_service_models = None


def _session(region: str):
    """A boto3 session whose service models are read once per process: botocore otherwise parses
    each service's JSON model again for every new session (megabytes for SageMaker)."""
    global _service_models
    import boto3
    import botocore.loaders
    import botocore.session

    if _service_models is None:
        _service_models = botocore.loaders.create_loader(os.environ.get("AWS_DATA_PATH"))
    core = botocore.session.get_session()
    core.register_component("data_loader", _service_models)
    return boto3.Session(botocore_session=core, region_name=region)


class AwsBackend:
    name = "aws"

    def __init__(self, params: Mapping[str, Any] | None, home: str | os.PathLike):
        self.params = dict(params or {})
        self.session = _session(self.params["region"])
        self.home = Path(home) / "cache"  # downloads of S3 objects the notebooks show
        self._clients: dict[str, Any] = {}
        self._identity: dict[str, str] | None = None
        self._store: Storage | None = None

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, region_name=self.params["region"])
        return self._clients[service]

    @property
    def identity(self) -> dict[str, str]:
        if self._identity is None:
            self._identity = self.client("sts").get_caller_identity()
        return self._identity

    @property
    def partition(self) -> str:
        return self.identity["Arn"].split(":")[1]

    def default_bucket(self) -> str:
        """SageMaker's default bucket for this account and region, created when missing (as the SDK does)."""
        bucket = f"sagemaker-{self.params['region']}-{self.identity['Account']}"
        s3 = self.client("s3")
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if not s3_not_found(exc):
                raise
            settings = (
                {}
                if self.params["region"] == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": self.params["region"]}}
            )
            s3.create_bucket(Bucket=bucket, **settings)
        return bucket

    def registry(self, table: str):
        return DynamoDbRegistry(table, self.client("dynamodb"))

    @property
    def store(self) -> Storage:
        """S3 through this backend's client (downloads for the notebooks kept in the home's cache)."""
        if self._store is None:
            self._store = Storage(S3Objects(self.client("s3"), self.home))
        return self._store

    @property
    def inputs(self) -> Storage:
        """Where a user's data is read from: the same S3."""
        return self.store

    # --- what the pipeline steps ask of a backend ---------------------------------------------

    def glue_default_arguments(self) -> dict[str, str]:
        return {}

    def function_environment(self, registry_table: str) -> dict[str, str]:
        return {"MODEL_REGISTRY_TABLE": registry_table}

    def function_poll_seconds(self) -> float:
        return 2.0

    def state_machine_arn(self, name: str) -> str:
        return f"arn:{self.partition}:states:{self.params['region']}:{self.identity['Account']}:stateMachine:{name}"

    def execution_history(self, execution_arn: str) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        described = sfn.describe_execution(executionArn=execution_arn)
        events = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events += page["events"]
        return normalise_history(described, events)
