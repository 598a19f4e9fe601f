import json

import pytest

from churn_pipeline import scoring_statemachine, sdk, statemachine
from churn_pipeline.errors import StateMachineError


def spec(**changes):
    values = dict(
        glue_job_name="churn-test-etl",
        training_image="141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
        threshold=0.9,
        environment="test",
        region="eu-west-1",
        sagemaker_role="arn:aws:iam::123456789012:role/sm",
        instance_type="ml.m5.xlarge",
        instance_count=1,
        train_fraction=0.7,
        validation_fraction=0.2,
        split_seed=42,
    )
    values.update(changes)
    return statemachine.WorkflowSpec(**values)


@pytest.fixture(scope="module")
def definition():
    return statemachine.build_definition(spec())


def test_states_in_pipeline_order(definition):
    order, name = [], definition["StartAt"]
    while name:
        order.append(name)
        state = definition["States"][name]
        name = state.get("Next") or (state["Choices"][0]["Next"] if state["Type"] == "Choice" else None)
    assert order == [
        "Reuse Previous ETL?",
        "Tune Hyper-Parameters?",
        "Hyper-Parameter Tuning",
        "Best Training Job",
        "Save Model",
        "Query Training Results",
        "Accuracy Above Threshold",
        "Update Model Registry",
    ]
    assert definition["States"]["Accuracy Above Threshold"]["Default"] == "Accuracy Below Threshold"
    assert definition["States"]["Accuracy Below Threshold"]["Type"] == "Fail"
    assert definition["States"]["ETL"]["Next"] == "Tune Hyper-Parameters?"
    tune_or_train = definition["States"]["Tune Hyper-Parameters?"]
    assert tune_or_train["Choices"] == [
        {"Variable": "$.Tuning", "BooleanEquals": True, "Next": "Hyper-Parameter Tuning"}
    ]
    assert (
        tune_or_train["Default"] == "Model Training" and definition["States"]["Model Training"]["Next"] == "Save Model"
    )
    tune = definition["States"]["Hyper-Parameter Tuning"]["Parameters"]
    # the search space and the static hyper-parameters are input: a new search publishes nothing
    assert tune["HyperParameterTuningJobConfig.$"] == "$$.Execution.Input.TuningConfig"
    assert tune["TrainingJobDefinition"]["StaticHyperParameters.$"] == "$$.Execution.Input.HyperParameters"
    assert "$$.Execution.RedriveCount" in tune["HyperParameterTuningJobName.$"]  # a redrive tunes anew


def test_the_etl_is_skipped_only_when_the_execution_input_says_so(definition):
    """SFN-CHOICE-REUSE: The reuse decision is a Choice state on the execution input, before the ETL task."""
    reuse = definition["States"][definition["StartAt"]]
    assert reuse["Type"] == "Choice"
    assert reuse["Choices"] == [{"Variable": "$.ReuseEtl", "BooleanEquals": True, "Next": "Tune Hyper-Parameters?"}]
    assert reuse["Default"] == "ETL"
    arguments = definition["States"]["ETL"]["Parameters"]["Arguments"]
    assert arguments["--ETL_RECORD.$"] == "$$.Execution.Input['EtlRecordUri']"
    assert all(isinstance(v, str) for v in arguments.values())  # Glue job arguments are strings


def test_gate_reads_accuracy_by_metric_name_with_the_threshold(definition):
    rule = definition["States"]["Accuracy Above Threshold"]["Choices"][0]
    assert rule["Variable"] == "$.TrainingResults.Payload.metrics['validation:accuracy']"
    assert rule["NumericGreaterThan"] == 0.9
    assert (
        statemachine.build_definition(spec(threshold=0.97))["States"]["Accuracy Above Threshold"]["Choices"][0][
            "NumericGreaterThan"
        ]
        == 0.97
    )


def test_task_resources_and_arguments(definition):
    states = definition["States"]
    assert states["ETL"]["Resource"] == "arn:aws:states:::glue:startJobRun.sync"
    assert states["ETL"]["Parameters"]["JobName"] == "churn-test-etl"
    training_state = states["Model Training"]
    assert training_state["Resource"] == "arn:aws:states:::sagemaker:createTrainingJob.sync"
    assert training_state["Parameters"]["TrainingJobName.$"] == (
        "States.Format('{}-{}', $$.Execution.Input.TrainingJobName, $$.Execution.RedriveCount)"
    )
    assert states["Save Model"]["Resource"] == "arn:aws:states:::sagemaker:createModel"
    payload = states["Update Model Registry"]["Parameters"]["Payload"]
    assert payload["run_id.$"] == "$$.Execution.Input['RunId']"
    assert payload["metrics.$"] == "$.TrainingResults.Payload.metrics"
    assert states["Update Model Registry"]["Retry"][0]["MaxAttempts"] == 3


