"""Object storage by URI: one interface, resolved by scheme (as papermill's I/O registry does).

``LocalFiles`` serves paths (and ``file://``); ``s3.S3Objects`` serves ``s3://``
on S3; ``MirroredS3`` serves ``s3://`` from a folder that keeps S3's layout
(``<root>/<bucket>/<key>``), so every URI the local backend's state machine
carries names a real file. ``Storage`` picks the store of a URI's scheme; a
backend composes the one it needs. Objects under a prefix follow S3's rules: a
prefix matches keys, not folders (``.../train`` also matches ``.../train.csv``).
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

from .errors import ConfigError, DataValidationError, PipelineError


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", **options) -> Iterator[IO]:
    """A file written in a stream that readers see whole or not at all: the content goes to a temp file
    beside ``path`` (a name of its own, so concurrent writers of one path never share a half-written
    file), which replaces ``path`` only when the block ends without an error."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(handle, mode, **options) as out:
            yield out
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def write_atomic(path: str | os.PathLike, content: str | bytes) -> Path:
    """Write a file so that a reader sees the old content or the new, never half of it."""
    with atomic_file(path) as out:
        out.write(content if isinstance(content, bytes) else content.encode())
    return Path(path)


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ConfigError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ConfigError(f"s3 URI without a bucket: {uri!r}")
    return bucket, key


