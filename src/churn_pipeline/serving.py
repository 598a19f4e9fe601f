"""The local endpoint: the project's endpoint script (``code/serve_endpoint.py``) run the way the
SageMaker XGBoost container runs it in script mode, so a request is answered the same here and on AWS.

The container's model server (sagemaker-containers' Flask worker under
gunicorn) calls the script's ``model_fn`` once per worker and, per request,
``input_fn(body, content type)`` -> ``predict_fn`` -> ``output_fn(prediction,
accept)``; a tuple answer is sent with status 200, a WSGI answer as it is, an
exception as a 500. ``host_app`` does the same, with the same defaults: no
``Content-Type`` is JSON, no ``Accept`` (or ``*/*``) is the model's
``SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT``. What the script answers is in
``inference``; where this host differs from the container, ``docs/aws-behaviours.md``
says so (rows SM-SCRIPT-*).
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from types import ModuleType

from . import container, inference, training, workspace
from .capture import INFERENCE_ID_HEADER, CaptureWriter
from .errors import PipelineError
from .names import FEATURE_MANIFEST

#: InvokeEndpoint's largest request body (row SM-RUNTIME-INVOKE)
MAX_BODY_BYTES = 6 * 1024 * 1024
#: the decision's cutoff of a model whose run recorded none
DEFAULT_CUTOFF = 0.5
#: the container's types it hands over as text (sagemaker-containers ``_content_types.UTF8_TYPES``)
TEXT_TYPES = ("application/json", "text/csv")


def manifest_uri_for(model_data_url: str) -> str:
    """The ETL manifest beside a model this pipeline trained: ``<run>/models/...`` -> ``<run>/etl/manifest.json``."""
    run_prefix, marker, _ = model_data_url.partition("/models/")
    if not marker:
        raise PipelineError(
            f"{model_data_url} is not a model this pipeline trained (no /models/ in the path); "
            "name its manifest with --manifest"
        )
    return f"{run_prefix}/etl/{FEATURE_MANIFEST}"


def load_served_model(
    model_path: str | os.PathLike, manifest_path: str | os.PathLike, cutoff: float = DEFAULT_CUTOFF
) -> inference.ServedModel:
    """A ``model.tar.gz`` and its manifest on this machine, as the endpoint serves them."""
    booster = training.load_model_archive(model_path)
    return inference.served_model(booster, json.loads(Path(manifest_path).read_text()), cutoff, str(manifest_path))


def check_served_model(model_path: str | os.PathLike, manifest_path: str | os.PathLike) -> None:
    """Check a model and manifest in a child process: the server's master must not load XGBoost
    itself, since its OpenMP runtime does not survive the fork into workers."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_load_and_discard, (str(model_path), str(manifest_path)))


def _load_and_discard(model_path: str, manifest_path: str) -> None:
    load_served_model(model_path, manifest_path)


def endpoint_script() -> ModuleType:
    """``code/serve_endpoint.py``, imported as the container imports ``SAGEMAKER_PROGRAM``."""
    path = workspace.project_root() / "code" / container.ENDPOINT_PROGRAM
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _discard(stream, length: int, limit: int = 64 * 1024 * 1024) -> None:
    remaining = min(length, limit)
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            return
        remaining -= len(chunk)


def host_app(
    script: ModuleType, model_dir: str | os.PathLike, default_accept: str, capture: CaptureWriter | None = None
):
    """A Flask app that calls ``script`` as the container's worker does (``/ping``, ``/invocations``);
    with ``capture``, a sample of the answered requests is kept in SageMaker's data capture format."""
    import flask

    model = script.model_fn(str(model_dir))
    app = flask.Flask("churn-endpoint")

    @app.route("/ping", methods=["GET"])  # route(): Flask 1.1, the container's, has no get()/post()
    def ping():
        return flask.Response(status=HTTPStatus.OK)

    @app.route("/invocations", methods=["POST"])
    def invocations():
        request = flask.request
        if (request.content_length or 0) > MAX_BODY_BYTES:
            _discard(request.stream, request.content_length)  # so that the client reads the answer, not a reset
            return inference.Answer(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {request.content_length} bytes is over InvokeEndpoint's {MAX_BODY_BYTES}-byte limit",
            )
        content_type = request.headers.get("ContentType") or request.headers.get("Content-Type") or TEXT_TYPES[0]
        accept = request.headers.get("Accept")
        if not accept or accept == "*/*":
            accept = default_accept
        body = request.get_data(as_text=content_type in TEXT_TYPES)
        answer = script.output_fn(script.predict_fn(script.input_fn(body, content_type), model), accept)
        if not isinstance(answer, tuple):
            return answer  # a refusal: not captured
        response = flask.Response(answer[0], mimetype=answer[1])
        if capture is not None and capture.sampled():
            capture.write(
                (content_type, request.get_data()),
                (response.content_type, response.get_data()),
                request.headers.get(INFERENCE_ID_HEADER),
            )
        return response

    return app


