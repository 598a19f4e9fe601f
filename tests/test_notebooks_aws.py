"""Notebooks 01 and 02, run headlessly with the aws backend against a moto server on loopback."""

import json

import boto3
import nbformat
import papermill
import pytest

from churn_pipeline import config
from churn_pipeline.deployments import free_port

import strict_aws
from conftest import ROOT, create_account_resources, fake_aws_credentials


@pytest.fixture
def moto_server(monkeypatch, isolated):
    from moto.server import ThreadedMotoServer

    strict_aws.apply(monkeypatch)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    fake_aws_credentials(monkeypatch, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
    create_account_resources(monkeypatch)
    yield isolated
    server.stop()


def test_notebooks_01_and_02_deploy_and_start_the_execution(moto_server, synthetic_csv):
    params = config.load(ROOT / "parameters" / "dev.yaml", {"run_id": "moto-run", "data": str(synthetic_csv),
                                                             "wait_for_execution": False})
    out = moto_server / "executed"
    out.mkdir()
    for name in ("01-etl-setup.ipynb", "02-train-workflow.ipynb"):
        papermill.execute_notebook(str(ROOT / "notebooks" / name), str(out / name), parameters=params,
                                   cwd=str(ROOT / "notebooks"), kernel_name="python3", progress_bar=False)
    text = (out / "02-train-workflow.ipynb").read_text()
    assert "execution moto-run: RUNNING" in text
    nbformat.validate(nbformat.read(out / "02-train-workflow.ipynb", as_version=4))

    sfn = boto3.client("stepfunctions")
    machine = sfn.list_state_machines()["stateMachines"][0]
    assert machine["name"] == "churn-dev-training-pipeline"
    executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    assert [e["name"] for e in executions] == ["moto-run"]
    artifacts = moto_server / "artifacts" / "moto-run"
    run_state = json.loads((artifacts / "run.json").read_text())
    deployed = sfn.describe_state_machine(stateMachineArn=run_state["state_machine"]["version_arn"])["definition"]
    assert deployed == (artifacts / "statemachine.json").read_text()
    assert run_state["glue_job"]["outcome"] == "created"
    functions = {f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]}
    assert functions == {"churn-dev-query-training-status", "churn-dev-update-model-registry"}
