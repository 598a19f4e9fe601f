"""Windows in S3, counted where they lie: the ETL job's monitor and retrain modes give what local Spark
gives for the same customers, scores and outcomes."""

import json
from pathlib import Path

import pytest

from churn_pipeline import config, decisions, scoring, state_graph, synthetic
from churn_pipeline.cli_score import _draw_state_machine
from churn_pipeline.errors import PipelineError
from churn_pipeline.etl import monitor_pass
from churn_pipeline.pipeline import monitor, monitor_job
from churn_pipeline.pipeline import scoring as batch_scoring

CONTROL_GROUP = decisions.Holdout(0.2, "2026-11-29")


def test_a_batch_transforms_window_counts_in_the_etl_job_as_score_files_count_on_spark(
    spark, small_model, isolated, tmp_path
):
    """GLUE-RUN-STATES, GLUE-RUN-CODE: `score` as on AWS leaves a window in S3 (``.out`` parts with no
    header, the input under ``input/``, ``_scores.json``); the ETL job's monitor mode counts it, with its
    outcomes staged beside the request, exactly as local Spark counts the local `score` of the same
    customers; the retrain mode writes the same new training file, byte for byte."""
    from churn_pipeline.backends import open_backend

    archive, manifest_path, _ = small_model
    statistics = json.loads((small_model[2] / "baseline" / "statistics.json").read_text())
    params = config.load(None, {"execution_timeout_minutes": 10})
    backend = open_backend(params)
    model_uri = "s3://churn-pipeline-local/churn/local/trained/models/job/output/model.tar.gz"
    backend.store.stage(model_uri, str(archive))
    backend.store.stage("s3://churn-pipeline-local/churn/local/trained/etl/manifest.json", str(manifest_path))
    customers = synthetic.write_synthetic(tmp_path / "customers.csv", 2_000, 31)
    scores_uri = "s3://churn-pipeline-local/churn/local/scores/window/"
    scored = batch_scoring.batch_transform(
        params, model_uri, str(customers), scores_uri, cutoff=0.3, progress=lambda line: None, holdout=CONTROL_GROUP
    )
    # the scoring state machine drawn as its execution went: every state ran, in order
    drawn = _draw_state_machine(Path(scored["artifacts"]))
    assert drawn.stat().st_size > 10_000
    definition = json.loads((Path(scored["artifacts"]) / batch_scoring.STATE_MACHINE).read_text())
    history = json.loads((Path(scored["artifacts"]) / batch_scoring.HISTORY).read_text())
    nodes, edges = state_graph.layout(definition, history)
    assert [n.rank for n in nodes] == list(range(len(nodes))) and all(n.status == "SUCCEEDED" for n in nodes)
    assert all(edge.taken for edge in edges)
    local = scoring.score_file(
        spark,
        archive,
        json.loads(manifest_path.read_text()),
        0.3,
        str(customers),
        tmp_path / "scores.csv",
        holdout=CONTROL_GROUP,
    )
    outcomes = synthetic.simulate_outcomes(local.path, tmp_path / "outcomes.csv", 0.3, 5).path

    remote = monitor.describe_window(scores_uri, backend.store)
    assert remote["kind"] == "scores" and remote["identifier"] == "Phone" and not remote["header"]
    here = monitor.describe_window(str(local.path), backend.store)
    in_job = monitor_job.job_counts(
        params, "m1", [remote], statistics, None, str(outcomes), isolated / "artifacts" / "monitor-m1"
    )
    on_spark = monitor_pass.count_windows(spark, [here], statistics, None, str(outcomes))
    assert in_job == on_spark and in_job["windows"][0]["scores"]["decisions"]["holdout"] > 0
    folder = monitor_job.request_folder(monitor_job.Run(params, "m1", backend, tmp_path), "m1", "monitor")
    assert backend.store.exists(f"{folder}outcomes.csv")
    with pytest.raises(PipelineError, match="holds an earlier request of monitor 'm1'"):
        monitor_job.job_counts(params, "m1", [remote], statistics, None, "", isolated / "artifacts" / "monitor-m1")

    training_uri = "s3://churn-pipeline-local/churn/local/trained/data/customers.csv"
    backend.store.stage(training_uri, str(customers))
    retrained = monitor_job.job_retraining(
        params, "m2", training_uri, remote, str(outcomes), isolated / "artifacts" / "monitor-m2"
    )
    parts = tmp_path / "parts"
    added = monitor_pass.retraining_part(spark, str(customers), here, str(outcomes), str(parts))
    (part,) = parts.glob("part-*")
    assert retrained["added"] == added > 0
    assert backend.store.local_path(retrained["path"]).read_bytes() == part.read_bytes()
    lines = part.read_text().splitlines()
    assert lines[:2_001] == customers.read_text().splitlines() and len(lines) == 2_001 + added


