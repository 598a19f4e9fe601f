"""A local endpoint with the SageMaker XGBoost container's inference contract.

``GET /ping`` answers 200 once the model is loaded; ``POST /invocations`` takes
``text/csv`` (rows of features in the manifest's order, no header, no label),
``text/csv; header=present`` (raw customer records, encoded with the
manifest's encoding) or ``application/json``, and answers one churn
probability per row in the ``Accept`` type. Bad requests get the container's
statuses: 415 unparsable body, 400 wrong number of features, 406 unsupported
``Accept``, 413 body over 6 MiB. Served by gunicorn (pre-fork workers).

With SageMaker's ``X-Amzn-SageMaker-Custom-Attributes: explain=K`` header the
answer is JSON (or JSON lines) with, per row, the probability, the decision at
the model's cutoff and the K largest reasons (``explain.top_reasons``).
"""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any

from . import explain, features, training
from .errors import DataValidationError, MissingColumns, PipelineError
from .names import FEATURE_MANIFEST

MAX_BODY_BYTES = 6 * 1024 * 1024
ACCEPTED_OUTPUTS = ("text/csv", "application/json", "application/jsonlines")
#: the decision's cutoff of a model whose run recorded none
DEFAULT_CUTOFF = 0.5


@dataclass
class ServedModel:
    """A booster with the manifest that says what its features are."""

    booster: Any
    manifest: dict[str, Any]
    #: a probability above it is a churn decision
    cutoff: float = DEFAULT_CUTOFF

    @property
    def n_features(self) -> int:
        return len(self.manifest["features"])

    def predict(self, matrix) -> list[float]:
        """Churn probabilities, as the endpoint answers them (the in-process ceiling of the server)."""
        if len(matrix) == 0:
            return []
        return self.booster.inplace_predict(matrix, validate_features=False).tolist()


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
) -> ServedModel:
    booster = training.load_model_archive(model_path)
    booster.set_param({"nthread": 1})  # one request, one thread: workers give the parallelism
    manifest = json.loads(Path(manifest_path).read_text())
    if features.encoding_of(manifest) is None:
        raise PipelineError(
            f"manifest {manifest_path} has no feature encoding (written by an older ETL); "
            "re-run the pipeline to serve this model"
        )
    if booster.num_features() != len(manifest["features"]):
        raise PipelineError(
            f"model {model_path} expects {booster.num_features()} features, manifest "
            f"{manifest_path} lists {len(manifest['features'])}"
        )
    return ServedModel(booster, manifest, cutoff)


def check_served_model(model_path: str | os.PathLike, manifest_path: str | os.PathLike) -> None:
    """Check a model and manifest in a child process: the server's master must not load XGBoost
    itself, since its OpenMP runtime does not survive the fork into workers."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(_load_and_discard, (str(model_path), str(manifest_path)))


def _load_and_discard(model_path: str, manifest_path: str) -> None:
    load_served_model(model_path, manifest_path)


class RequestError(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    kind, *parameters = [part.strip() for part in (header or "").split(";")]
    options = dict(p.split("=", 1) for p in parameters if "=" in p)
    return kind.lower(), {k.strip().lower(): v.strip().strip('"').lower() for k, v in options.items()}


def _check_width(rows: list[list[float]] | Any, expected: int) -> None:
    for number, row in enumerate(rows, start=1):
        if len(row) != expected:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"row {number} has {len(row)} features; the model expects {expected}"
            )


def parse_request(served: ServedModel, content_type: str, body: bytes):
    """The request body as a float32 feature matrix, or a RequestError with the container's status."""
    import numpy as np

    kind, options = _media_type(content_type)
    try:
        text = body.decode(options.get("charset", "utf-8"))
    except (UnicodeDecodeError, LookupError) as exc:
        raise RequestError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"body is not {options.get('charset', 'utf-8')} text: {exc}"
        ) from None
    if not text.strip():
        raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "empty body: send at least one row")
    if kind == "text/csv" and options.get("header") == "present":
        try:
            return features.encode_records(
                features.encoding_of(served.manifest), csv.DictReader(io.StringIO(text)), source="request body"
            )
        except DataValidationError as exc:
            status = HTTPStatus.BAD_REQUEST if isinstance(exc, MissingColumns) else HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            raise RequestError(status, str(exc)) from None
    if kind == "text/csv":
        try:
            rows = [[float(value) for value in line.split(",")] for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"CSV body is not numeric: {exc}") from None
        _check_width(rows, served.n_features)
        return np.asarray(rows, dtype=np.float32)
    if kind == "application/json":
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise RequestError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"body is not JSON: {exc}") from None
        instances = document.get("instances") if isinstance(document, dict) else document
        if not isinstance(instances, list):
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, 'JSON body must be {"instances": [[...], ...]} or a list of rows'
            )
        rows = [i.get("features") if isinstance(i, dict) else i for i in instances]
        if not all(
            isinstance(r, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r)
            for r in rows
        ):
            raise RequestError(
                HTTPStatus.UNSUPPORTED_MEDIA_TYPE, 'each instance must be a list of numbers or {"features": [numbers]}'
            )
        _check_width(rows, served.n_features)
        return np.asarray(rows, dtype=np.float32)
    raise RequestError(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        f"content type {kind or '(none)'!r} is not supported; send text/csv or application/json",
    )


