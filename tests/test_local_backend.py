"""The local backend's clients behave like the boto3 subset the pipeline drives."""

import json

import pytest
from botocore.exceptions import ClientError

from churn_pipeline import names
from churn_pipeline.backends.local import LocalBackend
from churn_pipeline.errors import StateMachineError
from churn_pipeline.pipeline.execution import execution_arn


@pytest.fixture
def backend(tmp_path):
    return LocalBackend(None, tmp_path / "home")


def _code(error):
    return error.value.response["Error"]["Code"]


def test_glue_create_then_update_and_not_found(backend):
    glue = backend.client("glue")
    glue.create_job(Name="j", Role="r", Command={"ScriptLocation": "s3://b/k.py"})
    with pytest.raises(ClientError) as error:
        glue.create_job(Name="j", Role="r", Command={"ScriptLocation": "s3://b/k.py"})
    assert _code(error) == "AlreadyExistsException"
    glue.update_job(JobName="j", JobUpdate={"Role": "r2", "Command": {"ScriptLocation": "s3://b/k2.py"}})
    assert glue.get_job(JobName="j")["Job"]["Command"]["ScriptLocation"] == "s3://b/k2.py"
    with pytest.raises(ClientError) as error:
        glue.update_job(JobName="nope", JobUpdate={})
    assert _code(error) == "EntityNotFoundException"


def test_glue_job_failure_is_reported_with_the_error(backend):
    backend.store.put("s3://b/fail.py", b"raise ValueError('bad column Day Mins')\n")
    glue = backend.client("glue")
    glue.create_job(Name="j", Role="r", Command={"ScriptLocation": "s3://b/fail.py"})
    run_id = glue.start_job_run(JobName="j")["JobRunId"]
    run = glue.get_job_run(JobName="j", RunId=run_id)["JobRun"]
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: bad column Day Mins"


def test_lambda_invokes_the_staged_handler_with_its_environment(backend):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(
            "fn.py",
            "import os\ndef handler(event, context):\n"
            "    return {'got': event['x'], 'table': os.environ['TABLE']}\n"
            "def broken(event, context):\n    raise KeyError('x')\n",
        )
    backend.store.put("s3://b/fn.zip", buffer.getvalue())
    functions = backend.client("lambda")
    code = {"S3Bucket": "b", "S3Key": "fn.zip"}
    functions.create_function(
        FunctionName="f",
        Handler="fn.handler",
        Code=code,
        Role="r",
        Runtime="python3.12",
        Environment={"Variables": {"TABLE": "t1"}},
    )
    assert functions.get_function_configuration(FunctionName="f")["State"] == "Pending"  # as created
    assert functions.get_function_configuration(FunctionName="f")["State"] == "Active"
    assert functions.invoke(FunctionName="f", Payload=json.dumps({"x": 1}))["Payload"] == {"got": 1, "table": "t1"}
    functions.update_function_configuration(FunctionName="f", Handler="fn.broken")
    response = functions.invoke(FunctionName="f", Payload={"x": 1})
    assert response["FunctionError"] == "Unhandled" and response["Payload"]["errorType"] == "KeyError"
    with pytest.raises(ClientError) as error:
        functions.create_function(FunctionName="f", Handler="fn.handler", Code=code, Role="r", Runtime="python3.12")
    assert _code(error) == "ResourceConflictException"


def test_state_machine_create_update_and_execution_names(backend):
    sfn = backend.client("stepfunctions")
    first = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}})
    second = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": True}}})
    arn = sfn.create_state_machine(name="m", definition=first, roleArn="r")["stateMachineArn"]
    with pytest.raises(ClientError) as error:
        sfn.create_state_machine(name="m", definition=second, roleArn="r")
    assert _code(error) == "StateMachineAlreadyExists"
    sfn.update_state_machine(stateMachineArn=arn, definition=second)
    started = sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")
    assert json.loads(sfn.describe_execution(executionArn=started["executionArn"])["output"]) == 2
    with pytest.raises(ClientError) as error:  # the execution has closed: its name is used up
        sfn.start_execution(stateMachineArn=arn, name="run-1", input="{}")
    assert _code(error) == "ExecutionAlreadyExists"


def test_unsupported_definition_is_refused_at_deploy_time(backend):
    sfn = backend.client("stepfunctions")
    definition = json.dumps({"StartAt": "M", "States": {"M": {"Type": "Parallel", "End": True}}})
    with pytest.raises(StateMachineError, match="not supported"):
        sfn.create_state_machine(name="m", definition=definition, roleArn="r")


