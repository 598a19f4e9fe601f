"""The aws backend against moto held to AWS's behaviours by the strict layer (``strict_aws``)."""

import json
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber
from helpers import ROLE_NAMES, ROOT

from churn_pipeline import config, scoring_statemachine, sdk, workflow
from churn_pipeline.backends.aws import normalise_history
from churn_pipeline.backends.local import LocalBackend, asl
from churn_pipeline.errors import ConfigError, ExecutionFailed, PipelineError
from churn_pipeline.etl import job as etl_job
from churn_pipeline.pipeline import deploy as pipeline_deploy
from churn_pipeline.pipeline import execution
from churn_pipeline.s3 import s3_storage

BUCKET = "sagemaker-eu-west-1-123456789012"


def dev_params(**overrides):
    return config.load(ROOT / "parameters" / "dev.yaml", {"wait_for_execution": False, **overrides})


def deploy(params, synthetic_csv):
    run = workflow.start_run(dict(params, data=str(synthetic_csv)))
    workflow.stage_data(run)
    outcomes = {"glue": workflow.deploy_etl_job(run), **workflow.deploy_functions(run)}
    definition = workflow.build_state_machine(run)
    outcomes["state_machine"] = workflow.deploy_state_machine(run, definition)
    history = workflow.execute(run)
    return run, outcomes, history


def test_first_run_creates_every_resource(aws_env, synthetic_csv):
    run, outcomes, history = deploy(dev_params(run_id="first"), synthetic_csv)
    assert set(outcomes.values()) == {"created"}
    assert run.prefix == f"s3://{BUCKET}/churn/dev/first"
    keys = {o["Key"] for o in boto3.client("s3").list_objects_v2(Bucket=BUCKET)["Contents"]}
    assert "churn/dev/first/raw/synthetic.csv" in keys
    code = sorted(k for k in keys if k.startswith("churn/dev/code/"))  # shared by runs, named by content
    assert [k.rsplit("-", 1)[0] for k in code] == [
        "churn/dev/code/churn_pipeline",
        "churn/dev/code/endpoint-source",
        "churn/dev/code/functions",
        "churn/dev/code/glue_etl",
    ]

    job = boto3.client("glue").get_job(JobName="churn-dev-etl")["Job"]
    assert job["GlueVersion"] == "5.0" and job["WorkerType"] == "G.1X" and job["NumberOfWorkers"] == 2
    assert job["Command"]["ScriptLocation"] == f"s3://{BUCKET}/" + next(k for k in code if "glue_etl" in k)
    assert job["DefaultArguments"]["--extra-py-files"] == f"s3://{BUCKET}/" + next(k for k in code if "pipeline" in k)
    assert job["Role"] == "arn:aws:iam::123456789012:role/churn-dev-glue-role"  # stripped of white space

    functions = {f["FunctionName"]: f for f in boto3.client("lambda").list_functions()["Functions"]}
    assert set(functions) == {"churn-dev-query-training-status", "churn-dev-update-model-registry"}
    registry_fn = functions["churn-dev-update-model-registry"]
    assert registry_fn["Environment"]["Variables"] == {"MODEL_REGISTRY_TABLE": "churn-dev-model-registry"}
    assert registry_fn["Runtime"] == "python3.12" and registry_fn["Handler"] == "update_model_registry.handler"

    assert history["status"] == "RUNNING" and history["name"] == "first"
    assert run.state["state_machine"]["version_arn"].endswith(":stateMachine:churn-dev-training-pipeline:1")


def test_the_deployed_definition_is_byte_for_byte_the_local_executors(aws_env, synthetic_csv):
    run, _, _ = deploy(dev_params(run_id="bytes"), synthetic_csv)
    deployed = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=run.state["state_machine"]["version_arn"]
    )["definition"]
    saved = (run.artifacts_dir / "statemachine.json").read_text()
    assert deployed == saved
    # the very text the local executor interprets, mapped onto local runners
    executor = asl.LocalExecutor(saved, LocalBackend(None, aws_env / "local").runners())
    assert sdk.definition_json(executor.definition) == saved


