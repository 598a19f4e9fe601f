"""Objects on Amazon S3: the object store the aws backend, AWS Glue and a user's ``s3://`` data use."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import IO

from .aws_errors import s3_not_found
from .errors import DataValidationError, PipelineError, StorageError
from .storage import ObjectStore, Storage, sha256_of, split_s3_uri

#: the largest object one CopyObject copies; a larger one is copied in parts of COPY_PART_BYTES
COPY_OBJECT_LIMIT = 5 * 2**30


COPY_PART_BYTES = 512 * 2**20


class S3Objects(ObjectStore):
    """Objects on S3, through ``client`` (boto3's default S3 client, created on first use, when none is
    given); ``local_path`` downloads into ``cache``."""

    def __init__(self, client=None, cache: str | os.PathLike | None = None):
        self._client, self.cache = client, Path(cache or tempfile.gettempdir()) / "s3"

    @property
    def client(self):
        if self._client is None:
            import boto3  # only when an s3:// URI is really read from S3

            self._client = boto3.client("s3")
        return self._client

    def _call(self, uri: str, action: str, call):
        """``call()``, its failures named: a missing object is the caller's data problem; a refusal
        (access denied, throttling, no credentials) is the store's, and says so."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return call()
        except ClientError as exc:
            if s3_not_found(exc):
                raise DataValidationError(uri, f"cannot {action} S3: {exc}") from exc
            raise StorageError(uri, f"S3 refused to {action} it: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageError(uri, f"cannot reach S3 to {action} it: {exc}") from exc

    def open(self, uri: str) -> IO[bytes]:
        bucket, key = split_s3_uri(uri)
        body = self._call(uri, "read from", lambda: self.client.get_object(Bucket=bucket, Key=key)["Body"])
        return io.BufferedReader(body._raw_stream) if hasattr(body, "_raw_stream") else body

    def read_text(self, uri: str) -> str | None:
        try:
            body = self.open(uri)
        except DataValidationError:  # what open raises for a missing object alone
            return None
        with body:
            return body.read().decode("utf-8")

    def exists(self, uri: str) -> bool:
        from botocore.exceptions import ClientError

        bucket, key = split_s3_uri(uri)
        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if not s3_not_found(exc):
                raise
            return False
        return True

    def size(self, uri: str) -> int:
        bucket, key = split_s3_uri(uri)
        return self.client.head_object(Bucket=bucket, Key=key)["ContentLength"]

    def objects_under(self, uri: str) -> dict[str, int]:
        bucket, prefix = split_s3_uri(uri)
        found = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.update({f"s3://{bucket}/{item['Key']}": item["Size"] for item in page.get("Contents", [])})
        return found

    def put(self, uri: str, content: bytes) -> str:
        bucket, key = split_s3_uri(uri)
        self.client.put_object(Bucket=bucket, Key=key, Body=content)
        return hashlib.sha256(content).hexdigest()

    def put_stream(self, uri: str, stream: IO[bytes]) -> str:
        with tempfile.TemporaryFile() as spooled:
            digest = hashlib.sha256()
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
                spooled.write(block)
            spooled.seek(0)
            bucket, key = split_s3_uri(uri)
            self.client.upload_fileobj(spooled, bucket, key, ExtraArgs={"Metadata": {"sha256": digest.hexdigest()}})
        return digest.hexdigest()

    def stage(self, uri: str, source: str, sources: Storage) -> str:
        """A local file is uploaded (its SHA-256 kept in the object's metadata); an S3 object is copied
        inside S3 (``copy_within``)."""
        bucket, key = split_s3_uri(uri)
        if source.startswith("s3://"):
            return self.copy_within(source, bucket, key)
        path = sources.for_uri(source).local_path(source)
        digest = sha256_of(path)
        self.client.upload_file(str(path), bucket, key, ExtraArgs={"Metadata": {"sha256": digest}})
        return digest

    def copy_within(self, source: str, bucket: str, key: str) -> str:
        """Copy an object inside S3 (its bytes never pass through this machine) and let S3 compute its
        SHA-256 as it copies. Up to 5 GB one CopyObject makes a single-part object, whose checksum is
        the SHA-256 of the whole content; a larger object is copied in parts, and its checksum (a
        checksum of the parts' checksums) is kept as ``composite-sha256:<value>``: still a fingerprint
        of the content, for the same part size."""
        from boto3.s3.transfer import TransferConfig

        source_bucket, source_key = split_s3_uri(source)
        copy_source = {"Bucket": source_bucket, "Key": source_key}
        size = self.client.head_object(**copy_source)["ContentLength"]
        if size <= COPY_OBJECT_LIMIT:
            copied = self.client.copy_object(
                Bucket=bucket, Key=key, CopySource=copy_source, ChecksumAlgorithm="SHA256"
            )["CopyObjectResult"]
        else:
            config = TransferConfig(multipart_threshold=COPY_OBJECT_LIMIT, multipart_chunksize=COPY_PART_BYTES)
            self.client.copy(copy_source, bucket, key, ExtraArgs={"ChecksumAlgorithm": "SHA256"}, Config=config)
            copied = self.client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        checksum = copied.get("ChecksumSHA256")
        if not checksum:
            raise PipelineError(f"S3 returned no SHA-256 checksum for the copy of {source} to s3://{bucket}/{key}")
        if "-" in checksum or copied.get("ChecksumType", "FULL_OBJECT") != "FULL_OBJECT":
            return f"composite-sha256:{checksum}"
        return base64.b64decode(checksum).hex()

    def remove(self, uri: str) -> None:
        bucket, key = split_s3_uri(uri)
        self.client.delete_object(Bucket=bucket, Key=key)

    def remove_prefix(self, uri: str) -> None:
        base = uri.rstrip("/")
        for found in [*self.objects_under(base + "/"), base + "_$folder$"]:
            self.remove(found)

    def move_prefix(self, source: str, target: str) -> None:
        """S3 has no rename: each object is copied (a managed copy: multipart above 5 GB), then deleted."""
        self.remove_prefix(target)
        base, target_base = source.rstrip("/"), target.rstrip("/")
        target_bucket, target_key = split_s3_uri(target_base)
        for found in self.objects_under(base + "/"):
            bucket, key = split_s3_uri(found)
            self.client.copy({"Bucket": bucket, "Key": key}, target_bucket, target_key + found[len(base) :])
        self.remove_prefix(source)

    def local_path(self, uri: str) -> Path:
        """Download an object, or every object under a prefix, into the cache."""
        bucket, key = split_s3_uri(uri)
        below = self.objects_under(uri.rstrip("/") + "/")
        for found in below:
            _, name = split_s3_uri(found)
            destination = self.cache / bucket / name
            destination.parent.mkdir(parents=True, exist_ok=True)
            self._call(
                found, "read from", lambda name=name, d=destination: self.client.download_file(bucket, name, str(d))
            )
        if not below:
            target = self.cache / bucket / key
            target.parent.mkdir(parents=True, exist_ok=True)
            self._call(uri, "read from", lambda: self.client.download_file(bucket, key, str(target)))
        return self.cache / bucket / key


def s3_storage(client=None, cache: str | os.PathLike | None = None) -> Storage:
    """Paths on this machine, and ``s3://`` on S3 (through ``client``, or boto3's default one)."""
    return Storage(S3Objects(client, cache))
