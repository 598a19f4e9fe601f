"""The aws backend: S3, Glue, SageMaker, Lambda, Step Functions and DynamoDB through boto3.

It supplies clients and staging; the pipeline logic (what to create, in which
order, with which definition) is the same code that drives the local backend.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ..aws_errors import s3_not_found
from ..errors import PipelineError
from ..registry import DynamoDbRegistry
from ..storage import iter_text_lines, objects_under, remove_folder, sha256_of, split_s3_uri

#: the largest object one CopyObject copies; a larger one is copied in parts of COPY_PART_BYTES
COPY_OBJECT_LIMIT = 5 * 2**30
COPY_PART_BYTES = 512 * 2**20


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

    # --- staging --------------------------------------------------------------------------------

    def s3_client(self):
        return self.client("s3")

    def stage_file(self, source: str, uri: str) -> str:
        """Upload a local file (or copy an S3 object, server-side) to ``uri``; return the SHA-256 of its content."""
        bucket, key = split_s3_uri(uri)
        if source.startswith("s3://"):
            return self._copy_within_s3(source, bucket, key)
        digest = sha256_of(source)
        self.s3_client().upload_file(source, bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
        return digest

    def _copy_within_s3(self, source: str, bucket: str, key: str) -> str:
        """Copy an object inside S3 (its bytes never pass through this machine) and let S3 compute its
        SHA-256 as it copies. Up to 5 GB one CopyObject makes a single-part object, whose checksum is
        the SHA-256 of the whole content; a larger object is copied in parts, and its checksum (a
        checksum of the parts' checksums) is kept as ``composite-sha256:<value>``: still a fingerprint
        of the content, for the same part size."""
        from boto3.s3.transfer import TransferConfig

        s3 = self.s3_client()
        source_bucket, source_key = split_s3_uri(source)
        copy_source = {"Bucket": source_bucket, "Key": source_key}
        size = s3.head_object(**copy_source)["ContentLength"]
        if size <= COPY_OBJECT_LIMIT:
            copied = s3.copy_object(Bucket=bucket, Key=key, CopySource=copy_source, ChecksumAlgorithm="SHA256")[
                "CopyObjectResult"
            ]
        else:
            s3.copy(
                copy_source,
                bucket,
                key,
                ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                Config=TransferConfig(multipart_threshold=COPY_OBJECT_LIMIT, multipart_chunksize=COPY_PART_BYTES),
            )
            copied = s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        checksum = copied.get("ChecksumSHA256")
        if not checksum:
            raise PipelineError(f"S3 returned no SHA-256 checksum for the copy of {source} to s3://{bucket}/{key}")
        if "-" in checksum or copied.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
            return f"composite-sha256:{checksum}"
        return base64.b64decode(checksum).hex()

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

    def keys_under(self, uri: str) -> list[str]:
        bucket, key = split_s3_uri(uri)
        return list(objects_under(self.s3_client(), bucket, key))

    def remove_prefix(self, uri: str) -> None:
        remove_folder(uri, self.s3_client())

    def text_lines(self, location: str):
        return iter_text_lines(location, self.s3_client() if location.startswith("s3://") else None)

    def object_exists(self, uri: str) -> bool:
        bucket, key = split_s3_uri(uri)
        try:
            self.s3_client().head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
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
        return f"arn:{self.partition}:states:{self.params['region']}:{self.identity['Account']}:stateMachine:{name}"

    def execution_history(self, execution_arn: str) -> dict[str, Any]:
        sfn = self.client("stepfunctions")
        described = sfn.describe_execution(executionArn=execution_arn)
        events = []
        for page in sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
            events += page["events"]
        return normalise_history(described, events)