def test_an_execution_runs_the_published_version_it_names(backend):
    sfn = backend.client("stepfunctions")
    one = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 1, "End": True}}})
    two = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": 2, "End": True}}})
    first = sfn.create_state_machine(name="m", definition=one, roleArn="r", publish=True)
    assert first["stateMachineVersionArn"].endswith(":m:1")
    second = sfn.update_state_machine(stateMachineArn=first["stateMachineArn"], definition=two, publish=True)
    assert second["stateMachineVersionArn"].endswith(":m:2")
    unchanged = sfn.update_state_machine(stateMachineArn=first["stateMachineArn"], definition=two, publish=True)
    assert unchanged["stateMachineVersionArn"] == second["stateMachineVersionArn"]
    started = sfn.start_execution(stateMachineArn=first["stateMachineVersionArn"], name="old", input="{}")
    assert json.loads(sfn.describe_execution(executionArn=started["executionArn"])["output"]) == 1
    with pytest.raises(ClientError) as error:
        sfn.start_execution(stateMachineArn=first["stateMachineArn"] + ":9", name="x", input="{}")
    assert _code(error) == "ResourceNotFound"


def test_an_execution_whose_process_ended_is_aborted_and_can_be_redriven(backend):
    """SFN-REDRIVE: locally an execution runs in the process that started it; once that process is gone
    a RUNNING record is ABORTED, a new start with its name is refused, and a redrive continues it."""
    import subprocess
    import sys

    from churn_pipeline.backends.local import asl

    sfn = backend.client("stepfunctions")
    definition = json.dumps(
        {
            "StartAt": "A",
            "States": {
                "A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "B"},
                "B": {"Type": "Pass", "Result": 2, "ResultPath": "$.b", "End": True},
            },
        }
    )
    version = sfn.create_state_machine(name="m", definition=definition, roleArn="r", publish=True)[
        "stateMachineVersionArn"
    ]
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    ).stdout.strip()
    # what a process killed while in state B leaves behind
    execution = asl.LocalExecutor(definition, {}).run({"x": 0}, name="e")
    record = execution.to_dict()
    record["events"] = [
        e
        for e in record["events"]
        if not (e["type"] in ("StateExited", "ExecutionSucceeded") and e.get("state", "B") == "B")
    ]
    record.update(
        status="RUNNING",
        output=None,
        stopDate=None,
        ownerPid=int(gone),
        stateMachineArn=version,
        executionArn=execution_arn(version, "e"),
    )
    (backend.home / "stepfunctions" / "executions").mkdir(parents=True, exist_ok=True)
    (backend.home / "stepfunctions" / "executions" / "m--e.json").write_text(json.dumps(record))
    arn = execution_arn(version, "e")
    described = sfn.describe_execution(executionArn=arn)
    assert described["status"] == "ABORTED" and described["redriveStatus"] == "REDRIVABLE"
    with pytest.raises(ClientError) as error:
        sfn.start_execution(stateMachineArn=version, name="e", input=json.dumps({"x": 0}))
    assert _code(error) == "ExecutionAlreadyExists"
    sfn.redrive_execution(executionArn=arn)
    described = sfn.describe_execution(executionArn=arn)
    assert (described["status"], described["redriveCount"]) == ("SUCCEEDED", 1)
    assert json.loads(described["output"]) == {"x": 0, "a": 1, "b": 2}
    with pytest.raises(ClientError) as error:
        sfn.redrive_execution(executionArn=arn)
    assert _code(error) == "ExecutionNotRedrivable"
    entered = [
        e["stateEnteredEventDetails"]["name"]
        for e in sfn.get_execution_history(executionArn=arn)["events"]
        if e["type"].endswith("StateEntered")
    ]
    assert entered == ["A", "B", "B"]  # A is not run again
    history = backend.execution_history(arn)
    assert [(row["state"], row["status"]) for row in history["states"]] == [
        ("A", "SUCCEEDED"),
        ("B", "ABORTED"),
        ("B", "SUCCEEDED"),
    ]


