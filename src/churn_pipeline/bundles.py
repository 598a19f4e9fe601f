"""Deployment archives: the package for Glue, and the Lambda bundle (handlers + package)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from . import workspace

PACKAGE_ROOT = Path(__file__).resolve().parent
FUNCTION_MODULES = ("query_training_status", "update_model_registry")


def _add(archive: zipfile.ZipFile, name: str, content: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))  # fixed time: same content, same bytes
    info.external_attr = 0o644 << 16
    archive.writestr(info, content)


def _package_files() -> list[tuple[str, bytes]]:
    return [(str(Path("churn_pipeline") / path.relative_to(PACKAGE_ROOT)), path.read_bytes())
            for path in sorted(PACKAGE_ROOT.rglob("*.py"))]


def package_archive() -> bytes:
    """``churn_pipeline`` as a zip, for Glue's ``--extra-py-files``."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in _package_files():
            _add(archive, name, content)
    return buffer.getvalue()


def function_bundle() -> bytes:
    """The Lambda deployment zip: the two handlers from ``code/`` and the package they import."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for module in FUNCTION_MODULES:
            _add(archive, f"{module}.py", (workspace.project_root() / "code" / f"{module}.py").read_bytes())
        for name, content in _package_files():
            _add(archive, name, content)
    return buffer.getvalue()
