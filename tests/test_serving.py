"""The local endpoint (the endpoint script run as the container runs it) on a server started on loopback."""

import csv
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import psutil
import pytest
import xgboost as xgb
from helpers import CHURNER, DECISION, GOOD, HEADER, ROOT, make_record

from churn_pipeline import inference, serving, training
from churn_pipeline.deployments import free_port
from churn_pipeline.features import ENCODING_KEY, LEGACY_ENCODING_KEY


@pytest.fixture(scope="module")
def model(small_model):
    return small_model


@pytest.fixture(scope="module")
def endpoint(model):
    archive, manifest, _ = model
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "churn_pipeline.cli",
            "serve",
            "--model",
            str(archive),
            "--manifest",
            str(manifest),
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            if urllib.request.urlopen(f"{url}/ping", timeout=1).status == 200:
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise AssertionError(process.stdout.read().decode())
    yield url, process
    process.terminate()
    process.wait(20)


CSV = "text/csv; charset=utf-8"  # Flask (the container's too) names the charset of a text/* answer


def explained(served, matrix, count):
    """What the endpoint script answers for ``matrix`` with explain=count, as rows."""
    prediction = inference.predict_fn(inference.Request(rows=matrix.tolist(), explain=str(count)), served)
    return [
        {"score": s, "decision": d, "reasons": r}
        for s, d, r in zip(prediction.scores, prediction.decisions, prediction.reasons)
    ]


def post(url, body, content_type="text/csv", accept=None, attributes=None):
    headers = {
        "Content-Type": content_type,
        **({"Accept": accept} if accept else {}),
        **({"X-Amzn-SageMaker-Custom-Attributes": attributes} if attributes else {}),
    }
    request = urllib.request.Request(f"{url}/invocations", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def test_ping_and_workers(endpoint):
    url, process = endpoint
    assert urllib.request.urlopen(f"{url}/ping").status == 200
    workers = psutil.Process(process.pid).children(recursive=True)
    assert len([w for w in workers if "python" in w.name()]) >= 2


def test_csv_predictions_equal_in_process_predictions(endpoint, model):
    url, _ = endpoint
    archive, manifest, etl_out = model
    features, _ = training.read_channel(etl_out / "test")
    rows = features[:50]
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()
    status, kind, text = post(url, body)
    assert (status, kind) == (200, CSV)
    served = [float(line) for line in text.splitlines()]
    in_process = serving.load_served_model(archive, manifest)
    assert served == in_process.predict(rows)
    assert np.allclose(served, training.load_model_archive(archive).predict(xgb.DMatrix(rows)), atol=1e-6)


def test_json_in_and_out(endpoint, model):
    url, _ = endpoint
    features, _ = training.read_channel(model[2] / "test")
    rows = features[:3].tolist()
    status, kind, text = post(
        url, json.dumps({"instances": [{"features": r} for r in rows]}).encode(), "application/json", "application/json"
    )
    assert (status, kind) == (200, "application/json")
    scores = [p["score"] for p in json.loads(text)["predictions"]]
    status, _, csv_text = post(url, json.dumps(rows).encode(), "application/json", "text/csv")
    assert scores == [float(x) for x in csv_text.split()]


def test_raw_records_are_scored_with_the_training_transform(endpoint, model, synthetic_csv):
    from churn_pipeline import features

    url, _ = endpoint
    lines = synthetic_csv.read_text().splitlines()[:6]
    status, _, raw_scores = post(url, "\n".join(lines).encode(), "text/csv; header=present")
    assert status == 200 and len(raw_scores.split()) == 5
    transform = features.encoding_of(json.loads(model[1].read_text()))
    encoded = features.encode_records(transform, csv.DictReader(io.StringIO("\n".join(lines))))
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in encoded).encode()
    assert post(url, body)[2] == raw_scores


@pytest.mark.parametrize(
    "body, content_type, accept, status, message",
    [
        (b"1,2,x\n", "text/csv", None, 415, "not numeric"),
        (b"{not json", "application/json", None, 415, "not JSON"),
        (b"1,2", "application/x-npy", None, 415, "not supported"),
        (b"", "text/csv", None, 415, "empty body"),
        (b"1,2,3\n", "text/csv", None, 400, "has 3 features; the model expects"),
        (b"State,Churn?\nKS,False.\n", "text/csv; header=present", None, 400, "missing columns"),
        (None, "text/csv", "image/png", 406, "not supported"),  # a good row: Accept reaches only output_fn
    ],
)
def test_bad_requests_get_the_containers_status_and_the_server_keeps_serving(
    endpoint, model, body, content_type, accept, status, message
):
    url, _ = endpoint
    if body is None:
        width = len(json.loads(model[1].read_text())["features"])
        body = ",".join(["0"] * width).encode()
    got, _, text = post(url, body, content_type, accept)
    assert got == status and message in text
    assert urllib.request.urlopen(f"{url}/ping").status == 200


