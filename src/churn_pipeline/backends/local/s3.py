"""Local S3: buckets as folders (``<home>/s3/<bucket>/<key>``), with S3's prefix semantics."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from ...errors import PipelineError
from ...storage import (
    LocalObjectStore,
    copy_to_local,
    iter_text_lines,
    remove_folder,
    sha256_of,
    split_s3_uri,
    write_atomic,
)


class LocalS3:
    """Staging and reading of ``s3://`` URIs in the local store."""

    def __init__(self, home: Path):
        self.home = home
        self.store = LocalObjectStore(home / "s3")

    def s3_client(self):
        import boto3  # reading a user's s3:// input data from S3 needs the real client

        return boto3.client("s3")

    def default_bucket(self) -> str:
        return "churn-pipeline-local"

    def stage_file(self, source: str, uri: str) -> str:
        """Copy a local file or S3 object to ``uri`` in the local store; return its SHA-256."""
        target = copy_to_local(source, self.store.path(uri), self.s3_client() if source.startswith("s3://") else None)
        return sha256_of(target)

    def stage_bytes(self, content: bytes, uri: str) -> str:
        write_atomic(self.store.path(uri), content)
        return hashlib.sha256(content).hexdigest()

    def object_exists(self, uri: str) -> bool:
        return self.store.path(uri).is_file()

    def local_copy(self, uri: str) -> Path:
        """A local path holding the object or prefix ``uri`` (here: the store's own file)."""
        path = self.store.path(uri)
        if not path.exists():
            raise PipelineError(f"{uri} does not exist in the local store ({path})")
        return path

    def keys_under(self, uri: str) -> list[str]:
        return [key for key, _ in self.objects_under(uri)]

    def remove_prefix(self, uri: str) -> None:
        remove_folder(str(self.store.path(uri)))

    def text_lines(self, location: str):
        return iter_text_lines(self.store.localize(location))

    def objects_under(self, uri: str) -> list[tuple[str, Path]]:
        """Every object whose key starts with the key of ``uri``, as S3 lists a prefix:
        ``.../train`` also matches ``.../train_$folder$`` and ``.../train.csv``; ``.../train/`` does not."""
        bucket, prefix = split_s3_uri(uri)
        root = self.store.root / bucket
        found = []
        start = root / os.path.dirname(prefix)
        if start.is_dir():
            for path in sorted(start.rglob("*")):
                key = path.relative_to(root).as_posix()
                if path.is_file() and key.startswith(prefix):
                    found.append((key, path))
        return found