def sha256_of(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_csv_part(name: str, size: int) -> bool:
    """What a training channel may hold: Spark's non-empty CSV parts, nothing else."""
    return name.startswith("part-") and name.endswith(".csv") and size > 0


class ObjectStore:
    """Objects addressed by URI. Subclasses read, write, list and remove; what follows is shared."""

    def open(self, uri: str) -> IO[bytes]:
        raise NotImplementedError

    def read_text(self, uri: str) -> str | None:
        """The object's text, or None when there is none."""
        raise NotImplementedError

    def exists(self, uri: str) -> bool:
        raise NotImplementedError

    def size(self, uri: str) -> int:
        """The size in bytes (read from the object's metadata, not its content)."""
        raise NotImplementedError

    def objects_under(self, uri: str) -> dict[str, int]:
        """Every object whose URI starts with ``uri``, with its size."""
        raise NotImplementedError

    def put_stream(self, uri: str, stream: IO[bytes]) -> str:
        """Write a stream's bytes to ``uri`` (whole or not at all); their SHA-256."""
        raise NotImplementedError

    def remove(self, uri: str) -> None:
        raise NotImplementedError

    def remove_prefix(self, uri: str) -> None:
        """Remove a folder: every object under ``uri/`` (and EMRFS's ``<uri>_$folder$`` marker)."""
        raise NotImplementedError

    def move_prefix(self, source: str, target: str) -> None:
        """Move a folder's content to ``target``, replacing what was there."""
        raise NotImplementedError

    def local_path(self, uri: str) -> Path:
        """A path on this machine holding the object, or every object under the prefix ``uri``."""
        raise NotImplementedError

    def put(self, uri: str, content: bytes) -> str:
        """Write ``content`` to ``uri``; its SHA-256."""
        return self.put_stream(uri, io.BytesIO(content))

    def stage(self, uri: str, source: str, sources: Storage) -> str:
        """Copy ``source`` (read from ``sources``) to ``uri``; the SHA-256 of its content."""
        with sources.open(source) as stream:
            return self.put_stream(uri, stream)

    def lines(self, uri: str) -> Iterator[str]:
        """The lines of a text object, without line endings, read as they are needed."""
        with self.open(uri) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                for line in text:
                    yield line.rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise DataValidationError(uri, f"not UTF-8 text: {exc.reason}") from exc

    def keep_only_csv_parts(self, folder: str) -> list[str]:
        """Remove what Spark leaves beside the CSV parts of ``folder``; what was removed.

        ``_SUCCESS``, checksum files (``.part-*.crc``), EMRFS's ``<folder>_$folder$``
        and empty parts: the SageMaker XGBoost container reads every file of a
        channel and fails on these (hidden file; no delimiter to detect).
        """
        base, removed = folder.rstrip("/"), []
        for found, size in self.objects_under(base).items():
            name = found[len(base) :]
            inside = name.startswith("/") and "/" not in name[1:]
            if name == "_$folder$" or (inside and not is_csv_part(name[1:], size)):
                self.remove(found)
                removed.append(found)
        return removed


class LocalFiles(ObjectStore):
    """Files on this machine, by path or ``file://`` URI."""

    def path(self, uri: str) -> Path:
        return Path(uri[len("file://") :] if uri.startswith("file://") else uri)

    def _uri(self, path: Path) -> str:
        return str(path)

    def open(self, uri: str) -> IO[bytes]:
        try:
            return open(self.path(uri), "rb")
        except OSError as exc:
            raise DataValidationError(uri, f"cannot open: {exc.strerror}") from exc

    def read_text(self, uri: str) -> str | None:
        try:
            return self.path(uri).read_text()
        except FileNotFoundError:
            return None

    def exists(self, uri: str) -> bool:
        return self.path(uri).is_file()

    def size(self, uri: str) -> int:
        return os.path.getsize(self.path(uri))

    def objects_under(self, uri: str) -> dict[str, int]:
        """S3's prefix rules, on files too: ``.../train`` also matches ``.../train_$folder$`` and
        ``.../train.csv``; ``.../train/`` does not."""
        prefix = str(self.path(uri)) + ("/" if uri.endswith("/") else "")  # a path drops a trailing slash
        start = Path(os.path.dirname(prefix))
        if not start.is_dir():
            return {}
        return {
            self._uri(path): path.stat().st_size
            for path in sorted(start.rglob("*"))
            if path.is_file() and str(path).startswith(prefix)
        }

    def put_stream(self, uri: str, stream: IO[bytes]) -> str:
        digest = hashlib.sha256()
        with atomic_file(self.path(uri)) as out:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
                out.write(block)
        return digest.hexdigest()

    def remove(self, uri: str) -> None:
        self.path(uri).unlink(missing_ok=True)

    def remove_prefix(self, uri: str) -> None:
        shutil.rmtree(self.path(uri.rstrip("/")), ignore_errors=True)

    def move_prefix(self, source: str, target: str) -> None:
        self.remove_prefix(target)
        origin, destination = self.path(source.rstrip("/")), self.path(target.rstrip("/"))
        destination.parent.mkdir(parents=True, exist_ok=True)
        if origin.exists():
            os.replace(origin, destination)
        else:  # nothing to move (Spark writes no folder for an empty partition)
            destination.mkdir()

    def local_path(self, uri: str) -> Path:
        path = self.path(uri)
        if not path.exists():
            raise PipelineError(f"{uri} does not exist ({path})")
        return path


class MirroredS3(LocalFiles):
    """``s3://bucket/key`` kept as ``<root>/bucket/key``: the local backend's S3."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, uri: str) -> Path:
        bucket, key = split_s3_uri(uri)
        return self.root / bucket / key

    def _uri(self, path: Path) -> str:
        return "s3://" + path.relative_to(self.root).as_posix()

    def localize(self, value: str) -> str:
        """Map an ``s3://`` URI to its local path; leave anything else unchanged."""
        return str(self.path(value)) if isinstance(value, str) and value.startswith("s3://") else value

    def local_path(self, uri: str) -> Path:
        path = self.path(uri)
        if not path.exists():
            raise PipelineError(f"{uri} does not exist in the local store ({path})")
        return path


class Storage:
    """Objects by URI: ``s3://`` on the store given for S3 (S3 itself, ``s3.s3_storage``, or the local
    backend's mirror), every other location on this machine's files."""

    def __init__(self, s3: ObjectStore):
        self.s3, self.files = s3, LocalFiles()

    def for_uri(self, uri: str) -> ObjectStore:
        return self.s3 if uri.startswith("s3://") else self.files

    def open(self, uri: str) -> IO[bytes]:
        return self.for_uri(uri).open(uri)

    def lines(self, uri: str) -> Iterator[str]:
        return self.for_uri(uri).lines(uri)

    def read_text(self, uri: str) -> str | None:
        return self.for_uri(uri).read_text(uri)

    def exists(self, uri: str) -> bool:
        return self.for_uri(uri).exists(uri)

    def size(self, uri: str) -> int:
        return self.for_uri(uri).size(uri)

    def objects_under(self, uri: str) -> dict[str, int]:
        return self.for_uri(uri).objects_under(uri)

    def put(self, uri: str, content: bytes) -> str:
        return self.for_uri(uri).put(uri, content)

    def write_text(self, uri: str, text: str) -> str:
        self.put(uri, text.encode())
        return uri

    def stage(self, uri: str, source: str, sources: Storage | None = None) -> str:
        """Copy ``source`` (a location of ``sources``, by default this storage's) to ``uri``; its SHA-256."""
        return self.for_uri(uri).stage(uri, source, sources or self)

    def remove_prefix(self, uri: str) -> None:
        self.for_uri(uri).remove_prefix(uri)

    def move_prefix(self, source: str, target: str) -> None:
        self.for_uri(source).move_prefix(source, target)

    def local_path(self, uri: str) -> Path:
        return self.for_uri(uri).local_path(uri)

    def keep_only_csv_parts(self, folder: str) -> list[str]:
        return self.for_uri(folder).keep_only_csv_parts(folder)
