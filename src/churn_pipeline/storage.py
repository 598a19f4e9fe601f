"""Object storage by URI: local paths, and ``s3://`` on S3 or on the local mirror.

The local backend keeps S3's layout in a folder (``<root>/<bucket>/<key>``) so
that every ``s3://`` URI the state machine carries names a real file.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from .errors import ConfigError, DataValidationError


def write_atomic(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write a file so that a reader sees the old content or the new, never half of it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # a temp name of its own, so concurrent writers of one path never share a half-written file
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(content if isinstance(content, bytes) else content.encode())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return target


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ConfigError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


class LocalObjectStore:
    """A folder that mirrors ``s3://bucket/key`` as ``<root>/bucket/key``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        bucket, key = split_s3_uri(uri)
        return self.root / bucket / key

    def localize(self, value: str) -> str:
        """Map an ``s3://`` URI to its local path; leave anything else unchanged."""
        return str(self.path(value)) if isinstance(value, str) and value.startswith("s3://") else value


def _s3_client():
    import boto3  # only when an s3:// URI is really read from S3

    return boto3.client("s3")


def open_binary(location: str, s3_client=None) -> IO[bytes]:
    """Open a local path or an ``s3://`` object (on S3) for reading."""
    if location.startswith("s3://"):
        bucket, key = split_s3_uri(location)
        client = s3_client or _s3_client()
        try:
            body = client.get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as exc:  # botocore's ClientError and NoCredentialsError share no narrower base
            raise DataValidationError(location, f"cannot read from S3: {exc}") from exc
        return io.BufferedReader(body._raw_stream) if hasattr(body, "_raw_stream") else body
    try:
        return open(location, "rb")
    except OSError as exc:
        raise DataValidationError(location, f"cannot open: {exc.strerror}") from exc


def iter_text_lines(location: str, s3_client=None) -> Iterator[str]:
    """Yield the lines of a text file or object, without line endings."""
    with open_binary(location, s3_client) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
        try:
            for line in text:
                yield line.rstrip("\r\n")
        except UnicodeDecodeError as exc:
            raise DataValidationError(location, f"not UTF-8 text: {exc.reason}") from exc


def read_text_or_none(location: str, s3_client=None) -> str | None:
    """The text of a local file or S3 object, or None when there is none."""
    if location.startswith("s3://"):
        bucket, key = split_s3_uri(location)
        client = s3_client or _s3_client()
        try:
            return client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except client.exceptions.NoSuchKey:
            return None
    try:
        return Path(location).read_text()
    except FileNotFoundError:
        return None


def copy_to_local(location: str, target: str | os.PathLike, s3_client=None) -> Path:
    """Copy a local file or S3 object to ``target`` (written atomically)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    with open_binary(location, s3_client) as source, open(tmp, "wb") as out:
        shutil.copyfileobj(source, out, 1 << 20)
    os.replace(tmp, target)
    return target


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(location: str, s3_client=None) -> int:
    """The size in bytes of a local file or an ``s3://`` object (read from its metadata, not its content)."""
    if location.startswith("s3://"):
        bucket, key = split_s3_uri(location)
        return (s3_client or _s3_client()).head_object(Bucket=bucket, Key=key)["ContentLength"]
    return os.path.getsize(location[len("file://") :] if location.startswith("file://") else location)


def write_text(location: str, text: str, s3_client=None) -> str:
    """Write text to a local path (atomically) or an ``s3://`` object on S3."""
    if location.startswith("s3://"):
        bucket, key = split_s3_uri(location)
        (s3_client or _s3_client()).put_object(Bucket=bucket, Key=key, Body=text.encode())
        return location
    write_atomic(location, text)
    return location


def objects_under(client, bucket: str, prefix: str) -> dict[str, int]:
    """Every object whose key starts with ``prefix``, with its size (S3 lists a prefix, not a folder)."""
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.update({item["Key"]: item["Size"] for item in page.get("Contents", [])})
    return found


def remove_folder(location: str, s3_client=None) -> None:
    """Remove a folder, or every object under ``location/`` and its ``_$folder$`` marker."""
    if not location.startswith("s3://"):
        shutil.rmtree(location[len("file://") :] if location.startswith("file://") else location, ignore_errors=True)
        return
    client = s3_client or _s3_client()
    bucket, key = split_s3_uri(location.rstrip("/"))
    for name in [*objects_under(client, bucket, key + "/"), key + "_$folder$"]:
        client.delete_object(Bucket=bucket, Key=name)


def move_folder(source: str, target: str, s3_client=None) -> None:
    """Move a folder's content to ``target`` (replacing what was there). S3 has no rename: each object
    is copied (a managed copy: multipart above 5 GB) and then deleted."""
    remove_folder(target, s3_client)
    if not source.startswith("s3://"):
        local = [p[len("file://") :] if p.startswith("file://") else p for p in (source, target)]
        os.makedirs(os.path.dirname(local[1].rstrip("/")) or ".", exist_ok=True)
        if os.path.exists(local[0]):
            os.replace(local[0], local[1])
        else:  # nothing to move (Spark writes no folder for an empty partition)
            os.makedirs(local[1])
        return
    client = s3_client or _s3_client()
    bucket, key = split_s3_uri(source.rstrip("/"))
    target_bucket, target_key = split_s3_uri(target.rstrip("/"))
    for name in objects_under(client, bucket, key + "/"):
        client.copy({"Bucket": bucket, "Key": name}, target_bucket, target_key + name[len(key) :])
    remove_folder(source, s3_client)


def _is_csv_part(name: str, size: int) -> bool:
    return name.startswith("part-") and name.endswith(".csv") and size > 0


def keep_only_csv_parts(folder: str, s3_client=None) -> list[str]:
    """Remove what Spark leaves beside the CSV parts; return what was removed.

    ``_SUCCESS``, checksum files (``.part-*.crc``), EMRFS's ``<folder>_$folder$``
    and empty parts: the SageMaker XGBoost container reads every file of a
    channel and fails on these (hidden file; no delimiter to detect).
    """
    removed = []
    if folder.startswith("s3://"):
        client = s3_client or _s3_client()
        bucket, key = split_s3_uri(folder.rstrip("/"))
        marker = f"{key}_$folder$"
        for found, size in objects_under(client, bucket, key).items():
            name = found[len(key) :]
            inside = name.startswith("/") and "/" not in name[1:]
            if found == marker or (inside and not _is_csv_part(name[1:], size)):
                client.delete_object(Bucket=bucket, Key=found)
                removed.append(found)
        return removed
    local = folder[len("file://") :] if folder.startswith("file://") else folder
    for entry in os.scandir(local):
        if entry.is_file() and not _is_csv_part(entry.name, entry.stat().st_size):
            os.remove(entry.path)
            removed.append(entry.path)
    return removed
