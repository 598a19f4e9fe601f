"""The aws backend: S3, Glue, SageMaker, Lambda, Step Functions and DynamoDB through boto3.

It supplies clients and staging; the pipeline logic (what to create, in which
order, with which definition) is the same code that drives the local backend.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping

from ..aws_errors import s3_not_found
from ..storage import split_s3_uri


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


def normalise_history(described: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """Step Functions' event history in the shape the local executor records (one row per state)."""
    states: list[dict[str, Any]] = []
    error = described.get("error")
    cause = described.get("cause")
    for event in events:
        kind = event["type"]
        stamp = event["timestamp"]
        if kind.endswith("StateEntered"):
            details = event.get("stateEnteredEventDetails", {})
            states.append({"state": details.get("name"), "type": kind[: -len("StateEntered")], "status": "RUNNING",
                           "input": _maybe_json(details.get("input")), "output": None,
                           "started": stamp.isoformat(), "ended": None, "seconds": None, "_t0": stamp})
        elif kind.endswith("StateExited") and states:
            details = event.get("stateExitedEventDetails", {})
            row = next((s for s in reversed(states) if s["state"] == details.get("name")), states[-1])
            row.update(status="SUCCEEDED", output=_maybe_json(details.get("output")), ended=stamp.isoformat(),
                       seconds=round((stamp - row["_t0"]).total_seconds(), 3))
        elif kind in ("ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut"):
            details = event.get(f"{kind[0].lower()}{kind[1:]}EventDetails", {})
            error, cause = details.get("error", error), details.get("cause", cause)
            for row in states:  # an attempt ended: what it left open failed with it
                if row["status"] == "RUNNING":
                    row.update(status="FAILED", ended=stamp.isoformat())
        elif kind == "ExecutionRedriven":
            error = cause = None
    failed_state = None
    if described["status"] != "SUCCEEDED":
        unfinished = [s for s in states if s["status"] in ("RUNNING", "FAILED")]
        if unfinished:
            failed_state = unfinished[-1]["state"]
            unfinished[-1]["status"] = "FAILED"
    for row in states:
        row.pop("_t0", None)
    return {"name": described.get("name"), "executionArn": described["executionArn"], "status": described["status"],
            "input": _maybe_json(described.get("input")), "output": _maybe_json(described.get("output")),
            "error": error, "cause": cause, "failedState": failed_state,
            "startDate": _json_safe(described.get("startDate")), "stopDate": _json_safe(described.get("stopDate")),
            "states": states, "events": _json_safe(events)}


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
        except Exception as exc:
            if not s3_not_found(exc):
                raise
            settings = ({} if self.params["region"] == "us-east-1" else
                        {"CreateBucketConfiguration": {"LocationConstraint": self.params["region"]}})
            s3.create_bucket(Bucket=bucket, **settings)
        return bucket

    def registry(self, table: str):
        from ..registry import DynamoDbRegistry

        return DynamoDbRegistry(table, self.client("dynamodb"))

    # --- staging --------------------------------------------------------------------------------

    def s3_client(self):
        return self.client("s3")

    def stage_file(self, source: str, uri: str) -> str:
        """Upload a local file (or copy an S3 object) to ``uri``; return the SHA-256 of its content."""
        from ..storage import copy_to_local, sha256_of

        bucket, key = split_s3_uri(uri)
        with tempfile.TemporaryDirectory() as scratch:
            local = source
            if source.startswith("s3://"):
                local = str(copy_to_local(source, Path(scratch) / "object", self.s3_client()))
            digest = sha256_of(local)
            self.s3_client().upload_file(local, bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
        return digest

    def stage_bytes(self, content: bytes, uri: str) -> str:
        bucket, key = split_s3_uri(uri)
        self.s3_client().put_object(Bucket=bucket, Key=key, Body=content)
        return hashlib.sha256(content).hexdigest()

    def local_copy(self, uri: str) -> Path:
        """Download an object, or every object under a prefix, to the cache; return the local path."""
        bucket, key = split_s3_uri(uri)
        target = self.home / bucket / key
        s3 = self.s3_client()
        listing = s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/")
        if listing.get("KeyCount", 0):
            paginator = s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=key.rstrip("/") + "/"):
                for item in page.get("Contents", []):
                    destination = self.home / bucket / item["Key"]
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, item["Key"], str(destination))
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        s3.download_file(bucket, key, str(target))
        return target

    def object_exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self.s3_client().head_object(Bucket=bucket, Key=key)
        except Exception as exc:
            if not s3_not_found(exc):
                raise
            return False
        return True

    # --- what the pipeline steps ask of a backend ---------------------------------------------

    def glue_default_arguments(self) -> dict[str, str]:
        return {}

    def function_environment(self, registry_table: str) -> dict[str, str]:
        return {"MODEL_REGISTRY_TABLE": registry_table}

    def function_poll_seconds(self) -> float:
        return 2.0

    def state_machine_arn(self, name: str) -> str:
        return (f"arn:{self.partition}:states:{self.params['region']}:{self.identity['Account']}:"
                f"stateMachine:{name}")

    def execution_history(self, execution_arn: str) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        described = sfn.describe_execution(executionArn=execution_arn)
        events = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events += page["events"]
        return normalise_history(described, events)


