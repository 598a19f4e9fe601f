"""The AWS behaviours the pipeline relies on (``docs/aws-behaviours.md``), held against the local
backend's services and against moto with the strict layer: both must answer as AWS does.

Each test names the rows it checks; ``test_every_row_has_a_test`` keeps the document and the
tests together.
"""

from __future__ import annotations

import io
import json
import re
import zipfile

import boto3
import pytest
from botocore.exceptions import ClientError
from helpers import ACCOUNT, ROOT

from churn_pipeline.backends.local import LocalBackend

BUCKET = "contract-bucket"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/churn-dev-lambda-role"
PASS = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}


class Target:
    """The clients of one implementation: the local backend, or moto held to AWS."""

    def __init__(self, name, client, put_object):
        self.name, self.client, self.put_object = name, client, put_object


@pytest.fixture(params=["local", "moto"])
def target(request, tmp_path):
    if request.param == "local":
        backend = LocalBackend(None, tmp_path / "home")
        yield Target("local", backend.client, lambda key, body: backend.store.put(f"s3://{BUCKET}/{key}", body))
        return
    request.getfixturevalue("aws_env")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield Target(
        "moto",
        lambda service: boto3.client(service, region_name="eu-west-1"),
        lambda key, body: s3.put_object(Bucket=BUCKET, Key=key, Body=body),
    )


def code(error) -> str:
    return error.value.response["Error"]["Code"]


def job_definition(**changes):
    return {
        "Role": ROLE,
        "GlueVersion": "5.0",
        "WorkerType": "G.1X",
        "NumberOfWorkers": 2,
        "Command": {"Name": "glueetl", "ScriptLocation": f"s3://{BUCKET}/etl.py", "PythonVersion": "3"},
        "DefaultArguments": {"--job-language": "python"},
        **changes,
    }


# --- Glue ------------------------------------------------------------------------------------------
def test_glue_get_job_of_a_missing_job(target):
    """GLUE-GET-MISSING"""
    with pytest.raises(ClientError) as error:
        target.client("glue").get_job(JobName="nope")
    assert code(error) == "EntityNotFoundException"


def test_glue_create_job_for_an_existing_name_is_refused(target):
    """GLUE-CREATE-EXISTING: another definition -> IdempotentParameterMismatchException, never an update."""
    glue = target.client("glue")
    glue.create_job(Name="j", **job_definition())
    with pytest.raises(ClientError) as error:
        glue.create_job(Name="j", **job_definition(NumberOfWorkers=5))
    assert code(error) == "IdempotentParameterMismatchException"
    assert glue.get_job(JobName="j")["Job"]["NumberOfWorkers"] == 2


def test_glue_update_job_replaces_the_whole_definition(target):
    """GLUE-UPDATE-REPLACES: what JobUpdate leaves out is reset, not kept."""
    glue = target.client("glue")
    glue.create_job(Name="j", **job_definition(Timeout=30))
    update = job_definition(NumberOfWorkers=4)
    glue.update_job(JobName="j", JobUpdate=update)
    job = glue.get_job(JobName="j")["Job"]
    assert job["NumberOfWorkers"] == 4 and job.get("Timeout") in (None, 2880)
    with pytest.raises(ClientError) as error:
        glue.update_job(JobName="missing", JobUpdate=update)
    assert code(error) == "EntityNotFoundException"


def test_glue_refuses_the_streaming_worker_type_for_spark_jobs(target):
    """GLUE-WORKER-TYPE"""
    with pytest.raises(ClientError) as error:
        target.client("glue").create_job(Name="j", **job_definition(WorkerType="G.025X"))
    assert code(error) == "InvalidInputException"


# --- Lambda ----------------------------------------------------------------------------------------
def _function_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fn.py", "def handler(event, context):\n    return event\n")
    return buffer.getvalue()