def test_everything_run_specific_comes_from_the_execution_input(definition):
    """GLUE-RUN-ARGUMENTS SFN-CONTEXT-INPUT SM-S3PREFIX: One definition serves every run: URIs, names and
    hyper-parameters are execution input
    (so a new run publishes no new version and concurrent runs cannot swap each other's inputs)."""
    states = definition["States"]
    arguments = states["ETL"]["Parameters"]["Arguments"]
    assert arguments["--S3_SOURCE.$"] == "$$.Execution.Input['DataUri']"
    assert arguments["--S3_DEST.$"] == "$$.Execution.Input['EtlOutputUri']"
    parameters = states["Model Training"]["Parameters"]
    assert parameters["HyperParameters.$"] == "$$.Execution.Input['HyperParameters']"
    assert parameters["OutputDataConfig"] == {"S3OutputPath.$": "$$.Execution.Input['ModelOutputUri']"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri.$"] for c in parameters["InputDataConfig"]}
    assert channels == {"train": "$$.Execution.Input['TrainUri']", "validation": "$$.Execution.Input['ValidationUri']"}
    assert "s3://" not in sdk.definition_json(definition)
    assert set(statemachine.execution_input_schema()) >= {
        "DataUri",
        "EtlOutputUri",
        "TrainUri",
        "ValidationUri",
        "ModelOutputUri",
        "HyperParameters",
    }


def test_debugger_hook_is_off(definition):
    """SM-DEBUGGER: The SageMaker XGBoost 3.0-5 container ignores the debugger hook; the definition asks for none."""
    parameters = definition["States"]["Model Training"]["Parameters"]
    assert "DebugHookConfig" not in parameters and "ProfilerConfig" not in parameters


def test_save_model_runs_the_endpoint_script_in_script_mode(definition):
    """SM-ENDPOINT-MODEL, SM-SCRIPT-OFFLINE: the saved model is the trained artifact in the training image,
    in script mode with the endpoint's script from the run's source dir, its manifest and decision from the
    execution input, answering CSV by default, startable with no package index; the Lambda states invoke
    the versions the execution input names (LAMBDA-VERSIONS)."""
    state = definition["States"]["Save Model"]
    assert state["Resource"] == "arn:aws:states:::sagemaker:createModel"
    container = state["Parameters"]["PrimaryContainer"]
    assert container["Image"] == spec().training_image
    assert container["ModelDataUrl.$"] == "$.ModelArtifacts.S3ModelArtifacts"
    assert container["Environment"] == {
        "SAGEMAKER_PROGRAM": "serve_endpoint.py",
        "SAGEMAKER_SUBMIT_DIRECTORY.$": "$$.Execution.Input['SourceDirUri']",
        "SAGEMAKER_REGION": "eu-west-1",
        "PIP_NO_BUILD_ISOLATION": "false",
        "SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT": "text/csv",
        "CHURN_MANIFEST.$": "$$.Execution.Input['ManifestUri']",
        "CHURN_DECISION.$": "$$.Execution.Input['DecisionUri']",
    }
    for name, key in (("Query Training Results", "QueryFunction"), ("Update Model Registry", "RegistryFunction")):
        assert definition["States"][name]["Parameters"]["FunctionName.$"] == f"$$.Execution.Input['{key}']"
    scoring = _scoring_definition()["States"][scoring_statemachine.STATE_SCORING_MODEL]
    assert scoring["Parameters"]["PrimaryContainer"]["Environment"]["PIP_NO_BUILD_ISOLATION"] == "false"


def test_the_batch_transform_runs_a_mini_batch_per_vcpu_within_a_set_timeout():
    """SM-TRANSFORM-SPEED: the transform job of an ml.m5.large (2 vCPUs) sends two mini-batches at a time
    to two model-server workers, each within the set timeout, which the platform waits for as long."""
    parameters = _scoring_definition()["States"][scoring_statemachine.STATE_SCORE]["Parameters"]
    assert (parameters["MaxConcurrentTransforms"], parameters["MaxPayloadInMB"]) == (2, 6)
    assert parameters["Environment"] == {
        "SAGEMAKER_MODEL_SERVER_WORKERS": "2",
        "SAGEMAKER_MODEL_SERVER_TIMEOUT": "300",
    }
    assert parameters["ModelClientConfig"] == {"InvocationsTimeoutInSeconds": 300, "InvocationsMaxRetries": 0}


def test_serialisation_is_stable(definition):
    text = sdk.definition_json(definition)
    assert json.loads(text) == definition
    assert sdk.definition_json(json.loads(text)) == text


def test_statelint_rejects_an_invalid_definition(definition):
    broken = json.loads(json.dumps(definition))
    broken["States"]["Save Model"]["Next"] = "Nowhere"
    with pytest.raises(StateMachineError, match="Nowhere"):
        sdk.validate_definition(broken)


def test_several_training_instances_each_read_a_share_of_the_train_parts():
    """SM-SHARDED: with more than one instance the train channel is ShardedByS3Key (distributed XGBoost, one
    share of the parts per instance); validation, and a single instance, read every part."""

    def channels(definition):
        config = definition["States"]["Model Training"]["Parameters"]["InputDataConfig"]
        return {c["ChannelName"]: c["DataSource"]["S3DataSource"].get("S3DataDistributionType") for c in config}

    assert channels(statemachine.build_definition(spec(instance_count=2))) == {
        "train": "ShardedByS3Key",
        "validation": "FullyReplicated",
    }
    assert channels(statemachine.build_definition(spec())) == {
        "train": "FullyReplicated",
        "validation": "FullyReplicated",
    }


def _scoring_definition():
    from churn_pipeline import container

    environment = container.transform_environment(
        scoring_statemachine.input_path("SourceDirUri"),
        scoring_statemachine.input_path("Cutoff"),
        scoring_statemachine.input_path("Explain"),
        "eu-west-1",
    )
    scoring = scoring_statemachine.ScoringSpec(
        "churn-test-etl", "img", "eu-west-1", "arn:aws:iam::123456789012:role/sm", "ml.m5.large", 1,
        tuple(environment.items()),
    )  # fmt: skip
    return scoring_statemachine.build_scoring_definition(scoring)


def test_both_definitions_run_the_etl_code_of_their_execution(definition):
    """GLUE-RUN-CODE: the script and package come from the execution input, never the job's definition."""
    for state in (definition["States"]["ETL"], _scoring_definition()["States"][scoring_statemachine.STATE_PREPARE]):
        arguments = state["Parameters"]["Arguments"]
        assert arguments["--scriptLocation.$"] == "$$.Execution.Input['EtlScript']"
        assert arguments["--extra-py-files.$"] == "$$.Execution.Input['EtlPackage']"
        assert not {"--MODE", "--mode"} & set(arguments)  # the scoring mode is --ETL_MODE


def test_a_busy_etl_job_is_waited_for_with_backoff_not_failed(definition):
    """SFN-GLUE-BUSY: training and scoring share one Glue job; a start refused while its concurrent runs
    are all taken is tried again, with backoff, in both definitions (here on the local executor)."""
    from churn_pipeline.backends.local import asl
    from churn_pipeline.errors import TaskFailed

    for state in (definition["States"]["ETL"], _scoring_definition()["States"][scoring_statemachine.STATE_PREPARE]):
        (busy,) = [r for r in state["Retry"] if r["ErrorEquals"] == [statemachine.GLUE_BUSY]]
        assert (busy["IntervalSeconds"], busy["MaxAttempts"], busy["BackoffRate"]) == (60, 5, 2.0)
    refusals, slept = [TaskFailed(statemachine.GLUE_BUSY, "Concurrent runs exceeded")] * 2, []

    def start_glue_job(parameters):
        if refusals:
            raise refusals.pop()
        raise TaskFailed("States.TaskFailed", "stop here: the job started")

    machine = {"StartAt": "ETL", "States": {"ETL": {**definition["States"]["ETL"], "End": True}}}
    machine["States"]["ETL"].pop("Next", None)
    executor = asl.LocalExecutor(
        machine, {"arn:aws:states:::glue:startJobRun.sync": start_glue_job}, sleep=slept.append
    )
    execution = executor.run({key: "x" for key in statemachine.execution_input_schema()}, name="busy")
    assert slept == [60, 120] and execution.error == "States.TaskFailed"
