"""The local endpoint against SageMaker's inference contract, on a server started on loopback."""

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

from churn_pipeline import config, etl, serving, training
from churn_pipeline.deployments import free_port

from conftest import ROOT


@pytest.fixture(scope="module")
def model(spark, synthetic_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("served")
    etl.transform(spark, str(synthetic_csv), str(out / "etl"))
    booster, _ = training.train(out / "etl" / "train", out / "etl" / "validation",
                                training.hyperparameters_from(dict(config.DEFAULTS, num_round=30)))
    archive = training.save_model_archive(booster, out / "model.tar.gz")
    return archive, out / "etl" / "manifest.json", out / "etl"


@pytest.fixture(scope="module")
def endpoint(model):
    archive, manifest, _ = model
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "churn_pipeline.cli", "serve", "--model", str(archive),
                                "--manifest", str(manifest), "--port", str(port), "--workers", "2"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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


def post(url, body, content_type="text/csv", accept=None):
    headers = {"Content-Type": content_type, **({"Accept": accept} if accept else {})}
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
    assert (status, kind) == (200, "text/csv")
    served = [float(line) for line in text.splitlines()]
    bundle = serving.load_bundle(archive, manifest)
    assert served == bundle.predict(rows)
    assert np.allclose(served, training.load_model_archive(archive).predict(xgb.DMatrix(rows)), atol=1e-6)


def test_json_in_and_out(endpoint, model):
    url, _ = endpoint
    features, _ = training.read_channel(model[2] / "test")
    rows = features[:3].tolist()
    status, kind, text = post(url, json.dumps({"instances": [{"features": r} for r in rows]}).encode(),
                              "application/json", "application/json")
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
    transform = json.loads(model[1].read_text())["transform"]
    encoded = features.encode_records(transform, csv.DictReader(io.StringIO("\n".join(lines))))
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in encoded).encode()
    assert post(url, body)[2] == raw_scores


@pytest.mark.parametrize("body, content_type, accept, status, message", [
    (b"1,2,x\n", "text/csv", None, 415, "not numeric"),
    (b"{not json", "application/json", None, 415, "not JSON"),
    (b"1,2", "application/x-npy", None, 415, "not supported"),
    (b"", "text/csv", None, 415, "empty body"),
    (b"1,2,3\n", "text/csv", None, 400, "has 3 features; the model expects"),
    (b"State,Churn?\nKS,False.\n", "text/csv; header=present", None, 400, "missing columns"),
    (b"1,2,3\n", "text/csv", "image/png", 406, "not supported"),
])
def test_bad_requests_get_the_containers_status_and_the_server_keeps_serving(endpoint, body, content_type,
                                                                              accept, status, message):
    url, _ = endpoint
    got, _, text = post(url, body, content_type, accept)
    assert got == status and message in text
    assert urllib.request.urlopen(f"{url}/ping").status == 200


def test_a_body_over_6_mib_is_refused(endpoint):
    url, _ = endpoint
    status, _, text = post(url, b"0," * (3 * 1024 * 1024 + 10))
    assert status == 413 and "limit" in text
    assert urllib.request.urlopen(f"{url}/ping").status == 200