def test_a_body_over_6_mib_is_refused(endpoint):
    url, _ = endpoint
    status, _, text = post(url, b"0," * (3 * 1024 * 1024 + 10))
    assert status == 413 and "limit" in text
    assert urllib.request.urlopen(f"{url}/ping").status == 200


def test_reasons_with_the_explain_custom_attribute(endpoint, model, synthetic_csv):
    """explain=K (SM-SCRIPT-HEADERS): JSON with probability, decision and K reasons per row (raw columns),
    or CSV with the columns of a score file; without it the answer is unchanged; a bad K is refused."""
    from churn_pipeline import explain

    url, _ = endpoint
    archive, manifest, _ = model
    raw = "\n".join(synthetic_csv.read_text().splitlines()[:4]).encode()
    csv_kind = "text/csv; header=present"
    status, _, plain = post(url, raw, csv_kind)
    status, kind, text = post(url, raw, csv_kind, "application/json", attributes="explain=3")
    assert (status, kind) == (200, "application/json")
    rows = json.loads(text)["predictions"]
    assert [r["score"] for r in rows] == [float(x) for x in plain.split()]
    assert [r["decision"] for r in rows] == [r["score"] > 0.5 for r in rows]
    columns = explain.reason_columns(json.loads(manifest.read_text()))
    assert all(len(r["reasons"]) == 3 and {x["column"] for x in r["reasons"]} <= set(columns) for r in rows)
    status, kind, text = post(url, raw, csv_kind, "application/jsonlines", "trace=1; explain=1")
    assert (status, kind) == (200, "application/jsonlines") and len(text.splitlines()) == 3
    status, kind, text = post(url, raw, csv_kind, attributes="explain=2")  # no Accept: the model's default, CSV
    lines = [line.split(",") for line in text.splitlines()]
    assert (status, kind) == (200, CSV) and all(len(line) == 2 + 2 * 2 for line in lines)
    assert [int(line[1]) for line in lines] == [int(r["decision"]) for r in rows]
    assert [line[2] for line in lines] == [r["reasons"][0]["column"] for r in rows]
    assert post(url, raw, csv_kind, attributes="explain=0")[0] == 400
    assert post(url, raw, csv_kind, attributes="explain=many")[0] == 400


def test_a_served_model_decides_at_its_runs_recorded_cutoff(model, tmp_path):
    """`serve --model RUN_ID` (what a deploy starts) loads the cutoff notebook 03 recorded; `--cutoff`
    overrides it; a model without a decision decides at 0.5 and says so."""

    from churn_pipeline.backends.local import LocalBackend
    from churn_pipeline.registry import SqliteRegistry

    archive, manifest, _ = model
    backend = LocalBackend(None, tmp_path / "home")
    model_uri = "s3://churn-pipeline-local/churn/run-1/models/job/output/model.tar.gz"
    backend.store.stage(model_uri, str(archive))
    backend.store.stage("s3://churn-pipeline-local/churn/run-1/etl/manifest.json", str(manifest))
    registry = SqliteRegistry(tmp_path / "registry.db")
    registry.register(make_record(model_data_url=model_uri))
    undecided = serving.resolve_model("run-1", backend, registry)
    assert undecided.cutoff == 0.5 and "no cost-chosen cutoff" in undecided.cutoff_origin
    registry.record_decision("run-1", DECISION)
    source = serving.resolve_model("run-1", backend, registry)
    assert source.cutoff == DECISION["cutoff"] and "chosen by cost in run run-1" in source.cutoff_origin
    assert serving.resolve_model(model_uri, backend, registry).cutoff == DECISION["cutoff"]  # by its URI too
    assert serving.resolve_model("run-1", backend, registry, cutoff=0.9).cutoff == 0.9
    served = source.load()
    features, _ = training.read_channel(sorted((model[2] / "test").glob("part-*.csv"))[0])
    rows = explained(served, features, 1)
    assert [row["decision"] for row in rows] == [row["score"] > DECISION["cutoff"] for row in rows]
    between = [row for row in rows if DECISION["cutoff"] < row["score"] <= 0.5]
    assert between and all(row["decision"] for row in between)  # offered here, not at the default 0.5


def test_a_feature_manifest_written_before_the_encoding_had_its_name_is_served_the_same(model, tmp_path):
    """Manifests of earlier runs call the encoding ``transform``: their models are served and explained alike."""
    archive, manifest, _ = model
    legacy = json.loads(manifest.read_text())
    legacy[LEGACY_ENCODING_KEY] = legacy.pop(ENCODING_KEY)
    (tmp_path / "manifest.json").write_text(json.dumps(legacy))
    current = serving.load_served_model(archive, manifest)
    older = serving.load_served_model(archive, tmp_path / "manifest.json")
    body = "\n".join([HEADER, GOOD, CHURNER]).encode()
    records = list(csv.DictReader(io.StringIO(body.decode())))
    matrix = inference.feature_matrix(inference.Request(records=records), current)
    assert np.array_equal(inference.feature_matrix(inference.Request(records=records), older), matrix)
    assert explained(older, matrix, 2) == explained(current, matrix, 2)