def test_lambda_function_is_pending_after_create_and_refuses_changes_until_ready(target):
    """LAMBDA-PENDING, LAMBDA-UPDATE-IN-PROGRESS, LAMBDA-CREATE-EXISTING"""
    target.put_object("fn.zip", _function_archive())
    functions = target.client("lambda")
    settings = {
        "Role": ROLE,
        "Handler": "fn.handler",
        "Runtime": "python3.12",
        "Code": {"S3Bucket": BUCKET, "S3Key": "fn.zip"},
    }
    created = functions.create_function(FunctionName="f", **settings)
    assert created["State"] == "Pending"
    with pytest.raises(ClientError) as error:
        functions.update_function_configuration(FunctionName="f", Timeout=30)
    assert code(error) == "ResourceConflictException"
    assert functions.get_function_configuration(FunctionName="f")["State"] == "Pending"
    assert functions.get_function_configuration(FunctionName="f")["State"] == "Active"
    functions.update_function_configuration(FunctionName="f", Timeout=30)
    with pytest.raises(ClientError) as error:  # the first update is still in progress
        functions.update_function_code(FunctionName="f", S3Bucket=BUCKET, S3Key="fn.zip")
    assert code(error) == "ResourceConflictException"
    assert functions.get_function_configuration(FunctionName="f")["LastUpdateStatus"] == "InProgress"
    assert functions.get_function_configuration(FunctionName="f")["LastUpdateStatus"] == "Successful"
    with pytest.raises(ClientError) as error:
        functions.create_function(FunctionName="f", **settings)
    assert code(error) == "ResourceConflictException"


def _ready(functions, name):
    while functions.get_function_configuration(FunctionName=name).get("LastUpdateStatus") == "InProgress":
        pass


def test_lambda_versions_are_published_once_per_change_and_only_for_the_code_named(target):
    """LAMBDA-VERSIONS: PublishVersion copies $LATEST as version 1, 2, ...; with nothing changed it
    publishes nothing new; with a CodeSha256 that is no longer $LATEST's it is refused."""
    target.put_object("fn.zip", _function_archive())
    target.put_object("other.zip", _function_archive().replace(b"return event", b"return None "))
    functions = target.client("lambda")
    created = functions.create_function(
        FunctionName="f",
        Role=ROLE,
        Handler="fn.handler",
        Runtime="python3.12",
        Code={"S3Bucket": BUCKET, "S3Key": "fn.zip"},
    )
    with pytest.raises(ClientError) as error:  # still Pending
        functions.publish_version(FunctionName="f")
    assert code(error) == "ResourceConflictException"
    _ready(functions, "f")
    first = functions.publish_version(FunctionName="f", CodeSha256=created["CodeSha256"])
    assert (first["Version"], first["FunctionArn"]) == ("1", f"{created['FunctionArn']}:1")
    assert functions.publish_version(FunctionName="f")["Version"] == "1"  # nothing changed
    changed = functions.update_function_code(FunctionName="f", S3Bucket=BUCKET, S3Key="other.zip")
    _ready(functions, "f")
    with pytest.raises(ClientError) as error:
        functions.publish_version(FunctionName="f", CodeSha256=created["CodeSha256"])
    assert code(error) == "InvalidParameterValueException"
    from types import SimpleNamespace

    from churn_pipeline.errors import PipelineError
    from churn_pipeline.pipeline.deploy import publish_function

    with pytest.raises(PipelineError, match="another build replaced its code"):  # what a build then says
        publish_function(SimpleNamespace(backend=target), "f", created["CodeSha256"])
    assert functions.publish_version(FunctionName="f", CodeSha256=changed["CodeSha256"])["Version"] == "2"
    pinned = functions.get_function_configuration(FunctionName=first["FunctionArn"])
    assert pinned["CodeSha256"] == created["CodeSha256"] != changed["CodeSha256"]