def test_second_run_changes_nothing_and_publishes_no_version(aws_env, synthetic_csv):
    """LAMBDA-CODE-SHA256 SFN-PUBLISH-ONLY-CHANGES SM-S3PREFIX"""
    first, _, _ = deploy(dev_params(run_id="one"), synthetic_csv)
    run, outcomes, _ = deploy(dev_params(run_id="two"), synthetic_csv)
    assert outcomes == {
        "glue": "unchanged",
        "churn-dev-query-training-status": "unchanged",
        "churn-dev-update-model-registry": "unchanged",
        "state_machine": "unchanged",
    }
    assert len(boto3.client("lambda").list_functions()["Functions"]) == 2
    sfn = boto3.client("stepfunctions")
    assert [m["name"] for m in sfn.list_state_machines()["stateMachines"]] == ["churn-dev-training-pipeline"]
    assert run.state["state_machine"]["version_arn"] == first.state["state_machine"]["version_arn"]
    versions = sfn.list_state_machine_versions(stateMachineArn=run.state["state_machine"]["arn"])
    assert len(versions["stateMachineVersions"]) == 1
    assert (run.artifacts_dir / "statemachine.json").read_text() == (
        first.artifacts_dir / "statemachine.json"
    ).read_text()
    executions = sfn.list_executions(stateMachineArn=run.state["state_machine"]["arn"])["executions"]
    assert sorted(e["name"] for e in executions) == ["one", "two"]
    inputs = {
        e["name"]: json.loads(sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in executions
    }
    assert inputs["two"]["DataUri"] == f"s3://{BUCKET}/churn/dev/two/raw/synthetic.csv"
    assert inputs["two"]["TrainUri"] == f"s3://{BUCKET}/churn/dev/two/etl/train/"


def test_a_changed_definition_updates_in_place_and_publishes_one_version(aws_env, synthetic_csv):
    deploy(dev_params(run_id="one"), synthetic_csv)
    run, outcomes, _ = deploy(
        dev_params(run_id="two", accuracy_threshold=0.8, glue_number_of_workers=3, lambda_runtime="python3.11"),
        synthetic_csv,
    )
    assert outcomes == {
        "glue": "updated",
        "churn-dev-query-training-status": "updated",
        "churn-dev-update-model-registry": "updated",
        "state_machine": "updated",
    }
    assert boto3.client("glue").get_job(JobName="churn-dev-etl")["Job"]["NumberOfWorkers"] == 3
    assert run.state["state_machine"]["version_arn"].endswith(":2")
    deployed = boto3.client("stepfunctions").describe_state_machine(
        stateMachineArn=run.state["state_machine"]["version_arn"]
    )["definition"]
    assert deployed == (run.artifacts_dir / "statemachine.json").read_text()


def test_versions_beyond_the_retention_count_are_deleted(aws_env, synthetic_csv):
    """SFN-VERSION-QUOTA"""
    for number, threshold in enumerate((0.81, 0.82, 0.83, 0.84)):
        run, _, _ = deploy(
            dev_params(run_id=f"r{number}", accuracy_threshold=threshold, state_machine_versions_to_keep=2),
            synthetic_csv,
        )
    versions = boto3.client("stepfunctions").list_state_machine_versions(
        stateMachineArn=run.state["state_machine"]["arn"]
    )["stateMachineVersions"]
    assert [v["stateMachineVersionArn"].rsplit(":", 1)[1] for v in versions] == ["4", "3"]
    assert run.state["state_machine"]["versions_deleted"] == 1


def test_a_closed_execution_is_not_started_again_and_says_how_to_go_on(aws_env, synthetic_csv, monkeypatch):
    """SFN-START-NAME"""
    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")
    run, _, history = deploy(dev_params(run_id="closed"), synthetic_csv)
    assert history["status"] == "FAILED"
    with pytest.raises(PipelineError, match=r"ended FAILED in state .+ --resume closed.+ start a new run"):
        workflow.execute(run)
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=run.state["state_machine"]["arn"])[
        "executions"
    ]
    assert [e["name"] for e in executions] == ["closed"]