def test_the_host_calls_a_script_as_the_container_does(tmp_path):
    """SM-SCRIPT-ERRORS, SM-SCRIPT-ACCEPT: the content type (ContentType, Content-Type, else JSON), the
    accept (the model's default for none or */*) and the body (text for JSON and CSV only) handed over as
    sagemaker-containers hands them; a tuple answer is a 200, a WSGI answer keeps its status, an
    exception is a 500 and the next request is served."""
    from http import HTTPStatus
    from types import SimpleNamespace

    seen = []

    def output_fn(prediction, accept):
        if prediction == b"fail":
            raise ValueError("a fault of the code")
        if prediction == "refuse":
            return inference.Answer(HTTPStatus.BAD_REQUEST, "refused")
        return json.dumps(seen[-1] + [accept]), "application/json"

    script = SimpleNamespace(
        model_fn=lambda model_dir: "model",
        input_fn=lambda body, content_type: seen.append([type(body).__name__, content_type]) or body,
        predict_fn=lambda data, model: data,
        output_fn=output_fn,
    )
    client = serving.host_app(script, tmp_path, "text/csv").test_client()

    def call(headers, body=b"x"):
        answer = client.post("/invocations", data=body, headers=headers)
        return answer.status_code, answer.get_json() if answer.is_json else answer.data

    assert call({}) == (200, ["str", "application/json", "text/csv"])
    assert call({"Content-Type": "text/csv", "Accept": "*/*"}) == (200, ["str", "text/csv", "text/csv"])
    assert call({"ContentType": "text/csv", "Content-Type": "application/json"})[1][1] == "text/csv"
    assert call({"Content-Type": "text/csv; header=present", "Accept": "application/jsonlines"}) == (
        200,
        ["bytes", "text/csv; header=present", "application/jsonlines"],
    )
    assert call({"Content-Type": "application/x-npy"}, b"fail")[0] == 500
    assert call({}, b"refuse") == (400, b"refused\n") and call({})[0] == 200


def test_answered_requests_are_captured_in_sagemakers_data_capture_format(model, tmp_path, monkeypatch):
    """SM-DATA-CAPTURE: with capture at 100 %, each answered request is one JSON line under
    <folder>/<endpoint>/<variant>/yyyy/mm/dd/hh/: input and output with their content types, data and
    encoding, an event id and time, the caller's inference id; a refused request is not captured; at 0 %
    nothing is; a percentage out of range is refused."""
    import tarfile

    from churn_pipeline.capture import CaptureWriter
    from churn_pipeline.errors import PipelineError

    archive, manifest, etl = model
    with tarfile.open(archive) as unpacked:
        unpacked.extractall(tmp_path / "model", filter="data")
    source = serving.ModelSource(archive, manifest, 0.3, "given")
    for name, value in source.environment().items():
        monkeypatch.setenv(name, value)
    features, _ = training.read_channel(etl / "test")
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in features[:3])
    writer = CaptureWriter(tmp_path / "capture", "staging", 100)
    client = serving.host_app(serving.endpoint_script(), tmp_path / "model", "text/csv", writer).test_client()
    answered = client.post(
        "/invocations", data=rows, headers={"Content-Type": "text/csv", "X-Amzn-SageMaker-Inference-Id": "c-1"}
    )
    assert answered.status_code == 200
    assert client.post("/invocations", data="1,2", headers={"Content-Type": "text/csv"}).status_code == 400
    (written,) = list((tmp_path / "capture").rglob("*.jsonl"))
    assert written.relative_to(tmp_path / "capture").parts[:2] == ("staging", "AllTraffic")
    assert len(written.relative_to(tmp_path / "capture").parts) == 7  # endpoint, variant, yyyy, mm, dd, hh, file
    (line,) = [json.loads(text) for text in written.read_text().splitlines()]
    assert line["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv", "mode": "INPUT", "data": rows, "encoding": "CSV"
    }  # fmt: skip
    output = line["captureData"]["endpointOutput"]
    assert (output["mode"], output["encoding"], output["data"]) == ("OUTPUT", "CSV", answered.get_data(as_text=True))
    assert line["eventMetadata"]["inferenceId"] == "c-1" and line["eventVersion"] == "0"
    assert line["eventMetadata"]["inferenceTime"].endswith("Z") and len(line["eventMetadata"]["eventId"]) == 36
    quiet = CaptureWriter(tmp_path / "none", "staging", 0)
    client = serving.host_app(serving.endpoint_script(), tmp_path / "model", "text/csv", quiet).test_client()
    assert client.post("/invocations", data=rows, headers={"Content-Type": "text/csv"}).status_code == 200
    assert not (tmp_path / "none").exists()
    with pytest.raises(PipelineError, match="capture percentage 150"):
        CaptureWriter(tmp_path, "staging", 150)
    from churn_pipeline.capture import captured_data

    assert captured_data("application/json", b'{"a": 1}', "INPUT")["encoding"] == "JSON"
    binary = captured_data("application/x-npy", b"\x93NUMPY", "INPUT")
    assert (binary["encoding"], binary["data"]) == ("BASE64", "k05VTVBZ")
