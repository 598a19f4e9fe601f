"""Local blue/green deploys, a failing deploy that never takes traffic, rollback, history."""

import json
import urllib.error
import urllib.request

import pytest
from helpers import make_record

from churn_pipeline import cli, config, export, names, training
from churn_pipeline.backends.local import LocalBackend
from churn_pipeline.deployments import LocalEndpoints, free_port
from churn_pipeline.etl import job as etl_job
from churn_pipeline.workspace import process_alive as _alive


@pytest.fixture(scope="module")
def trained(spark, synthetic_csv, tmp_path_factory):
    """Two models that answer differently, with their manifest."""
    out = tmp_path_factory.mktemp("versions")
    etl_job.run_etl(spark, str(synthetic_csv), str(out / "etl"))
    archives = {}
    for name, rounds in (("small", 5), ("large", 60)):
        booster, _ = training.train(
            out / "etl" / "train",
            out / "etl" / "validation",
            training.hyperparameters_from(dict(config.DEFAULTS, num_round=rounds)),
        )
        archives[name] = training.save_model_archive(booster, out / name / "model.tar.gz")
    return archives, out / "etl" / "manifest.json", training.read_channel(out / "etl" / "test")[0][:3]


def register(home, run_id, archive, manifest_text):
    backend = LocalBackend(None, home)
    prefix = f"s3://churn-pipeline-local/churn/{run_id}"
    model_uri = f"{prefix}/models/churn-local-{run_id}/output/model.tar.gz"
    backend.store.put(model_uri, archive.read_bytes())
    backend.store.put(f"{prefix}/etl/manifest.json", manifest_text.encode())
    record = make_record(run_id, model_name=f"churn-local-{run_id}", model_data_url=model_uri)
    backend.registry(names.registry_table(config.DEFAULTS)).register(record)  # the one deploy reads
    path = home / f"{run_id}-parameters.json"
    path.write_text(json.dumps(export.deploy_parameters(record, config.DEFAULTS, "s3://b/churn/test")))
    return str(path)


def predict(port, rows):
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/invocations", data=body, headers={"Content-Type": "text/csv"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return [float(x) for x in response.read().split()]


def test_blue_green_deploy_failure_and_rollback(isolated, trained, capsys):
    archives, manifest, rows = trained
    home = isolated / "home"
    manifest_text = manifest.read_text()
    v1 = register(home, "v1", archives["small"], manifest_text)
    v2 = register(home, "v2", archives["large"], manifest_text)
    broken_manifest = json.loads(manifest_text)
    broken_manifest["features"] = broken_manifest["features"][:5]
    v3 = register(home, "v3", archives["large"], json.dumps(broken_manifest))
    port = free_port()
    endpoints = LocalEndpoints(home)
    try:
        assert cli.main(["deploy", "--parameters", v1, "--environment", "staging", "--port", str(port)]) == 0
        assert f"takes traffic on http://127.0.0.1:{port}" in capsys.readouterr().out
        small = predict(port, rows)
        first = endpoints.store.active("staging")

        assert cli.main(["deploy", "--parameters", v2, "--environment", "staging"]) == 0
        large = predict(port, rows)
        assert large != small
        assert not _alive(first.pid)  # the old version's server is stopped once traffic moved

        assert cli.main(["deploy", "--parameters", v3, "--environment", "staging"]) == 2
        assert "never answered /ping; traffic stays where it was" in capsys.readouterr().err
        assert predict(port, rows) == large

        assert cli.main(["rollback", "--environment", "staging"]) == 0
        assert "rolled back to v1" in capsys.readouterr().out
        assert predict(port, rows) == small

        assert cli.main(["deployments", "--environment", "staging", "--json"]) == 0
        history = json.loads(capsys.readouterr().out)
        assert [(d["version"], d["run_id"], d["status"]) for d in history] == [
            (4, "v1", "active"),
            (3, "v3", "failed"),
            (2, "v2", "rolled-back"),
            (1, "v1", "retired"),
        ]
    finally:
        endpoints.stop("staging")
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
    assert not any(_alive(d.pid) for d in endpoints.store.history("staging"))


def test_a_model_without_a_registry_record_is_refused(isolated, tmp_path, capsys):
    record = make_record("never-registered")
    parameters = tmp_path / "cloudformation_parameters.json"
    parameters.write_text(json.dumps(export.deploy_parameters(record, config.DEFAULTS, "s3://b/churn/test")))
    assert cli.main(["deploy", "--parameters", str(parameters), "--environment", "prod"]) == 2
    assert "only a model that passed the gate is deployed" in capsys.readouterr().err
    assert LocalEndpoints(isolated / "home").store.history("prod") == []


def test_rollback_with_nothing_earlier_says_so(isolated, capsys):
    assert cli.main(["rollback", "--environment", "prod"]) == 2
    assert "nothing is deployed to prod" in capsys.readouterr().err


def test_application_code_calls_a_local_deploy_with_boto3s_sagemaker_runtime_client(isolated, trained, monkeypatch):
    """SM-RUNTIME-INVOKE: InvokeEndpoint (``POST /endpoints/<name>/invocations``) on the router: content type,
    accept and custom attributes pass through; the container's error comes back as ModelError with its status
    and message; an unknown endpoint is a ValidationError."""
    import boto3
    from botocore.exceptions import ClientError

    archives, manifest, rows = trained
    home = isolated / "home"
    parameters = register(home, "rt", archives["small"], manifest.read_text())
    port = free_port()
    endpoints = LocalEndpoints(home)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    runtime = boto3.client("sagemaker-runtime", region_name="eu-west-1", endpoint_url=f"http://127.0.0.1:{port}")
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    try:
        assert cli.main(["deploy", "--parameters", parameters, "--environment", "prod", "--port", str(port)]) == 0
        answer = runtime.invoke_endpoint(EndpointName="prod", Body=body, ContentType="text/csv")
        assert answer["ContentType"] == "text/csv; charset=utf-8" and answer["InvokedProductionVariant"] == "AllTraffic"
        assert [float(v) for v in answer["Body"].read().decode().split()] == pytest.approx(predict(port, rows))

        explained = runtime.invoke_endpoint(
            EndpointName="prod",
            Body=body,
            ContentType="text/csv",
            Accept="application/json",
            CustomAttributes="explain=2",
        )
        predictions = json.loads(explained["Body"].read())["predictions"]
        assert [len(p["reasons"]) for p in predictions] == [2] * len(rows)
        assert all(isinstance(p["decision"], bool) and "State_" not in p["reasons"][0]["column"] for p in predictions)

        with pytest.raises(ClientError) as error:
            runtime.invoke_endpoint(EndpointName="prod", Body="1,2,3", ContentType="text/csv")
        assert error.value.response["Error"]["Code"] == "ModelError"
        assert error.value.response["OriginalStatusCode"] == 400
        assert "the model expects" in error.value.response["OriginalMessage"]
        with pytest.raises(ClientError) as error:
            runtime.invoke_endpoint(EndpointName="staging", Body=body, ContentType="text/csv")
        assert error.value.response["Error"]["Code"] == "ValidationError"
        assert "Endpoint staging of account" in error.value.response["Error"]["Message"]
    finally:
        endpoints.stop("prod")