def test_resume_redrives_the_failed_execution_under_its_own_arn(aws_env, synthetic_csv, monkeypatch):
    """SFN-REDRIVE: resuming calls RedriveExecution (no new execution); a running one is not redrivable."""
    from churn_pipeline.aws_errors import ExecutionNotRedrivable

    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")
    run, _, history = deploy(dev_params(run_id="redrive"), synthetic_csv)
    assert history["status"] == "FAILED"
    run.params["resume"] = True
    workflow.execute(run)
    sfn = boto3.client("stepfunctions")
    assert sfn.describe_execution(executionArn=run.state["execution_arn"])["status"] == "RUNNING"
    assert run.state["redriven"] == 1
    executions = sfn.list_executions(stateMachineArn=run.state["state_machine"]["arn"])["executions"]
    assert [e["name"] for e in executions] == ["redrive"]
    with pytest.raises(ClientError) as refused:
        sfn.redrive_execution(executionArn=run.state["execution_arn"])
    assert ExecutionNotRedrivable.matches(refused.value)


def test_a_retry_of_the_same_run_starts_no_second_execution(aws_env, synthetic_csv):
    """SFN-START-RUNNING-IDEMPOTENT"""
    run, _, _ = deploy(dev_params(run_id="retry"), synthetic_csv)
    workflow.execute(run)
    executions = boto3.client("stepfunctions").list_executions(stateMachineArn=run.state["state_machine"]["arn"])[
        "executions"
    ]
    assert [e["name"] for e in executions] == ["retry"]


def test_glue_errors_other_than_not_found_are_raised(aws_env, synthetic_csv):
    run = workflow.start_run(dict(dev_params(run_id="denied"), data=str(synthetic_csv)))
    glue = boto3.client("glue", region_name="eu-west-1")
    run.backend._clients["glue"] = glue
    with Stubber(glue) as stub:
        stub.add_client_error("get_job", service_error_code="AccessDeniedException", http_status_code=403)
        with pytest.raises(ClientError, match="AccessDenied"):
            workflow.deploy_etl_job(run)


def test_a_failed_execution_shows_the_failing_state_error_and_cause(aws_env, synthetic_csv, monkeypatch):
    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")
    run, _, history = deploy(dev_params(run_id="fails", wait_for_execution=True), synthetic_csv)
    assert history["status"] == "FAILED"
    saved = json.loads((run.artifacts_dir / "execution-history.json").read_text())
    assert saved["failedState"] and saved["error"]
    with pytest.raises(ExecutionFailed) as failure:
        workflow.raise_if_failed(history)
    assert failure.value.state == saved["failedState"] and failure.value.error == saved["error"]


def test_waiting_gives_up_after_the_timeout(aws_env, synthetic_csv, monkeypatch):
    run, _, _ = deploy(dev_params(run_id="slow", execution_timeout_minutes=1), synthetic_csv)
    run.params["wait_for_execution"] = True
    monkeypatch.setattr(execution.time, "monotonic", iter(range(0, 100000, 3600)).__next__)
    monkeypatch.setattr(execution.time, "sleep", lambda seconds: None)
    with pytest.raises(PipelineError, match="still running after 1 minutes"):
        workflow.execute(run)


def test_lambda_update_waits_until_the_function_is_ready(aws_env, synthetic_csv):
    """LAMBDA-UPDATE-IN-PROGRESS"""
    run = workflow.start_run(dict(dev_params(run_id="wait"), data=str(synthetic_csv)))
    functions = boto3.client("lambda", region_name="eu-west-1")
    run.backend._clients["lambda"] = functions
    with Stubber(functions) as stub:
        stub.add_response("get_function_configuration", {"LastUpdateStatus": "InProgress", "State": "Active"})
        stub.add_response("get_function_configuration", {"LastUpdateStatus": "Successful", "State": "Active"})
        pipeline_deploy.time.sleep, saved = (lambda s: None), pipeline_deploy.time.sleep
        try:
            pipeline_deploy.wait_for_function(run, "f")
        finally:
            pipeline_deploy.time.sleep = saved
        stub.add_response(
            "get_function_configuration", {"LastUpdateStatus": "Failed", "LastUpdateStatusReason": "bad zip"}
        )
        with pytest.raises(PipelineError, match="bad zip"):
            pipeline_deploy.wait_for_function(run, "f")


