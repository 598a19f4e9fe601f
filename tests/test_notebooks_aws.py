"""Notebooks 01 and 02, run headlessly with the aws backend against a moto server on loopback."""

import json

import boto3
import nbformat
import papermill
import pytest
import strict_aws
from helpers import ROOT, create_account_resources, fake_aws_credentials

from churn_pipeline import config
from churn_pipeline.deployments import free_port


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


def _run_notebooks(folder, run_id, synthetic_csv):
    params = config.load(
        ROOT / "parameters" / "dev.yaml", {"run_id": run_id, "data": str(synthetic_csv), "wait_for_execution": False}
    )
    out = folder / "executed" / run_id
    out.mkdir(parents=True)
    for name in ("01-etl-setup.ipynb", "02-train-workflow.ipynb"):
        papermill.execute_notebook(
            str(ROOT / "notebooks" / name),
            str(out / name),
            parameters=params,
            cwd=str(ROOT / "notebooks"),
            kernel_name="python3",
            progress_bar=False,
        )
    nbformat.validate(nbformat.read(out / "02-train-workflow.ipynb", as_version=4))
    return (out / "01-etl-setup.ipynb").read_text() + (out / "02-train-workflow.ipynb").read_text()


def test_two_builds_in_a_row_update_in_place_and_publish_no_new_version(moto_server, synthetic_csv):
    """Notebooks 01 and 02 twice (two run ids, same parameters), as two CodeBuild builds would."""
    first = _run_notebooks(moto_server, "moto-run-1", synthetic_csv)
    assert "execution moto-run-1: RUNNING" in first
    assert "ETL job churn-dev-etl: created" in first

    second = _run_notebooks(moto_server, "moto-run-2", synthetic_csv)
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
