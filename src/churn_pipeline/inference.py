"""The endpoint's inference code: the four script-mode functions the SageMaker XGBoost container
calls (``code/serve_endpoint.py`` hands them over), and the local endpoint calls the same way.

``text/csv`` (rows of features in the manifest's order, no header, no label),
``text/csv; header=present`` (raw customer records, encoded with the manifest's
encoding) or ``application/json`` in; one churn probability per row out, as
``text/csv``, ``application/json`` or ``application/jsonlines``. With SageMaker's
custom attribute ``explain=K`` each row also gets the decision at the run's
cutoff and its K largest reasons. Bad requests are answered, not raised: the
container turns any exception of a script into a 500 (row SM-SCRIPT-ERRORS), so
each function passes an ``Answer`` with its status on to ``output_fn``, which
returns it as the WSGI response the container's Flask worker sends.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

from . import decisions, explain, features, training
from .errors import DataValidationError, MissingColumns, PipelineError
from .s3 import s3_storage

#: the header SageMaker Runtime passes to the container as it is (``CustomAttributes``)
CUSTOM_ATTRIBUTES_HEADER = "X-Amzn-SageMaker-Custom-Attributes"
ACCEPTED_OUTPUTS = ("text/csv", "application/json", "application/jsonlines")
#: the served model's environment: where its feature manifest and its run's decision are (``s3://`` or a
#: path), and a cutoff given instead of the recorded one
MANIFEST_VARIABLE = "CHURN_MANIFEST"
DECISION_VARIABLE = "CHURN_DECISION"
CUTOFF_VARIABLE = "CHURN_CUTOFF"


@dataclass
class ServedModel:
    """A booster with the manifest that says what its features are."""

    booster: Any
    manifest: dict[str, Any]
    #: a probability above it is a churn decision
    cutoff: float

    @property
    def n_features(self) -> int:
        return len(self.manifest["features"])

    def predict(self, matrix) -> list[float]:
        """Churn probabilities, as the endpoint answers them."""
        if len(matrix) == 0:
            return []
        return self.booster.inplace_predict(matrix, validate_features=False).tolist()


@dataclass
class Answer:
    """A response with its own status: a WSGI application, which the container's Flask worker (and
    the local endpoint) sends as it is."""

    status: HTTPStatus
    message: str

    def __call__(self, environ, start_response):
        body = (self.message + "\n").encode()
        start_response(
            f"{self.status.value} {self.status.phrase}",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
        )
        return [body]


@dataclass
class Request:
    """A parsed body: numeric rows, or raw records to encode; and the reasons asked for."""

    rows: list[list[float]] | None = None
    records: list[dict[str, str]] | None = None
    explain: str | None = None


@dataclass
class Prediction:
    scores: list[float]
    reasons: list[list[dict[str, Any]]] | None = None
    decisions: list[bool] = field(default_factory=list)
    #: the columns of a score file (``decisions.decided``), computed only for a CSV answer
    columns: Callable[[], dict[str, Any]] | None = None


def served_model(booster, manifest: dict[str, Any], cutoff: float, where: str) -> ServedModel:
    """A booster and its manifest, checked against each other."""
    booster.set_param({"nthread": 1})  # one request, one thread: workers give the parallelism
    if features.encoding_of(manifest) is None:
        raise PipelineError(
            f"manifest {where} has no feature encoding (written by an older ETL); "
            "re-run the pipeline to serve this model"
        )
    if booster.num_features() != len(manifest["features"]):
        raise PipelineError(
            f"the model expects {booster.num_features()} features, manifest {where} lists {len(manifest['features'])}"
        )
    if not 0.0 <= cutoff <= 1.0:
        raise PipelineError(f"cutoff {cutoff} is not a probability")
    return ServedModel(booster, manifest, cutoff)


def _read(location: str, what: str) -> dict[str, Any]:
    text = s3_storage().read_text(location)
    if text is None:
        raise PipelineError(f"the served model's {what} {location} does not exist")
    return json.loads(text)


def model_fn(model_dir: str | os.PathLike) -> ServedModel:
    """The booster SageMaker extracted to ``model_dir``; the manifest and the cutoff from the model's
    environment (a cutoff given, else the one the run recorded)."""
    manifest_location = os.environ[MANIFEST_VARIABLE]
    if os.environ.get(CUTOFF_VARIABLE):
        cutoff = float(os.environ[CUTOFF_VARIABLE])
    elif os.environ.get(DECISION_VARIABLE):
        cutoff = float(_read(os.environ[DECISION_VARIABLE], "decision (record it with notebook 03)")["cutoff"])
    else:
        raise PipelineError(f"the served model's environment names no {CUTOFF_VARIABLE} or {DECISION_VARIABLE}")
    booster = training.load_model_dir(model_dir)
    return served_model(booster, _read(manifest_location, "feature manifest"), cutoff, manifest_location)


def request_custom_attributes() -> str | None:
    """SageMaker's custom attributes of the request being answered: the container calls the script
    inside its Flask worker's request (row SM-SCRIPT-HEADERS), as the local endpoint does."""
    import flask

    return flask.request.headers.get(CUSTOM_ATTRIBUTES_HEADER) if flask.has_request_context() else None