def test_normalise_history_from_real_event_shapes():
    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = [
        {"id": 1, "type": "ExecutionStarted", "timestamp": t0, "executionStartedEventDetails": {"input": "{}"}},
        {
            "id": 2,
            "type": "TaskStateEntered",
            "timestamp": t0,
            "stateEnteredEventDetails": {"name": "ETL", "input": "{}"},
        },
        {
            "id": 3,
            "type": "TaskStateExited",
            "timestamp": t0 + timedelta(seconds=90),
            "stateExitedEventDetails": {"name": "ETL", "output": '{"a": 1}'},
        },
        {
            "id": 4,
            "type": "TaskStateEntered",
            "timestamp": t0 + timedelta(seconds=90),
            "stateEnteredEventDetails": {"name": "Model Training", "input": '{"a": 1}'},
        },
        {
            "id": 5,
            "type": "TaskFailed",
            "timestamp": t0 + timedelta(seconds=95),
            "taskFailedEventDetails": {"error": "SageMaker.ValidationException", "cause": "bad channel"},
        },
        {
            "id": 6,
            "type": "ExecutionFailed",
            "timestamp": t0 + timedelta(seconds=95),
            "executionFailedEventDetails": {"error": "SageMaker.ValidationException", "cause": "bad channel"},
        },
    ]
    described = {"executionArn": "arn:x", "name": "r", "status": "FAILED", "input": "{}", "startDate": t0}
    history = normalise_history(described, events)
    assert [(s["state"], s["status"], s["seconds"]) for s in history["states"]] == [
        ("ETL", "SUCCEEDED", 90.0),
        ("Model Training", "FAILED", None),
    ]
    assert (history["failedState"], history["error"], history["cause"]) == (
        "Model Training",
        "SageMaker.ValidationException",
        "bad channel",
    )
    json.dumps(history)  # every value is JSON-safe
    # the graph reads AWS's history as it reads the local executor's: ETL ran, training failed there
    from churn_pipeline import state_graph

    definition = {
        "StartAt": "ETL",
        "States": {
            "ETL": {"Type": "Task", "Next": "Model Training"},
            "Model Training": {"Type": "Task", "Next": "Save Model"},
            "Save Model": {"Type": "Task", "End": True},
        },
    }
    nodes, edges = state_graph.layout(definition, history)
    assert [(n.name, n.status) for n in nodes] == [
        ("ETL", "SUCCEEDED"),
        ("Model Training", "FAILED"),
        ("Save Model", state_graph.NOT_RUN),
    ]
    assert [e.taken for e in edges] == [True, False]


# --- guard rails ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ROLE_NAMES)
def test_a_missing_role_variable_is_named(aws_env, monkeypatch, name):
    monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match=f"environment variable {name} is not set"):
        dev_params()


def test_a_malformed_role_variable_is_named(aws_env, monkeypatch):
    monkeypatch.setenv("glue_role", "churn-glue")
    with pytest.raises(ConfigError, match="environment variable glue_role is not an IAM role ARN"):
        dev_params()


def test_role_values_are_stripped(aws_env):
    assert dev_params()["lambda_role"] == "arn:aws:iam::123456789012:role/churn-dev-lambda-role"


def test_us_east_1_is_refused_unless_allowed(aws_env):
    with pytest.raises(ConfigError, match="us-east-1 is refused unless the parameters say allow_us_east_1: true"):
        dev_params(region="us-east-1")
    assert dev_params(region="us-east-1", allow_us_east_1=True)["region"] == "us-east-1"