# --- Step Functions ------------------------------------------------------------------------------------
def test_step_functions_create_is_idempotent_only_for_the_same_definition(target):
    """SFN-CREATE-IDEMPOTENT"""
    sfn = target.client("stepfunctions")
    first = sfn.create_state_machine(name="m", definition=json.dumps(PASS), roleArn=ROLE)
    again = sfn.create_state_machine(name="m", definition=json.dumps(PASS), roleArn=ROLE)
    assert again["stateMachineArn"] == first["stateMachineArn"]
    other = {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": True}}}
    with pytest.raises(ClientError) as error:
        sfn.create_state_machine(name="m", definition=json.dumps(other), roleArn=ROLE)
    assert code(error) == "StateMachineAlreadyExists"
    with pytest.raises(ClientError) as error:
        sfn.describe_state_machine(stateMachineArn=first["stateMachineArn"] + "-missing")
    assert code(error) == "StateMachineDoesNotExist"


def test_step_functions_versions_publish_list_newest_first_and_delete(target):
    """SFN-PUBLISH, SFN-VERSIONS-LIST, SFN-VERSION-DELETE, SFN-DESCRIBE-VERSION"""
    sfn = target.client("stepfunctions")
    arn = sfn.create_state_machine(name="m", definition=json.dumps(PASS), roleArn=ROLE, publish=True)["stateMachineArn"]
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == f"{arn}:1"
    other = {"StartAt": "Q", "States": {"Q": {"Type": "Pass", "End": True}}}
    sfn.update_state_machine(stateMachineArn=arn, definition=json.dumps(other))
    assert sfn.publish_state_machine_version(stateMachineArn=arn)["stateMachineVersionArn"] == f"{arn}:2"
    listed = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [f"{arn}:2", f"{arn}:1"]
    assert json.loads(sfn.describe_state_machine(stateMachineArn=f"{arn}:1")["definition"]) == PASS
    sfn.delete_state_machine_version(stateMachineVersionArn=f"{arn}:1")
    listed = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
    assert [v["stateMachineVersionArn"] for v in listed] == [f"{arn}:2"]


def test_step_functions_execution_names_and_versions(target, monkeypatch):
    """SFN-START-VERSION, SFN-START-NAME: a closed execution's name is refused (ExecutionAlreadyExists)."""
    monkeypatch.setenv("SF_EXECUTION_HISTORY_TYPE", "FAILURE")  # moto closes the execution at once
    sfn = target.client("stepfunctions")
    version = sfn.create_state_machine(name="m", definition=json.dumps(PASS), roleArn=ROLE, publish=True)[
        "stateMachineVersionArn"
    ]
    started = sfn.start_execution(stateMachineArn=version, name="run-1", input="{}")
    assert sfn.describe_execution(executionArn=started["executionArn"])["status"] != "RUNNING"
    with pytest.raises(ClientError) as error:
        sfn.start_execution(stateMachineArn=version, name="run-1", input="{}")
    assert code(error) == "ExecutionAlreadyExists"


# --- SageMaker -----------------------------------------------------------------------------------------
def test_sagemaker_refuses_an_existing_model_name(target):
    """SM-MODEL-EXISTS"""
    sagemaker = target.client("sagemaker")
    container = {
        "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
        "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz",
    }
    sagemaker.create_model(ModelName="m", PrimaryContainer=container, ExecutionRoleArn=ROLE)
    with pytest.raises(ClientError) as error:
        sagemaker.create_model(ModelName="m", PrimaryContainer=container, ExecutionRoleArn=ROLE)
    assert code(error) == "ValidationException" and "Cannot create already existing model" in str(error.value)


def test_sagemaker_transform_filters_take_one_range(target):
    """SM-TRANSFORM-JOIN: the scoring transform's filters are accepted; two ranges in one filter are not."""
    from churn_pipeline import container

    sagemaker = target.client("sagemaker")
    target.put_object("model.tar.gz", b"")
    sagemaker.create_model(
        ModelName="scoring",
        ExecutionRoleArn=ROLE,
        PrimaryContainer={
            "Image": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
            "ModelDataUrl": f"s3://{BUCKET}/model.tar.gz",
        },
    )
    request = dict(
        ModelName="scoring",
        TransformOutput={"S3OutputPath": f"s3://{BUCKET}/scores/"},
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/customers/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    sagemaker.create_transform_job(
        TransformJobName="ok", DataProcessing=container.transform_data_processing(69), **request
    )
    assert sagemaker.describe_transform_job(TransformJobName="ok")["DataProcessing"]["OutputFilter"] == "$[0,71:]"
    try:
        sagemaker.create_transform_job(TransformJobName="two", DataProcessing={"InputFilter": "$[0:2,246:]"}, **request)
    except ClientError as error:  # refused at the call (the strict layer)
        assert "only single range filters" in str(error)
    else:  # or the job fails (the local transform job)
        assert "only single range filters" in sagemaker.describe_transform_job(TransformJobName="two")["FailureReason"]


def test_a_tuning_job_is_refused_as_amt_refuses_it(target):
    """AMT-NAME, AMT-SEARCH-SPACE: a name over 32 characters and a Grid search over a continuous range
    are refused before any job starts, on both implementations; a missing tuning job is ResourceNotFound."""
    from churn_pipeline import config, tuning

    sagemaker = target.client("sagemaker")
    search = tuning.tuning_config(config.load(overrides={"tuning_max_jobs": 2}))
    definition = {
        "AlgorithmSpecification": {"TrainingImage": "xgb", "TrainingInputMode": "File"},
        "RoleArn": ROLE,
        "InputDataConfig": [
            {
                "ChannelName": c,
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://{BUCKET}/{c}/"}},
            }
            for c in ("train", "validation")
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{BUCKET}/models"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "StaticHyperParameters": {},
    }
    for name, config_ in (("t" * 33, search), ("grid", {**search, "Strategy": "Grid"})):
        with pytest.raises(ClientError) as error:
            sagemaker.create_hyper_parameter_tuning_job(
                HyperParameterTuningJobName=name,
                HyperParameterTuningJobConfig=config_,
                TrainingJobDefinition=definition,
            )
        assert code(error) == "ValidationException", target.name
    with pytest.raises(ClientError) as error:
        sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="missing")
    assert code(error) == "ResourceNotFound", target.name


# --- the document ----------------------------------------------------------------------------------------
def test_every_row_has_a_test():
    """Every row of docs/aws-behaviours.md names a test that enforces it, and every named row exists."""
    document = (ROOT / "docs" / "aws-behaviours.md").read_text()
    rows = re.findall(r"^\| `([A-Z0-9-]+)` \|", document, flags=re.MULTILINE)
    assert len(rows) == len(set(rows)) and len(rows) >= 25
    tests_text = "\n".join(p.read_text() for p in (ROOT / "tests").glob("*.py"))
    code_text = tests_text + "\n".join(p.read_text() for p in (ROOT / "tests").glob("*.cfg"))
    missing = [row for row in rows if not re.search(rf"\b{row}\b", code_text.replace(document, ""))]
    assert not missing, f"rows with no test naming them: {missing}"


def test_the_build_records_the_commit_codebuild_resolved(monkeypatch, tmp_path):
    """CODEBUILD-SOURCE-VERSION: under CodePipeline's zip source there is no .git."""
    from churn_pipeline import workspace

    monkeypatch.setenv("CODEBUILD_RESOLVED_SOURCE_VERSION", "0123456789abcdef0123456789abcdef01234567")
    assert workspace.git_commit(tmp_path) == "0123456789abcdef0123456789abcdef01234567"
    monkeypatch.delenv("CODEBUILD_RESOLVED_SOURCE_VERSION")
    assert workspace.git_commit(tmp_path) is None  # no .git, no variable: unknown, not invented


def test_the_roles_grant_what_these_behaviours_need():
    """IAM-DESCRIBE-ALARMS, SFN-VERSION-QUOTA, SFN-REDRIVE, LAMBDA-VERSIONS: blue/green reads the rollback
    alarm with the SageMaker execution role; the build lists and deletes old state-machine versions,
    publishes function versions and redrives a failed execution when a run is resumed; executions
    invoke function versions."""
    from helpers import policy_statements, template

    resources = template("pipeline.yml")["Resources"]

    def actions(logical_id):
        found = set()
        for statement in policy_statements(resources[logical_id]):
            found |= set(statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
        return found

    assert "cloudwatch:DescribeAlarms" in actions("SageMakerExecutionRole")
    # IAM-TRANSFORM-SYNC: the workflow role runs the scoring state machine's transform jobs
    assert {
        "sagemaker:CreateTransformJob",
        "sagemaker:DescribeTransformJob",
        "sagemaker:StopTransformJob",
        "sagemaker:ListTags",
        "events:PutRule",
        "events:PutTargets",
        "events:DescribeRule",
    } <= actions("WorkflowExecutionRole")
    rules = [
        statement["Resource"]
        for statement in policy_statements(resources["WorkflowExecutionRole"])
        if "events:PutRule" in statement["Action"]
    ]
    assert "StepFunctionsGetEventsForSageMakerTransformJobsRule" in json.dumps(rules)
    # SFN-TUNING-SYNC, SFN-AWS-SDK-DESCRIBE: the tuning job, its rule, and its training jobs' descriptions
    assert "StepFunctionsGetEventsForSageMakerTuningJobsRule" in json.dumps(rules)
    tuning = [
        s
        for s in policy_statements(resources["WorkflowExecutionRole"])
        if "sagemaker:CreateHyperParameterTuningJob" in s["Action"]
    ]
    assert len(tuning) == 1 and {
        "sagemaker:DescribeHyperParameterTuningJob",
        "sagemaker:StopHyperParameterTuningJob",
    } <= set(tuning[0]["Action"])
    assert "hyper-parameter-tuning-job/${ProjectName}-${Environment}-*" in json.dumps(tuning[0]["Resource"])
    build_role = next(
        k
        for k, v in resources.items()
        if v["Type"] == "AWS::IAM::Role" and "states:PublishStateMachineVersion" in actions(k)
    )
    assert {
        "states:ListStateMachineVersions",
        "states:DeleteStateMachineVersion",
        "glue:GetJob",
        "lambda:GetFunctionConfiguration",
        "lambda:PublishVersion",
        "states:RedriveExecution",
    } <= actions(build_role)
    # LAMBDA-VERSIONS: executions invoke qualified ARNs, which an unqualified resource does not cover
    invoked = [
        resource
        for statement in policy_statements(resources["WorkflowExecutionRole"])
        if "lambda:InvokeFunction" in statement["Action"]
        for resource in statement["Resource"]
    ]
    assert len(invoked) == 2 and all(str(resource).endswith(":*'}") for resource in invoked)


def test_a_failed_job_is_named_by_its_own_message():
    """SFN-SYNC-CAUSE: a failed .sync task's cause is the job's description; its message is shown."""
    import json

    from churn_pipeline.pipeline.execution import job_failure

    glue_run = {"Id": "jr_1", "JobRunState": "FAILED", "ErrorMessage": "DataValidationError: a.csv, line 9: x"}
    training_job = {"TrainingJobName": "t-0", "TrainingJobStatus": "Failed", "FailureReason": "AlgorithmError: y"}
    transform_job = {"TransformJobName": "s-0", "TransformJobStatus": "Failed", "FailureReason": "ClientError: z"}
    assert job_failure(json.dumps(transform_job)) == transform_job["FailureReason"]
    assert job_failure(json.dumps(glue_run)) == glue_run["ErrorMessage"]
    assert job_failure(json.dumps(training_job)) == training_job["FailureReason"]
    assert job_failure("Lambda.Unknown: timed out") == "Lambda.Unknown: timed out"
    assert job_failure(json.dumps({"Id": "jr_2"})) == json.dumps({"Id": "jr_2"})
