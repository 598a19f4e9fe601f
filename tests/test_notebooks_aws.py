"""Notebooks 01 and 02, run headlessly with the aws backend against a moto server on loopback."""

import json
import urllib.request

import boto3
import nbformat
import pytest
import strict_aws
import yaml
from helpers import ROOT, churn_pipeline_calls, create_account_resources, fake_aws_credentials

from churn_pipeline import cli, config, runner
from churn_pipeline.deployments import free_port
from churn_pipeline.notebooks import NOTEBOOKS


@pytest.fixture
def moto_server(monkeypatch, isolated):
    from moto.server import ThreadedMotoServer

    strict_aws.apply(monkeypatch)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    # moto keeps its state in the process, not in the server: each test starts from an empty account
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/moto-api/reset", method="POST"))
    fake_aws_credentials(monkeypatch, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    create_account_resources(monkeypatch)
    yield isolated
    server.stop()


def _run_notebooks(run_id, synthetic_csv):
    """Notebooks 01 and 02 of a build, run by the runner as ``churn-pipeline run`` runs them."""
    params = config.load(
        ROOT / "parameters" / "dev.yaml", {"run_id": run_id, "data": str(synthetic_csv), "wait_for_execution": False}
    )
    result = runner.run_notebooks(params, progress=False, notebooks=NOTEBOOKS[:2])
    assert result.succeeded, result.error
    out = result.artifacts_dir
    nbformat.validate(nbformat.read(out / "02-train-workflow.ipynb", as_version=4))
    return (out / "01-etl-setup.ipynb").read_text() + (out / "02-train-workflow.ipynb").read_text()


def test_two_builds_in_a_row_update_in_place_and_publish_no_new_version(moto_server, synthetic_csv):
    """Notebooks 01 and 02 twice (two run ids, same parameters), as two CodeBuild builds would."""
    first = _run_notebooks("moto-run-1", synthetic_csv)
    assert "execution moto-run-1: RUNNING" in first
    assert "ETL job churn-dev-etl: created" in first

    second = _run_notebooks("moto-run-2", synthetic_csv)
    assert "execution moto-run-2: RUNNING" in second
    assert "ETL job churn-dev-etl: unchanged" in second
    assert "function churn-dev-query-training-status: unchanged" in second
    assert "state machine churn-dev-training-pipeline: unchanged" in second

    sfn = boto3.client("stepfunctions")
    machines = sfn.list_state_machines()["stateMachines"]
    assert [m["name"] for m in machines] == ["churn-dev-training-pipeline"]
    arn = machines[0]["stateMachineArn"]
    assert len(sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]) == 1
    executions = sfn.list_executions(stateMachineArn=arn)["executions"]
    assert sorted(e["name"] for e in executions) == ["moto-run-1", "moto-run-2"]
    functions = {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}
    assert functions == {"churn-dev-query-training-status", "churn-dev-update-model-registry"}
    assert [j["Name"] for j in boto3.client("glue").get_jobs()["Jobs"]] == ["churn-dev-etl"]
    for run_id in ("moto-run-1", "moto-run-2"):
        run_state = json.loads((moto_server / "artifacts" / run_id / "run.json").read_text())
        deployed = sfn.describe_state_machine(stateMachineArn=run_state["state_machine"]["version_arn"])["definition"]
        assert deployed == (moto_server / "artifacts" / run_id / "statemachine.json").read_text()


def test_the_first_build_on_a_fresh_account_passes_doctor_and_creates_what_it_needs(moto_server, capsys):
    """A fresh account holds only what pipeline.yml creates (the five roles, their trust, the registry
    table): no bucket, no job, no function, no state machine. buildspec.yml's commands from pre_build on,
    as far as moto takes them: doctor passes, then the run's notebooks 01 and 02 create the rest."""
    spec = yaml.safe_load((ROOT / "buildspec.yml").read_text())
    doctor, build = churn_pipeline_calls(spec, {"CODEBUILD_BUILD_NUMBER": "1", "TRAINING_DATA": "from-parameters"})
    command = {"pre_build": doctor, "build": build}.get

    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert cli.main(command("pre_build")) == 0
    said = capsys.readouterr().out
    assert "11 of 11 checks passed" in said and "sagemaker-eu-west-1-123456789012 does not exist yet" in said
    assert "the run creates churn-dev-etl" in said

    run = cli.build_parser().parse_args(command("build"))
    params = config.load(run.params, {"run_id": run.run_id, "wait_for_execution": False})  # moto runs no job
    result = runner.run_notebooks(params, progress=not run.quiet, notebooks=NOTEBOOKS[:2])
    assert result.succeeded, result.error
    assert [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]] == ["sagemaker-eu-west-1-123456789012"]
    assert cli.main(command("pre_build")) == 0
    said = capsys.readouterr().out
    assert "is reachable, in eu-west-1, and writable under churn/dev/" in said
    assert "churn-dev-etl, churn-dev-query-training-status, churn-dev-update-model-registry, " in said


def test_dev_and_prod_builds_of_one_push_keep_apart_in_one_bucket(moto_server, synthetic_csv, monkeypatch):
    """Both pipelines follow one branch and number their builds from 1: dev's and prod's build-1 run in one
    account and one bucket. Each writes only under its own folder, and its execution reads only from it."""
    boto3.client("dynamodb").create_table(
        TableName="churn-prod-model-registry",
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    for environment in ("dev", "prod"):
        monkeypatch.setenv("CHURN_PIPELINE_ARTIFACTS", str(moto_server / f"artifacts-{environment}"))
        overrides = {"run_id": "build-1", "data": str(synthetic_csv), "wait_for_execution": False}
        params = config.load(ROOT / "parameters" / f"{environment}.yaml", overrides)
        result = runner.run_notebooks(params, progress=False, notebooks=NOTEBOOKS[:2])
        assert result.succeeded, result.error
    s3 = boto3.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="sagemaker-eu-west-1-123456789012")["Contents"]]
    assert {k.split("/")[1] for k in keys} == {"dev", "prod"} and all(k.startswith("churn/") for k in keys)
    sfn = boto3.client("stepfunctions")
    for machine in sfn.list_state_machines()["stateMachines"]:
        environment = machine["name"].split("-")[1]
        (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
        sent = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
        uris = [v for v in sent.values() if isinstance(v, str) and v.startswith("s3://")]
        assert uris and all(
            u.startswith(f"s3://sagemaker-eu-west-1-123456789012/churn/{environment}/") for u in uris
        ), uris