def test_resource_names_respect_service_limits(aws_env, synthetic_csv):
    """Refused with the other parameters, before any notebook or AWS call."""
    with pytest.raises(PipelineError, match="parameters project and environment: .* shorten project or environment"):
        dev_params(project="a" * 40, environment="production-europe", run_id="r1")


def test_local_backend_ignores_role_variables(monkeypatch):
    monkeypatch.setenv("glue_role", "arn:aws:iam::123456789012:role/some-account-glue")
    assert config.load(ROOT / "parameters" / "local.yaml")["glue_role"].startswith("arn:aws:iam::000000000000")


def test_waiting_shows_the_state_the_execution_is_in(aws_env, synthetic_csv, monkeypatch):
    """SFN-HISTORY"""
    clock = iter(range(0, 100000, 30))
    monkeypatch.setattr(execution.time, "monotonic", lambda: next(clock))
    monkeypatch.setattr(execution.time, "sleep", lambda seconds: None)
    lines = []
    run = workflow.start_run(
        dict(
            dev_params(run_id="progress", wait_for_execution=True, execution_timeout_minutes=1), data=str(synthetic_csv)
        )
    )
    workflow.stage_data(run)
    workflow.deploy_etl_job(run)
    workflow.deploy_functions(run)
    workflow.deploy_state_machine(run, workflow.build_state_machine(run))
    with pytest.raises(PipelineError, match="still running"):
        workflow.execute(run, progress=lines.append)
    assert lines and lines[0].startswith("[00:") and lines[0].endswith(" ...")


def test_a_run_on_the_same_data_reuses_the_recorded_etl_output(aws_env, synthetic_csv):
    """SFN-CHOICE-REUSE on the aws backend: the record a finished Glue job writes sends the next run with the
    same inputs past the ETL, to the first run's channels."""

    first, _, _ = deploy(dev_params(run_id="first"), synthetic_csv)
    assert not first.state["etl"]["reused"]
    s3 = boto3.client("s3")
    # what code/glue_etl.py leaves when the first run's ETL job finishes (moto runs no Glue job)
    s3.put_object(Bucket=BUCKET, Key="churn/dev/first/etl/manifest.json", Body=json.dumps({"features": ["a"]}))
    etl_job.write_etl_record(
        first.state["etl"]["record_uri"], first.state["etl"]["key"], "first", {"rows": {"train": 1}}, s3_storage(s3)
    )
    second, _, _ = deploy(dev_params(run_id="second"), synthetic_csv)
    assert second.state["etl"]["reused"] and second.state["etl"]["source_run_id"] == "first"
    started = json.loads(
        boto3.client("stepfunctions").describe_execution(executionArn=second.state["execution_arn"])["input"]
    )
    assert started["ReuseEtl"] is True and started["EtlSourceRunId"] == "first"
    assert started["TrainUri"] == f"s3://{BUCKET}/churn/dev/first/etl/train/"
    copied = json.loads(s3.get_object(Bucket=BUCKET, Key="churn/dev/second/etl/manifest.json")["Body"].read())
    assert copied["reused_from"] == {"run_id": "first", "output_uri": f"s3://{BUCKET}/churn/dev/first/etl"}
    third, _, _ = deploy(dev_params(run_id="third", reuse_etl=False), synthetic_csv)
    assert not third.state["etl"]["reused"] and third.state["etl"]["reason"] == "reuse_etl is false"