def media_type(header: str) -> tuple[str, dict[str, str]]:
    kind, *parameters = [part.strip() for part in (header or "").split(";")]
    options = dict(p.split("=", 1) for p in parameters if "=" in p)
    return kind.lower(), {k.strip().lower(): v.strip().strip('"').lower() for k, v in options.items()}


def _explain_attribute(attributes: str | None) -> str | None:
    """The value of ``explain=K`` among the custom attributes (pairs split by ``,`` or ``;``)."""
    for pair in (attributes or "").replace(";", ",").split(","):
        key, _, value = pair.partition("=")
        if key.strip().lower() == "explain":
            return value.strip()
    return None


def input_fn(body: str | bytes, content_type: str) -> Request | Answer:
    """The body as numeric rows or raw records (``Answer`` 415 when it is neither)."""
    kind, options = media_type(content_type)
    try:
        text = body if isinstance(body, str) else body.decode(options.get("charset", "utf-8"))
    except (UnicodeDecodeError, LookupError) as exc:
        return Answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"body is not {options.get('charset', 'utf-8')} text: {exc}")
    explain_value = _explain_attribute(request_custom_attributes())
    if not text.strip():
        return Answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "empty body: send at least one row")
    if kind == "text/csv" and options.get("header") == "present":
        return Request(records=list(csv.DictReader(io.StringIO(text))), explain=explain_value)
    if kind == "text/csv":
        try:
            rows = [[float(value) for value in line.split(",")] for line in text.splitlines() if line.strip()]
        except ValueError as exc:
            return Answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"CSV body is not numeric: {exc}")
        return Request(rows=rows, explain=explain_value)
    if kind == "application/json":
        return _json_request(text, explain_value)
    return Answer(
        HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
        f"content type {kind or '(none)'!r} is not supported; send text/csv or application/json",
    )


def _json_request(text: str, explain_value: str | None) -> Request | Answer:
    try:
        document = json.loads(text)
    except ValueError as exc:
        return Answer(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, f"body is not JSON: {exc}")
    instances = document.get("instances") if isinstance(document, dict) else document
    if not isinstance(instances, list):
        return Answer(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, 'JSON body must be {"instances": [[...], ...]} or a list of rows'
        )
    rows = [i.get("features") if isinstance(i, dict) else i for i in instances]
    if not all(
        isinstance(r, list) and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r) for r in rows
    ):
        return Answer(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE, 'each instance must be a list of numbers or {"features": [numbers]}'
        )
    return Request(rows=rows, explain=explain_value)