def choose_output(accept: str | None) -> str:
    """The first supported type of the Accept header (text/csv when it says nothing or */*)."""
    if not accept:
        return "text/csv"
    for part in accept.split(","):
        kind, _ = _media_type(part)
        if kind in ("*/*", "text/*"):
            return "text/csv"
        if kind == "application/*":
            return "application/json"
        if kind in ACCEPTED_OUTPUTS:
            return kind
    raise RequestError(
        HTTPStatus.NOT_ACCEPTABLE, f"Accept {accept!r} is not supported; ask for one of {', '.join(ACCEPTED_OUTPUTS)}"
    )


def explain_count(attributes: str | None, served: ServedModel) -> int | None:
    """K from ``explain=K`` among the custom attributes (``key=value`` pairs split by ``,`` or ``;``)."""
    for pair in (attributes or "").replace(";", ",").split(","):
        key, _, value = pair.partition("=")
        if key.strip().lower() != "explain":
            continue
        columns = len(explain.reason_columns(served.manifest))
        if not value.strip().isdecimal() or not value.strip().isascii() or not 1 <= int(value) <= columns:
            raise RequestError(
                HTTPStatus.BAD_REQUEST, f"custom attribute explain={value.strip()!r}: ask for 1 to {columns} reasons"
            )
        return int(value)
    return None


def explained_rows(served: ServedModel, matrix, count: int) -> list[dict[str, Any]]:
    """Probability, decision and the ``count`` largest reasons of each row."""
    scores = served.predict(matrix)
    if not scores:
        return []
    per_column, _ = explain.contributions(served.booster, matrix, served.manifest)
    reasons = explain.top_reasons(per_column, explain.reason_columns(served.manifest), count)
    return [{"score": score, "decision": score > served.cutoff, "reasons": why} for score, why in zip(scores, reasons)]


def format_explained(kind: str, rows: list[dict[str, Any]]) -> bytes:
    if kind == "application/jsonlines":
        return "".join(json.dumps(row) + "\n" for row in rows).encode()
    if kind != "application/json":
        raise RequestError(
            HTTPStatus.NOT_ACCEPTABLE,
            "reasons are answered as application/json or application/jsonlines; ask for one of them in Accept",
        )
    return json.dumps({"predictions": rows}).encode()


def format_predictions(kind: str, predictions: list[float]) -> bytes:
    if kind == "text/csv":
        return "".join(f"{p!r}\n" for p in predictions).encode()
    if kind == "application/jsonlines":
        return "".join(json.dumps({"score": p}) + "\n" for p in predictions).encode()
    return json.dumps({"predictions": [{"score": p} for p in predictions]}).encode()


def _discard(stream, length: int, limit: int = 64 * 1024 * 1024) -> None:
    remaining = min(length, limit)
    while remaining > 0:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            return
        remaining -= len(chunk)


def make_app(load: Callable[[], ServedModel]) -> Callable:
    """The WSGI application; the model is loaded when the worker starts."""
    served = load()

    def respond(start_response, status: HTTPStatus, body: bytes, kind: str = "text/plain") -> Iterable[bytes]:
        start_response(f"{status.value} {status.phrase}", [("Content-Type", kind), ("Content-Length", str(len(body)))])
        return [body]

    def app(environ, start_response):
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/ping" and method == "GET":
            return respond(start_response, HTTPStatus.OK, b"")
        if path != "/invocations":
            return respond(start_response, HTTPStatus.NOT_FOUND, b"only /ping and /invocations\n")
        if method != "POST":
            return respond(start_response, HTTPStatus.METHOD_NOT_ALLOWED, b"POST to /invocations\n")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            if length > MAX_BODY_BYTES:
                _discard(environ["wsgi.input"], length)  # so that the client reads the answer, not a reset
                raise RequestError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit",
                )
            count = explain_count(environ.get("HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES"), served)
            accept = environ.get("HTTP_ACCEPT")
            if count and (not accept or choose_output(accept) == "text/csv" and "text/csv" not in accept):
                accept = "application/json"  # reasons have no CSV form; */* and no Accept get JSON
            kind = choose_output(accept)
            body = environ["wsgi.input"].read(length) if length else environ["wsgi.input"].read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                raise RequestError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body is over the {MAX_BODY_BYTES}-byte limit")
            matrix = parse_request(served, environ.get("CONTENT_TYPE", ""), body)
            if count:
                answer = format_explained(kind, explained_rows(served, matrix, count))
            else:
                answer = format_predictions(kind, served.predict(matrix))
            return respond(start_response, HTTPStatus.OK, answer, kind)
        except RequestError as error:
            return respond(start_response, error.status, (error.message + "\n").encode())

    return app


def serve(
    load: Callable[[], ServedModel],
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int | None = None,
    threads: int = 4,
) -> None:
    """Run the endpoint in the foreground with gunicorn's pre-fork workers (each loads the model)."""
    from gunicorn.app.base import BaseApplication

    settings = {
        "bind": f"{host}:{port}",
        "workers": workers or os.cpu_count() or 1,
        "worker_class": "gthread",
        "threads": threads,
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "proc_name": "churn-endpoint",
    }

    class Endpoint(BaseApplication):
        def load_config(self):
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self):
            return make_app(load)

    Endpoint().run()


@dataclass(frozen=True)
class ModelSource:
    """A model to load: local paths, the cutoff its decisions use and where that cutoff comes from."""

    model: Path
    manifest: Path
    cutoff: float
    cutoff_origin: str

    def load(self) -> ServedModel:
        return load_served_model(self.model, self.manifest, self.cutoff)


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
