"""Deployment archives: the package for Glue, the functions' archive (handlers + package), and the
script-mode models' source directory (scripts + package [+ manifest])."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path

from . import container, workspace
from .names import FUNCTION_MODULES

PACKAGE_ROOT = Path(__file__).resolve().parent


def _add(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed time: same content, same bytes
    info.external_attr = 0o644 << 16
    archive.writestr(info, content)


def _package_files() -> list[tuple[str, bytes]]:
    return [
        (str(Path("churn_pipeline") / path.relative_to(PACKAGE_ROOT)), path.read_bytes())
        for path in sorted(PACKAGE_ROOT.rglob("*.py"))
    ]


def package_archive() -> bytes:
    """``churn_pipeline`` as a zip, for Glue's ``--extra-py-files``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _package_files():
            _add(archive, name, content)
    return buffer.getvalue()


def function_archive() -> bytes:
    """The Lambda deployment zip: the two handlers from ``code/`` and the package they import."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for module in FUNCTION_MODULES.values():
            _add(archive, f"{module}.py", (workspace.project_root() / "code" / f"{module}.py").read_bytes())
        for name, content in _package_files():
            _add(archive, name, content)
    return buffer.getvalue()


def source_dir(manifest: dict | None = None) -> bytes:
    """The ``sourcedir.tar.gz`` a script-mode model's ``SAGEMAKER_SUBMIT_DIRECTORY`` names: the
    endpoint's and the Batch Transform's scripts from ``code/``, the package, and (for scoring) the
    model's feature manifest. Fixed times and owners: the same content gives the same bytes (and the
    same staged key)."""
    scripts = (container.ENDPOINT_PROGRAM, container.TRANSFORM_PROGRAM)
    files = [(name, (workspace.project_root() / "code" / name).read_bytes()) for name in scripts]
    if manifest is not None:
        files.append((container.TRANSFORM_MANIFEST, json.dumps(manifest, sort_keys=True).encode()))
    files += _package_files()
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive,
    ):
        for name, content in files:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o644, 0
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()