def explain_count(value: str | None, served: ServedModel) -> int | Answer | None:
    """K of ``explain=K``: 1 up to the model's raw columns."""
    if value is None:
        return None
    columns = len(explain.reason_columns(served.manifest))
    if not value.isdecimal() or not value.isascii() or not 1 <= int(value) <= columns:
        return Answer(HTTPStatus.BAD_REQUEST, f"custom attribute explain={value!r}: ask for 1 to {columns} reasons")
    return int(value)


def feature_matrix(request: Request, served: ServedModel):
    """The request's rows as a float32 matrix (``Answer`` 400 for a wrong width or missing columns)."""
    import numpy as np

    if request.records is not None:
        try:
            return features.encode_records(
                features.encoding_of(served.manifest), request.records, source="request body"
            )
        except DataValidationError as exc:
            status = HTTPStatus.BAD_REQUEST if isinstance(exc, MissingColumns) else HTTPStatus.UNSUPPORTED_MEDIA_TYPE
            return Answer(status, str(exc))
    for number, row in enumerate(request.rows, start=1):
        if len(row) != served.n_features:
            return Answer(
                HTTPStatus.BAD_REQUEST, f"row {number} has {len(row)} features; the model expects {served.n_features}"
            )
    return np.asarray(request.rows, dtype=np.float32)


def predict_fn(request: Request | Answer, served: ServedModel) -> Prediction | Answer:
    """Probabilities; with ``explain=K`` also the decisions and the K largest reasons."""
    if isinstance(request, Answer):
        return request
    count = explain_count(request.explain, served)
    matrix = feature_matrix(request, served)
    for refused in (count, matrix):
        if isinstance(refused, Answer):
            return refused
    scores = served.predict(matrix)
    if not count or not scores:
        return Prediction(scores)
    per_column, _ = explain.contributions(served.booster, matrix, served.manifest)
    reasons = explain.top_reasons(per_column, explain.reason_columns(served.manifest), count)
    return Prediction(
        scores,
        reasons,
        [score > served.cutoff for score in scores],
        lambda: decisions.decided(served.booster, matrix, served.manifest, served.cutoff, count, per_column),
    )


def choose_output(accept: str | None) -> str | Answer:
    """The first supported type of the Accept header."""
    for part in (accept or "text/csv").split(","):
        kind, _ = media_type(part)
        if kind in ("*/*", "text/*"):
            return "text/csv"
        if kind == "application/*":
            return "application/json"
        if kind in ACCEPTED_OUTPUTS:
            return kind
    return Answer(
        HTTPStatus.NOT_ACCEPTABLE, f"Accept {accept!r} is not supported; ask for one of {', '.join(ACCEPTED_OUTPUTS)}"
    )


def output_fn(prediction: Prediction | Answer, accept: str) -> tuple[str, str] | Answer:
    """The answer in the Accept type: CSV one line per row (the probability; with reasons the columns
    of a score file: score, decision, reason_i, contribution_i), JSON ``{"predictions": [...]}`` or
    JSON Lines, one object per row."""
    if isinstance(prediction, Answer):
        return prediction
    kind = choose_output(accept)
    if isinstance(kind, Answer):
        return kind
    if prediction.reasons is None:
        rows: list[dict[str, Any]] = [{"score": score} for score in prediction.scores]
    else:
        rows = [
            {"score": score, "decision": decision, "reasons": why}
            for score, decision, why in zip(prediction.scores, prediction.decisions, prediction.reasons)
        ]
    if kind == "text/csv":
        if prediction.columns is None:
            return "".join(f"{score!r}\n" for score in prediction.scores), kind
        return "".join(",".join(str(v) for v in row) + "\n" for row in zip(*prediction.columns().values())), kind
    if kind == "application/jsonlines":
        return "".join(json.dumps(row) + "\n" for row in rows), kind
    return json.dumps({"predictions": rows}), kind