def test_s3_input_is_copied_inside_s3_and_its_sha256_computed_by_s3(aws_env, synthetic_csv, monkeypatch):
    """S3-COPY-CHECKSUM: notebook 01 reads the header and the first rows of an s3:// input; the object itself is
    copied by S3 (CopyObject), which computes its SHA-256: the file never passes through CodeBuild."""
    from churn_pipeline import s3 as s3_store

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="customers-1", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.upload_file(str(synthetic_csv), "customers-1", "2026/churn.csv")
    monkeypatch.setattr(s3_store.S3Objects, "local_path", lambda *a, **k: pytest.fail("the object was downloaded"))
    monkeypatch.setattr(s3_store.S3Objects, "put_stream", lambda *a, **k: pytest.fail("the object was streamed"))
    monkeypatch.setattr(s3_store, "sha256_of", lambda *a, **k: pytest.fail("the object was hashed here"))
    run = workflow.start_run(dev_params(run_id="s3-source", data="s3://customers-1/2026/churn.csv"))
    profile = workflow.stage_data(run)
    assert profile.complete and profile.rows == 1500
    import hashlib

    assert run.state["data_sha256"] == hashlib.sha256(synthetic_csv.read_bytes()).hexdigest()
    staged = s3.get_object(Bucket=BUCKET, Key="churn/dev/s3-source/raw/churn.csv")["Body"].read()
    assert staged == synthetic_csv.read_bytes()


def tiny_model(folder):
    """A model archive and manifest of the raw transform, without Spark (moto runs no job: any model does)."""
    import numpy as np
    import xgboost as xgb

    from churn_pipeline import data, features, training

    transform = features.raw_encoding({column: ["no", "yes"] for column in data.CATEGORICAL})
    manifest_path = folder / "manifest.json"
    manifest_path.write_text(
        json.dumps({"format": "raw", "features": [s["feature"] for s in transform], "encoding": transform})
    )
    matrix = np.random.default_rng(0).random((20, len(transform)))
    booster = xgb.train({"objective": "binary:logistic"}, xgb.DMatrix(matrix, label=[0, 1] * 10), 2)
    return training.save_model_archive(booster, folder / "model.tar.gz"), manifest_path


def test_scoring_on_aws_deploys_its_state_machine_and_starts_the_transform(aws_env, synthetic_csv, tmp_path):
    """`churn-pipeline score` on the aws backend (moto, strict): the ETL job with this package, the
    script's source directory staged by content, the scoring state machine published, and an
    execution started with the model, its manifest and the transform's output filter."""
    from churn_pipeline.pipeline import scoring

    archive, manifest_path = tiny_model(tmp_path)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    s3.upload_file(str(archive), BUCKET, "churn/trained/models/job/output/model.tar.gz")
    s3.upload_file(str(manifest_path), BUCKET, "churn/trained/etl/manifest.json")
    s3.upload_file(str(synthetic_csv), BUCKET, "customers/today.csv")
    result = scoring.batch_transform(
        dev_params(),
        f"s3://{BUCKET}/churn/trained/models/job/output/model.tar.gz",
        f"s3://{BUCKET}/customers/today.csv",
        f"s3://{BUCKET}/churn/dev/scores/today/",
        explain_count=3,
        cutoff=0.4,
    )
    assert result["status"] == "RUNNING" and result["columns"][:3] == ["Phone", "score", "decision"]
    sfn = boto3.client("stepfunctions")
    execution = sfn.describe_execution(executionArn=result["execution_arn"])
    sent = json.loads(execution["input"])
    manifest = json.loads(manifest_path.read_text())
    assert sent["OutputFilter"] == f"$[0,{len(manifest['features']) + 2}:]"
    assert sent["ManifestUri"] == f"s3://{BUCKET}/churn/trained/etl/manifest.json" and sent["Cutoff"] == "0.4"
    assert sent["SourceDirUri"].startswith(f"s3://{BUCKET}/churn/dev/code/scoring-")
    # the input lay outside the roles' prefix: kept beside the scores (copied inside S3), where the Glue role reads
    assert sent["DataUri"] == f"s3://{BUCKET}/churn/dev/scores/today/input/today.csv"
    assert sent["HoldoutFraction"] == "0.0" and sent["ScoringDate"] == ""
    assert boto3.client("glue").get_job(JobName="churn-dev-etl")["Job"]["Command"]["ScriptLocation"].endswith(".py")
    definition = json.loads(
        sfn.describe_state_machine(
            stateMachineArn="arn:aws:states:eu-west-1:123456789012:stateMachine:churn-dev-scoring"
        )["definition"]
    )
    assert definition["States"][scoring_statemachine.STATE_SCORE]["Resource"].endswith("createTransformJob.sync")