def serve(
    source: ModelSource,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    threads: int = 4,
    capture: tuple[Path, str, float] | None = None,
) -> None:
    """Serve ``source`` in the foreground: gunicorn's pre-fork workers, each loading the model; with
    ``capture`` (folder, endpoint name, percentage) each worker captures a sample of the traffic."""
    from gunicorn.app.base import BaseApplication

    variables = source.environment()
    settings = {
        "bind": f"{host}:{port}",
        "workers": workers or os.cpu_count() or 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": container.MODEL_SERVER_TIMEOUT_SECONDS,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "churn-endpoint",
    }
    # the model's folder is removed by the master alone, as it exits: a worker that ends (a timeout, a
    # reload) leaves through SystemExit, and must not take the folder its replacement loads from
    model_dir = tempfile.mkdtemp(prefix="churn-model-")
    settings["on_exit"] = lambda _server: shutil.rmtree(model_dir, ignore_errors=True)
    try:
        with tarfile.open(source.model) as archive:
            archive.extractall(model_dir, filter="data")  # SageMaker extracts ModelDataUrl to /opt/ml/model
    except BaseException:
        shutil.rmtree(model_dir, ignore_errors=True)
        raise
    os.environ.update(variables)

    class Endpoint(BaseApplication):
        def load_config(self):
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            writer = CaptureWriter(*capture) if capture and capture[2] > 0 else None
            return host_app(endpoint_script(), model_dir, variables[container.DEFAULT_ACCEPT_VARIABLE], writer)

    Endpoint().run()


@dataclass(frozen=True)
class ModelSource:
    """A model to load: local paths, the cutoff its decisions use and where that cutoff comes from."""

    model: Path
    manifest: Path
    cutoff: float
    cutoff_origin: str

    def load(self) -> inference.ServedModel:
        return load_served_model(self.model, self.manifest, self.cutoff)

    def environment(self) -> dict[str, str]:
        """The served model's environment, as the endpoint's model on AWS has it, with the cutoff given."""
        return container.endpoint_environment(str(self.manifest), cutoff=self.cutoff)


def resolve_model(
    reference: str, backend, registry, manifest: str | None = None, cutoff: float | None = None
) -> ModelSource:
    """``RUN_ID`` (looked up in the registry), an ``s3://`` URI or a local ``model.tar.gz`` -> local paths,
    with the cutoff: ``cutoff`` if given, else the run's cost-chosen one, else 0.5 (and it says so)."""
    record = None
    if Path(reference).is_file():
        if not manifest:
            raise PipelineError(f"{reference} is a local file: name its feature manifest with --manifest")
        model_path, manifest_path = Path(reference), Path(manifest)
    else:
        model_uri, record = model_in_store(reference, registry)
        manifest_path = Path(manifest) if manifest else backend.store.local_path(manifest_uri_for(model_uri))
        model_path = backend.store.local_path(model_uri)
    return ModelSource(model_path, manifest_path, *decision_cutoff(record, cutoff))


def model_in_store(reference: str, registry):
    """(``model.tar.gz`` URI, its registry record or None) of a run id or an ``s3://`` URI."""
    if reference.startswith("s3://"):
        return reference, next((r for r in registry.list() if r.model_data_url == reference), None)
    record = registry.get(reference)
    return record.model_data_url, record


def decision_cutoff(record, cutoff: float | None) -> tuple[float, str]:
    """(the cutoff decisions use, where it comes from): ``cutoff`` if given, else the run's recorded
    one, else 0.5."""
    if cutoff is not None:
        if not 0.0 <= cutoff <= 1.0:
            raise PipelineError(f"--cutoff must be a probability between 0 and 1; got {cutoff}")
        return cutoff, "given"
    if record is not None and record.cutoff is not None:
        return record.cutoff, (
            f"chosen by cost in run {record.run_id} for retention_offer_cost "
            f"{record.decision['retention_offer_cost']:g} and churn_loss "
            f"{record.decision['churn_loss']:g}"
        )
    return DEFAULT_CUTOFF, "the default: no cost-chosen cutoff is recorded for this model"
