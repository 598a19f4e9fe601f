"""The SageMaker and Step Functions SDKs as the builders use them: imported quietly, their values
memoised by content, their definitions serialised and validated one way."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import sys
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import StateMachineError
from .storage import write_atomic

#: the modules whose code shapes a memoised value, besides its inputs
BUILDER_MODULES = ("sdk.py", "statemachine.py", "scoring_statemachine.py", "container.py", "inference.py")


_TRACEBACK_HOOKS = ("_showtraceback", "showtraceback", "showsyntaxerror")


@contextlib.contextmanager
def _standard_tracebacks():
    """Undo what an import does to traceback printing.

    sagemaker-core installs rich's traceback hook (for Python and IPython) at
    import; in a notebook that turns every error into display output, which
    hides it from papermill, nbval and the person reading the notebook.
    """
    saved_hook = sys.excepthook
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    saved = {name: shell.__dict__.get(name) for name in _TRACEBACK_HOOKS} if shell is not None else {}
    try:
        yield
    finally:
        sys.excepthook = saved_hook
        for name, value in saved.items():
            if value is None:
                shell.__dict__.pop(name, None)
            else:
                shell.__dict__[name] = value


def import_sdks():
    """Import the SageMaker and Step Functions SDKs quietly, leaving tracebacks as they were."""
    os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    with _standard_tracebacks(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*pkg_resources.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import sagemaker  # noqa: F401
        import stepfunctions  # noqa: F401
    logging.getLogger("stepfunctions").setLevel(logging.WARNING)


def _sdk_fingerprint() -> str:
    """What an SDK-built value depends on besides its inputs: the builders' code and the SDKs' versions."""
    digest = hashlib.sha256()
    for name in BUILDER_MODULES:
        digest.update(Path(__file__).with_name(name).read_bytes())
    for package in ("sagemaker", "stepfunctions"):
        digest.update(f"{package}=={metadata.version(package)}".encode())
    return digest.hexdigest()


def memoised(cache_dir: Path | None, kind: str, inputs: dict[str, Any], build: Callable[[], Any]) -> Any:
    """``build()``'s JSON value, kept under a key of its inputs and the SDK fingerprint.

    Importing the SageMaker SDK takes seconds; a run whose definition (or image) is
    one already built skips the import. A change of inputs, of the builders' code or of
    an SDK version is a new key, so a kept value is never stale.
    """
    if cache_dir is None:
        return build()
    key = hashlib.sha256((_sdk_fingerprint() + json.dumps(inputs, sort_keys=True)).encode()).hexdigest()[:32]
    path = Path(cache_dir) / f"{kind}-{key}.json"
    if path.exists():
        with contextlib.suppress(ValueError):  # a damaged entry is built again
            return json.loads(path.read_text())
    value = build()
    write_atomic(path, json.dumps(value, sort_keys=True))
    return value


def training_image_uri(region: str, version: str, cache_dir: Path | None = None) -> str:
    """The SageMaker XGBoost image of ``version`` in ``region``, as the SDK names it."""

    def retrieve() -> str:
        import_sdks()
        from sagemaker import image_uris

        return image_uris.retrieve("xgboost", region, version)

    return memoised(cache_dir, "xgboost-image", {"region": region, "version": version}, retrieve)


def definition_json(definition: dict[str, Any]) -> str:
    """The one serialisation both backends receive (stable key order, so it diffs cleanly)."""
    return json.dumps(definition, indent=2, sort_keys=True)


def validate_definition(definition: dict[str, Any]) -> None:
    """Validate with statelint, the Amazon States Language validator."""
    from statelint.linter import Linter

    problems = Linter.validate(definition)
    if problems:
        raise StateMachineError("invalid state-machine definition:\n" + "\n".join(f"- {p}" for p in problems))


def definition_once(cache_dir: Path | None, kind: str, spec: Any, build: Callable[[Any], dict[str, Any]]) -> dict:
    """``build(spec)``, built once per spec (a dataclass, kept in ``cache_dir``) and validated every time."""
    definition = memoised(cache_dir, kind, dataclasses.asdict(spec), lambda: build(spec))
    validate_definition(definition)
    return definition