def test_the_cli_follows_the_state_a_running_execution_is_in(tmp_path, monkeypatch):
    """While notebook 02 waits, `churn-pipeline run` reports the state the execution entered."""
    import os
    import threading

    from churn_pipeline import config, runner
    from churn_pipeline.backends.local import asl

    monkeypatch.setenv("CHURN_PIPELINE_HOME", str(tmp_path / "home"))
    params = config.validate({"run_id": "follow"})
    backend = LocalBackend(params, tmp_path / "home")
    sfn = backend.client("stepfunctions")
    definition = json.dumps({"StartAt": "Model Training", "States": {"Model Training": {"Type": "Pass", "End": True}}})
    name = names.state_machine_name(params)
    version = sfn.create_state_machine(name=name, definition=definition, roleArn="r", publish=True)[
        "stateMachineVersionArn"
    ]
    entered = asl.LocalExecutor(definition, {}).run({}, name="follow")
    record = entered.to_dict()
    record["events"] = record["events"][:2]  # started, entered "Model Training"
    record.update(
        status="RUNNING",
        stopDate=None,
        ownerPid=os.getpid(),
        stateMachineArn=version,
        executionArn=execution_arn(version, "follow"),
    )
    backend.home.joinpath("stepfunctions", "executions").mkdir(parents=True, exist_ok=True)
    backend.home.joinpath("stepfunctions", "executions", f"{name}--follow.json").write_text(json.dumps(record))
    lines, seen = [], threading.Event()

    def log(line):
        lines.append(line)
        if "state machine: Model Training" in line:
            seen.set()

    with runner.ExecutionProgress(params, log, poll_seconds=0.01):
        assert seen.wait(timeout=60), lines
    assert all("state machine: " in line for line in lines), lines  # no errors, only states


def _training_request(name, hyperparameters):
    channels = [
        {
            "ChannelName": c,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://b/etl/{c}"}},
            "ContentType": "text/csv",
        }
        for c in ("train", "validation")
    ]
    return dict(
        TrainingJobName=name,
        AlgorithmSpecification={"TrainingImage": "xgb", "TrainingInputMode": "File"},
        RoleArn="arn:aws:iam::123456789012:role/r",
        InputDataConfig=channels,
        OutputDataConfig={"S3OutputPath": "s3://b/models"},
        HyperParameters=hyperparameters,
    )


def test_a_training_job_runs_in_a_process_of_its_own_in_the_container_layout(backend, monkeypatch):
    """SM-CHANNEL-FILES: the job's process sees every object under a channel's prefix; the container's failure
    (a file it cannot read) is the job's FailureReason; the process that starts the job trains nothing."""
    from churn_pipeline import config, training

    monkeypatch.setattr(training, "train", lambda *a: pytest.fail("trained in the calling process"))

    rows = [(i % 2, (i % 2) * 3.0 + (i % 7) * 0.1, (i % 5) * 1.0) for i in range(200)]
    text = "".join(f"{label},{a},{b}\n" for label, a, b in rows).encode()
    for part in ("part-00000-a.csv", "part-00001-a.csv"):
        backend.store.put(f"s3://b/etl/train/{part}", text)
    backend.store.put("s3://b/etl/validation/part-00000-a.csv", text)
    hyperparameters = {**training.hyperparameters_from(config.DEFAULTS), "num_round": "5"}
    sagemaker = backend.client("sagemaker")
    sagemaker.create_training_job(**_training_request("ok-0", hyperparameters))
    job = sagemaker.describe_training_job(TrainingJobName="ok-0")
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    metrics = training.metrics_by_name(job["FinalMetricDataList"])
    assert metrics["validation:accuracy"] == 1.0 and "train:auc" in metrics
    booster = training.load_model_archive(backend.mirror.localize(job["ModelArtifacts"]["S3ModelArtifacts"]))
    assert booster.num_boosted_rounds() == 5 and booster.num_features() == 2
    folder = backend.home / "sagemaker" / "jobs" / "ok-0"
    assert sorted(p.name for p in (folder / "input" / "data" / "train").iterdir()) == [
        "part-00000-a.csv",
        "part-00001-a.csv",
    ]

    backend.store.put("s3://b/etl/train/_SUCCESS", b"")
    sagemaker.create_training_job(**_training_request("bad-0", hyperparameters))
    job = sagemaker.describe_training_job(TrainingJobName="bad-0")
    assert job["TrainingJobStatus"] == "Failed" and "ModelArtifacts" not in job
    assert "Could not determine delimiter" in job["FailureReason"] and "_SUCCESS" in job["FailureReason"]