def test_windows_outside_the_environment_or_mixed_are_refused(isolated, tmp_path):
    """GLUE-MONITOR-READS: the ETL job's role reads only under the environment's folder; windows in S3 and
    on this machine are monitored apart."""
    params = config.load(None, {})
    with pytest.raises(PipelineError, match="monitored apart"):
        monitor_job.in_s3(["s3://churn-pipeline-local/churn/local/scores/a/", str(tmp_path / "scores.csv")])
    outside = {"kind": "capture", "path": "s3://churn-pipeline-local/elsewhere/capture/"}
    with pytest.raises(PipelineError, match="reads only under s3://churn-pipeline-local/churn/local/"):
        monitor_job.job_counts(params, "m3", [outside], {}, None, "", tmp_path / "monitor-m3")


def test_a_failing_verdict_starts_the_pipeline_on_the_retraining_file(aws_env):
    """CP-VARIABLES: the monitor starts the CI/CD pipeline with its TrainingData variable set to the
    retraining file (or with none, for the data its parameters name), once per set of windows; a value
    that is not in S3 is refused before the call."""
    import boto3
    from helpers import ROOT

    params = config.load(ROOT / "parameters" / "dev.yaml", {})
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "codepipeline.amazonaws.com"}}
        ],
    }
    role = boto3.client("iam").create_role(
        RoleName="churn-dev-codepipeline", AssumeRolePolicyDocument=json.dumps(trust)
    )
    role = role["Role"]["Arn"]
    stage = lambda name, category, provider: {  # noqa: E731
        "name": name,
        "actions": [
            {
                "name": name,
                "actionTypeId": {"category": category, "owner": "AWS", "provider": provider, "version": "1"},
                "configuration": {"S3Bucket": "b", "S3ObjectKey": "k"}
                if category == "Source"
                else {"ProjectName": "p"},
                "outputArtifacts": [{"name": "out"}] if category == "Source" else [],
                "inputArtifacts": [] if category == "Source" else [{"name": "out"}],
            }
        ],
    }
    boto3.client("codepipeline").create_pipeline(
        pipeline={
            "name": "churn-dev",
            "roleArn": role,
            "artifactStore": {"type": "S3", "location": "artifacts"},
            "stages": [stage("Source", "Source", "S3"), stage("Build", "Build", "CodeBuild")],
            "pipelineType": "V2",
            "variables": [{"name": monitor_job.TRAINING_DATA_VARIABLE, "defaultValue": "from-parameters"}],
        }
    )
    retraining = "s3://sagemaker-eu-west-1-123456789012/churn/dev/monitoring/m/retrain/retraining.csv"
    window = "s3://sagemaker-eu-west-1-123456789012/churn/dev/scores/november/"
    started, now = monitor_job.start_pipeline(params, "churn-dev", retraining, [window])
    execution = boto3.client("codepipeline").get_pipeline_execution(
        pipelineName="churn-dev", pipelineExecutionId=started
    )["pipelineExecution"]
    assert now and execution["variables"] == [{"name": "TrainingData", "resolvedValue": retraining}]
    # the same window judged again (the next day's schedule) does not start the pipeline again
    assert monitor_job.start_pipeline(params, "churn-dev", retraining, [window]) == (started, False)
    other, now = monitor_job.start_pipeline(params, "churn-dev", "", [window.replace("november", "december")])
    assert now and other != started
    executions = boto3.client("codepipeline").list_pipeline_executions(pipelineName="churn-dev")
    assert len(executions["pipelineExecutionSummaries"]) == 2
    with pytest.raises(PipelineError, match="reads its training data from S3"):
        monitor_job.start_pipeline(params, "churn-dev", "/tmp/retraining.csv", ["/tmp/scores.csv"])
