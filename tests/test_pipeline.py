"""End to end: `churn-pipeline run` executes the three notebooks on the local backend."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import ROOT

from churn_pipeline import names, notebooks, runner, synthetic
from churn_pipeline.registry import SqliteRegistry

EXPECTED_ARTIFACTS = {
    "01-etl-setup.ipynb",
    "01-etl-setup.html",
    "02-train-workflow.ipynb",
    "02-train-workflow.html",
    "03-register-and-export.ipynb",
    "03-register-and-export.html",
    "statemachine.json",
    "execution-history.json",
    "metrics.json",
    "cloudformation_parameters.json",
    names.RUN_SUMMARY,
    "run.json",
    "parameters.json",
}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("pipeline")
    return {
        **os.environ,
        "CHURN_PIPELINE_HOME": str(base / "home"),
        "CHURN_PIPELINE_ARTIFACTS": str(base / "art"),
        "CHURN_PIPELINE_PROJECT": str(ROOT),
    }


def cli(env, *args, cwd=ROOT):
    return subprocess.run(
        [sys.executable, "-m", "churn_pipeline.cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def artifacts(env, run_id) -> Path:
    return Path(env["CHURN_PIPELINE_ARTIFACTS"]) / run_id


def registry(env):
    """The local registry of the local environment (``parameters/local.yaml``)."""
    return SqliteRegistry(Path(env["CHURN_PIPELINE_HOME"]) / "registries" / "churn-local-model-registry.db")


def notebook_text(path: Path) -> str:
    return path.read_text()


@pytest.fixture(scope="module")
def default_run(env):
    result = cli(env, "run", "--params", "parameters/local.yaml", "--run-id", "e2e-default")
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_default_run_prints_run_id_and_artifacts(default_run, env):
    assert "run id:    e2e-default" in default_run.stdout
    assert "state machine: succeeded" in default_run.stderr  # the state machine's own progress
    # in a log (no terminal): no cell bar, and every progress line a line of its own
    assert "Executing" not in default_run.stderr and "\r" not in default_run.stderr
    assert all(line.startswith("[e2e-default]") for line in default_run.stderr.splitlines() if "e2e-default]" in line)
    assert f"artifacts: {artifacts(env, 'e2e-default')}" in default_run.stdout
    assert {p.name for p in artifacts(env, "e2e-default").iterdir()} == EXPECTED_ARTIFACTS


def test_the_audit_pages_render_in_a_browser_with_their_plots(default_run, env):
    """Each executed notebook's HTML of a default run, opened in headless Chromium with no network: its
    title, every image loaded, tables, no error output, no NaN, nothing fetched from elsewhere; the
    state-machine graph of notebook 02 kept as a screenshot (test-artifacts/)."""
    import browser

    session = browser.chromium()
    try:
        least_images = {"01-etl-setup": 0, "02-train-workflow": 1, "03-register-and-export": 2}
        for name, images in least_images.items():
            facts = browser.page_facts(session, artifacts(env, "e2e-default") / f"{name}.html")
            assert facts["title"] == name
            assert len(facts["images"]) >= images and all(image["loaded"] for image in facts["images"]), facts
            assert facts["tables"] >= 1 and facts["errors"] == 0 and not facts["traceback"], facts
            assert not facts["nan"] and facts["fetched"] == [], facts
        browser.page_facts(session, artifacts(env, "e2e-default") / "02-train-workflow.html")
        from selenium.webdriver.common.by import By

        (graph,) = session.find_elements(By.TAG_NAME, "img")
        session.execute_script("arguments[0].scrollIntoView();", graph)
        kept = ROOT / "test-artifacts" / "02-state-machine.png"
        kept.parent.mkdir(exist_ok=True)
        assert graph.screenshot(str(kept)) and kept.stat().st_size > 20_000
    finally:
        session.quit()


def test_default_run_registers_the_model_and_exports_it(default_run, env):
    out = artifacts(env, "e2e-default")
    record = registry(env).get("e2e-default")
    assert record.status == "approved" and record.environment == "local" and record.algorithm == "xgboost"
    assert record.metrics["validation:accuracy"] > 0.9
    assert record.model_name == "churn-local-e2e-default"
    assert record.training_job_name == "churn-local-e2e-default-0"  # -<redrive count>
    manifest = json.loads((out / names.RUN_SUMMARY).read_text())
    assert manifest["status"] == "succeeded" and manifest["execution_status"] == "SUCCEEDED"
    assert record.data_sha256 == manifest["data"]["data_sha256"]
    assert manifest["packages"]["xgboost"].startswith("3.0.")
    assert [n["notebook"] for n in manifest["notebooks"]] == list(notebooks.NOTEBOOKS)
    exported = json.loads((out / names.DEPLOY_PARAMETERS).read_text())
    assert exported["Parameters"]["ModelDataUrl"] == record.model_data_url
    assert exported["Parameters"]["TrainingImage"].endswith("/sagemaker-xgboost:3.0-5")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.9 and set(metrics["test"]["confusion_matrix"]) == {
        "true_negative",
        "false_positive",
        "false_negative",
        "true_positive",
    }
    model_file = Path(env["CHURN_PIPELINE_HOME"]) / "s3" / record.model_data_url[len("s3://") :]
    assert model_file.exists() and model_file.name == "model.tar.gz"
    # MONITOR-FORMATS: the record points to the training split's baseline beside the ETL output
    etl = record.extra["etl"]["output_uri"]
    assert record.extra["baseline"] == {
        "statistics": f"{etl}/{names.BASELINE_STATISTICS}",
        "constraints": f"{etl}/{names.BASELINE_CONSTRAINTS}",
    }
    for uri in record.extra["baseline"].values():
        assert (Path(env["CHURN_PIPELINE_HOME"]) / "s3" / uri[len("s3://") :]).exists()


def test_the_deployed_definition_is_the_saved_one_and_the_history_is_complete(default_run, env):
    out = artifacts(env, "e2e-default")
    deployed = json.loads(
        (
            Path(env["CHURN_PIPELINE_HOME"]) / "stepfunctions" / "state-machines" / "churn-local-training-pipeline.json"
        ).read_text()
    )["definition"]
    assert deployed == (out / "statemachine.json").read_text()
    history = json.loads((out / "execution-history.json").read_text())
    assert history["status"] == "SUCCEEDED"
    assert [s["state"] for s in history["states"]] == [
        "Reuse Previous ETL?",
        "ETL",
        "Tune Hyper-Parameters?",
        "Model Training",
        "Save Model",
        "Query Training Results",
        "Accuracy Above Threshold",
        "Update Model Registry",
    ]
    assert all(s["started"] and s["ended"] for s in history["states"])


def test_executed_notebooks_hold_no_absolute_paths_or_secrets(default_run, env):
    out = artifacts(env, "e2e-default")
    forbidden = [
        str(ROOT),
        str(Path.home()),
        env["CHURN_PIPELINE_HOME"],
        env["CHURN_PIPELINE_ARTIFACTS"],
        "aws_secret_access_key",
        "AWS_SECRET",
    ]
    for name in notebooks.NOTEBOOKS:
        text = notebook_text(out / name)
        for value in forbidden:
            assert value not in text, (name, value)
        nbformat.validate(nbformat.reads(text, as_version=4))


def test_registry_cli_lists_and_shows(default_run, env):
    listing = cli(env, "registry", "list", "--json")
    assert listing.returncode == 0
    assert "e2e-default" in [r["run_id"] for r in json.loads(listing.stdout)]
    shown = cli(env, "registry", "show", "e2e-default", "--json")
    assert json.loads(shown.stdout)["model_name"] == "churn-local-e2e-default"
    table = cli(env, "registry", "list")
    assert "e2e-default" in table.stdout and "churn-local-e2e-default" in table.stdout
    missing = cli(env, "registry", "show", "nope")
    assert missing.returncode == 2 and "no registry record for run 'nope'" in missing.stderr


def test_a_run_id_is_never_reused(default_run, env):
    again = cli(env, "run", "--run-id", "e2e-default", "--quiet")
    assert again.returncode == 2 and "exist already" in again.stderr
    assert registry(env).get("e2e-default").status == "approved"


def test_gate_failure_registers_nothing_and_keeps_the_notebooks(env):
    result = cli(env, "run", "--run-id", "e2e-gate", "-p", "accuracy_threshold=0.99", "--quiet")
    assert result.returncode == 1
    assert "02-train-workflow.ipynb failed" in result.stderr
    assert "ModelAccuracyBelowThreshold" in result.stderr
    out = artifacts(env, "e2e-gate")
    assert not (out / names.DEPLOY_PARAMETERS).exists() and not (out / "03-register-and-export.ipynb").exists()
    assert (out / "02-train-workflow.html").exists()
    executed = notebook_text(out / "02-train-workflow.ipynb")
    assert "Accuracy Below Threshold" in executed and "ExecutionFailed" in executed
    assert "e2e-gate" not in [r.run_id for r in registry(env).list()]
    history = json.loads((out / "execution-history.json").read_text())
    assert (history["status"], history["failedState"]) == ("FAILED", "Accuracy Below Threshold")
    assert json.loads((out / names.RUN_SUMMARY).read_text())["status"] == "failed"
    again = cli(env, "run", "--resume", "e2e-gate", "--quiet")  # redriving would judge the same model again
    assert again.returncode == 1 and "did not pass the accuracy gate" in again.stderr


def test_bad_data_stops_before_training_naming_file_line_and_column(env, tmp_path):
    bad = tmp_path / "customers.csv"
    lines = (ROOT / "tests" / "data" / "tiny_raw.csv").read_text().splitlines()
    fields = lines[3].split(",")
    fields[7] = "n/a"  # Day Mins
    lines[3] = ",".join(fields)
    bad.write_text("\n".join(lines) + "\n")
    result = cli(env, "run", "--run-id", "e2e-bad-data", "--data", str(bad), "--quiet")
    assert result.returncode == 1
    assert "01-etl-setup.ipynb failed in cell" in result.stderr
    assert "customers.csv, line 4, column 'Day Mins': value 'n/a' is not a number" in result.stderr
    out = artifacts(env, "e2e-bad-data")
    assert (out / "01-etl-setup.ipynb").exists() and not (out / "02-train-workflow.ipynb").exists()
    assert "e2e-bad-data" not in [r.run_id for r in registry(env).list()]


def test_a_bad_row_past_the_first_rows_stops_the_etl_naming_file_line_and_column(env, tmp_path):
    """Notebook 01 checks the first rows only; the ETL job checks every row and the run stops there, with
    the job's own message as the cause (SFN-SYNC-CAUSE)."""
    from churn_pipeline import data

    path = synthetic.write_synthetic(tmp_path / "customers.csv", data.PROFILE_ROWS + 2000, 3)
    lines = path.read_text().splitlines()
    fields = lines[data.PROFILE_ROWS + 500].split(",")
    fields[7] = "n/a"  # Day Mins
    lines[data.PROFILE_ROWS + 500] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    result = cli(env, "run", "--run-id", "e2e-bad-row", "--data", str(path), "--quiet")
    assert result.returncode == 1
    assert "execution failed in state 'ETL': States.TaskFailed: " in result.stderr
    assert (
        f"customers.csv, line {data.PROFILE_ROWS + 501}, column 'Day Mins': value 'n/a' is not a number"
        in result.stderr
    )
    history = json.loads((artifacts(env, "e2e-bad-row") / "execution-history.json").read_text())
    assert "Model Training" not in [s["state"] for s in history["states"]]
    assert "e2e-bad-row" not in [r.run_id for r in registry(env).list()]


def test_a_failing_task_names_the_state_error_and_cause(env):
    """reuse_etl=false runs the ETL even when an identical one ran before (here it fails)."""
    result = cli(
        env, "run", "--run-id", "e2e-etl-fails", "-p", "spark_master=no-such-master", "-p", "reuse_etl=false", "--quiet"
    )
    assert result.returncode == 1
    assert "execution failed in state 'ETL'" in result.stderr
    assert "e2e-etl-fails" not in [r.run_id for r in registry(env).list()]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-p", "bogus=1"], "unknown parameter 'bogus'"),
        (["-p", "max_depth=deep"], "'max_depth' must be int"),
        (["-p", "import=1"], "is not a Python identifier"),
        (["--run-id", "no spaces"], "run id 'no spaces'"),
        (["-p", "environment=dev_1"], "parameters project and environment: resource name 'churn-dev_1-"),
        (["-p", "project=" + "p" * 50], "letters, digits and hyphens; shorten project or environment"),
    ],
)
def test_invalid_parameters_are_refused_before_anything_runs(env, args, message):
    result = cli(env, "run", *args, "--quiet")
    assert result.returncode == 2 and message in result.stderr
    assert not any(artifacts(env, "x").parent.glob("*no spaces*"))


def test_public_dataset_clears_the_gate(env, churn_txt):
    result = cli(env, "run", "--run-id", "e2e-public", "--data", str(churn_txt), "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((artifacts(env, "e2e-public") / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] >= 0.94
    assert registry(env).get("e2e-public").data_sha256 == runner_sha(churn_txt)


def runner_sha(path):
    from churn_pipeline.storage import sha256_of

    return sha256_of(path)


def test_generate_data_cli(env, tmp_path):
    result = cli(env, "generate-data", "--rows", "500", "--seed", "9", "--out", str(tmp_path / "g.csv"))
    assert result.returncode == 0 and "wrote 500 rows" in result.stdout
    assert (tmp_path / "g.csv").read_text().splitlines()[0].endswith("Churn?")


def _stack_parameters(exported):
    return [{"ParameterKey": k, "ParameterValue": v} for k, v in exported.items()]


def _create_model_as_save_model_does(sagemaker, exported):
    sagemaker.create_model(
        ModelName=exported["ModelName"],
        ExecutionRoleArn=exported["RoleArn"],
        PrimaryContainer={"Image": exported["TrainingImage"], "ModelDataUrl": exported["ModelDataUrl"]},
    )


def test_the_deploy_stack_serves_the_pipelines_model_and_updates_blue_green(default_run, env, monkeypatch):
    """CFN-MODEL-NAME CFN-STACK-STATES: The Save Model state has created the model; the stack must use it by name,
    not create it again
    (SageMaker refuses an existing model name; the strict layer holds moto to that and to ModelName)."""
    import boto3
    import strict_aws
    from helpers import fake_aws_credentials
    from moto import mock_aws

    strict_aws.apply(monkeypatch)
    fake_aws_credentials(monkeypatch)
    exported = json.loads((artifacts(env, "e2e-default") / names.DEPLOY_PARAMETERS).read_text())["Parameters"]
    template = (ROOT / "cloudformation" / "deploy-model.yml").read_text()
    with mock_aws():
        cloudformation, sagemaker = boto3.client("cloudformation"), boto3.client("sagemaker")
        _create_model_as_save_model_does(sagemaker, exported)
        cloudformation.create_stack(
            StackName="churn-dev-endpoint", TemplateBody=template, Parameters=_stack_parameters(exported)
        )
        stack = cloudformation.describe_stacks(StackName="churn-dev-endpoint")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
        assert outputs["ModelName"] == exported["ModelName"]
        endpoint = sagemaker.describe_endpoint(EndpointName="churn-dev-endpoint-endpoint")
        variant = sagemaker.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])[
            "ProductionVariants"
        ][0]
        assert variant["ModelName"] == exported["ModelName"]
        assert variant["InstanceType"] == exported["InstanceType"]

        second = dict(
            exported,
            ModelName=exported["ModelName"] + "-b",
            ModelDataUrl=exported["ModelDataUrl"].replace("model.tar.gz", "b/model.tar.gz"),
        )
        _create_model_as_save_model_does(sagemaker, second)
        cloudformation.update_stack(
            StackName="churn-dev-endpoint", TemplateBody=template, Parameters=_stack_parameters(second)
        )
        stack = cloudformation.describe_stacks(StackName="churn-dev-endpoint")["Stacks"][0]
        assert stack["StackStatus"] == "UPDATE_COMPLETE"
        # The stack's new endpoint config serves the second model. (moto does not re-point the
        # Endpoint resource when only a !GetAtt it reads changed; CloudFormation does.)
        resources = {
            r["LogicalResourceId"]: r["PhysicalResourceId"]
            for r in cloudformation.list_stack_resources(StackName="churn-dev-endpoint")["StackResourceSummaries"]
        }
        config_name = resources["EndpointConfig"].rsplit("/", 1)[-1]
        variant = sagemaker.describe_endpoint_config(EndpointConfigName=config_name)["ProductionVariants"][0]
        assert variant["ModelName"] == second["ModelName"]
        assert sagemaker.describe_model(ModelName=exported["ModelName"])  # the first model is left as it was


def test_a_template_that_creates_the_model_again_fails_under_the_strict_layer(monkeypatch):
    """CFN-MODEL-NAME SM-MODEL-EXISTS: What the deploy stage did before: create AWS::SageMaker::Model named after the
    existing model."""
    import boto3
    import strict_aws
    import yaml
    from botocore.exceptions import ClientError
    from helpers import fake_aws_credentials
    from moto import mock_aws

    strict_aws.apply(monkeypatch)
    fake_aws_credentials(monkeypatch)
    exported = {
        "ModelName": "churn-dev-r1",
        "RoleArn": "arn:aws:iam::123456789012:role/sm",
        "TrainingImage": "141502667606.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-xgboost:3.0-5",
        "ModelDataUrl": "s3://bucket-1/churn/r1/models/churn-dev-r1/output/model.tar.gz",
    }
    template = {
        "Resources": {
            "Model": {
                "Type": "AWS::SageMaker::Model",
                "Properties": {
                    "ModelName": exported["ModelName"],
                    "ExecutionRoleArn": exported["RoleArn"],
                    "PrimaryContainer": {"Image": exported["TrainingImage"], "ModelDataUrl": exported["ModelDataUrl"]},
                },
            }
        }
    }
    with mock_aws():
        _create_model_as_save_model_does(boto3.client("sagemaker"), exported)
        with pytest.raises(ClientError, match="Cannot create already existing model"):
            boto3.client("cloudformation").create_stack(StackName="s", TemplateBody=yaml.safe_dump(template))


def test_a_second_run_on_the_same_data_reuses_the_etl(default_run, env):
    """SFN-CHOICE-REUSE: same data, ETL code, fractions and seed -> the Choice state skips the ETL job."""
    result = cli(env, "run", "--run-id", "e2e-reuse", "-p", "max_depth=4", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    out = artifacts(env, "e2e-reuse")
    manifest = json.loads((out / names.RUN_SUMMARY).read_text())
    assert manifest["etl"]["reused"] and manifest["etl"]["source_run_id"] == "e2e-default"
    history = json.loads((out / "execution-history.json").read_text())
    assert [s["state"] for s in history["states"]][:3] == [
        "Reuse Previous ETL?",
        "Tune Hyper-Parameters?",
        "Model Training",
    ]
    assert "ETL" not in [s["state"] for s in history["states"]]
    record = registry(env).get("e2e-reuse")
    assert record.extra["etl"] == {
        "output_uri": manifest["etl"]["output_uri"],
        "reused": True,
        "source_run_id": "e2e-default",
    }
    assert record.extra["baseline"] == registry(env).get("e2e-default").extra["baseline"]  # reused with the ETL
    assert "reuse the output of run e2e-default" in notebook_text(out / "02-train-workflow.ipynb")
    bucket = Path(env["CHURN_PIPELINE_HOME"]) / "s3" / "churn-pipeline-local" / "churn" / "local"
    copied = json.loads((bucket / "e2e-reuse" / "etl" / names.FEATURE_MANIFEST).read_text())
    assert copied["reused_from"]["run_id"] == "e2e-default"
    assert not (bucket / "e2e-reuse" / "etl" / "train").exists()


def test_a_tuning_run_registers_the_best_job_with_the_same_definition(default_run, env):
    """SFN-TUNING-SYNC, SFN-AWS-SDK-DESCRIBE: with tuning_max_jobs the execution takes the tuning branch of
    the same definition (nothing new to publish), and the best training job's description flows into Save
    Model, the gate and the registry as one training job's does; the record keeps the search."""
    from churn_pipeline.backends.local import LocalBackend

    result = cli(env, "run", "--params", "parameters/local.yaml", "--run-id", "e2e-tuned", "-p", "tuning_max_jobs=3")
    assert result.returncode == 0, result.stderr[-3000:]
    tuned, plain = artifacts(env, "e2e-tuned"), artifacts(env, "e2e-default")
    assert (tuned / "statemachine.json").read_text() == (plain / "statemachine.json").read_text()
    record = registry(env).get("e2e-tuned")
    search = record.extra["tuning"]
    assert search["Strategy"] == "Bayesian" and search["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 3
    tuning_job = f"{search['job_name']}-0"
    assert record.training_job_name.startswith(f"{tuning_job}-")
    sagemaker = LocalBackend(None, env["CHURN_PIPELINE_HOME"]).client("sagemaker")
    listed = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=tuning_job, SortBy="FinalObjectiveMetricValue", SortOrder="Descending"
    )["TrainingJobSummaries"]
    assert len(listed) == 3 and listed[0]["TrainingJobName"] == record.training_job_name
    assert record.metrics["validation:auc"] == listed[0]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert record.hyperparameters["max_depth"] == listed[0]["TunedHyperParameters"]["max_depth"]
    assert registry(env).get("e2e-default").extra["tuning"] == {}
    shown = notebook_text(tuned / "02-train-workflow.ipynb")  # the search's jobs, the best one marked
    assert record.training_job_name in shown and "validation:auc" in shown and "best" in shown
    assert "tuning_max_jobs is 0" in notebook_text(plain / "02-train-workflow.ipynb")


def test_resume_continues_a_failed_run_from_the_state_that_failed(default_run, env, monkeypatch):
    """SFN-REDRIVE: the functions vanish while notebook 02 runs; once they are back, --resume redrives the
    execution: training is not run again, the failed attempt is kept in attempt-1/. LAMBDA-VERSIONS: other
    code deployed to the functions before the redrive is never run: the states invoke the versions the
    run published."""
    from churn_pipeline import config
    from churn_pipeline.backends.local import LocalBackend

    for name in ("CHURN_PIPELINE_HOME", "CHURN_PIPELINE_ARTIFACTS", "CHURN_PIPELINE_PROJECT"):
        monkeypatch.setenv(name, env[name])
    functions = Path(env["CHURN_PIPELINE_HOME"]) / "lambda"
    hidden = functions.with_name("lambda-away")

    def log(message):
        if message.endswith(f"{notebooks.WORKFLOW_NOTEBOOK} ..."):
            functions.rename(hidden)

    params = config.load(ROOT / "parameters" / "local.yaml", {"run_id": "e2e-resume"})
    failed = runner.run_notebooks(params, progress=False, log=log)
    hidden.rename(functions)
    assert failed.status == "failed" and "Query Training Results" in failed.error
    lambdas = LocalBackend(params, env["CHURN_PIPELINE_HOME"]).client("lambda")
    for function in ("churn-local-query-training-status", "churn-local-update-model-registry"):
        _redeploy_failing_code(lambdas, function)
    result = cli(env, "run", "--resume", "e2e-resume")
    assert result.returncode == 0, result.stderr[-3000:]
    out = artifacts(env, "e2e-resume")
    assert "attempt-1" in result.stderr and "state machine: succeeded" in result.stderr
    kept = out / "attempt-1"
    assert {p.name for p in kept.iterdir()} >= {
        "02-train-workflow.ipynb",
        "02-train-workflow.html",
        names.RUN_SUMMARY,
        "execution-history.json",
        "run.json",
    }
    assert "ResourceNotFoundException" in notebook_text(kept / "02-train-workflow.ipynb")
    assert json.loads((kept / names.RUN_SUMMARY).read_text())["status"] == "failed"
    manifest = json.loads((out / names.RUN_SUMMARY).read_text())
    assert (manifest["status"], manifest["attempt"], manifest["redriven"]) == ("succeeded", 2, 1)
    assert [n["notebook"] for n in manifest["notebooks"]] == list(notebooks.NOTEBOOKS)
    history = json.loads((out / "execution-history.json").read_text())
    states = [(s["state"], s["status"]) for s in history["states"]]
    assert states.count(("Model Training", "SUCCEEDED")) == 1 and ("Query Training Results", "FAILED") in states
    assert states[-1] == ("Update Model Registry", "SUCCEEDED")
    assert registry(env).get("e2e-resume").training_job_name.endswith("-0")
    assert history["input"]["RegistryFunction"].endswith(":function:churn-local-update-model-registry:1")
    assert history["output"]["RegistryResult"]["ExecutedVersion"] == "1"

    again = cli(env, "run", "--resume", "e2e-resume", "--quiet")
    assert again.returncode != 0 and "succeeded: there is nothing to resume" in again.stderr


def _redeploy_failing_code(lambdas, function: str) -> None:
    """Replace a function's $LATEST with code that fails, as a later build with a bug would."""
    import io
    import zipfile

    code = lambdas.functions.read(function)["Code"]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for module in ("query_training_status.py", "update_model_registry.py"):
            archive.writestr(module, "def handler(event, context):\n    raise RuntimeError('redeployed code ran')\n")
    key = "churn/local/code/failing-functions.zip"
    lambdas.backend.store.put(f"s3://{code['S3Bucket']}/{key}", buffer.getvalue())
    lambdas.update_function_code(FunctionName=function, S3Bucket=code["S3Bucket"], S3Key=key)
    lambdas.get_function_configuration(FunctionName=function)


def test_a_redriven_etl_runs_the_code_its_run_deployed_not_the_jobs_current_code(default_run, env, monkeypatch):
    """GLUE-RUN-CODE: the ETL state fails (its script is away while notebook 02 runs); before --resume the
    job is redeployed with other code; the redriven ETL state runs the script and package of its own run,
    named by the execution input, and the job's current definition is never run."""
    from churn_pipeline import config
    from churn_pipeline.backends.local import LocalBackend

    for name in ("CHURN_PIPELINE_HOME", "CHURN_PIPELINE_ARTIFACTS", "CHURN_PIPELINE_PROJECT"):
        monkeypatch.setenv(name, env[name])
    params = config.load(ROOT / "parameters" / "local.yaml", {"run_id": "e2e-pinned", "reuse_etl": False})
    backend = LocalBackend(params, env["CHURN_PIPELINE_HOME"])
    glue = backend.client("glue")
    moved = []

    def log(message):  # notebook 01 has staged and deployed the code: take the script away
        if message.endswith(f"{notebooks.WORKFLOW_NOTEBOOK} ..."):
            script = backend.mirror.path(glue.get_job(JobName="churn-local-etl")["Job"]["Command"]["ScriptLocation"])
            moved.append((script, script.rename(script.with_name("away.py"))))

    failed = runner.run_notebooks(params, progress=False, log=log)
    ((script, away),) = moved
    away.rename(script)
    assert failed.status == "failed" and "in state 'ETL'" in failed.error
    other = "s3://churn-pipeline-local/churn/local/code/other-code.py"
    backend.store.put(other, b"raise SystemExit('the redeployed code ran')\n")
    job = glue.get_job(JobName="churn-local-etl")["Job"]
    update = {k: v for k, v in job.items() if k not in ("Name", "CreatedOn", "LastModifiedOn")}
    glue.update_job(
        JobName="churn-local-etl", JobUpdate={**update, "Command": {**job["Command"], "ScriptLocation": other}}
    )

    result = cli(env, "run", "--resume", "e2e-pinned", "--quiet")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [glue.runs.read(name) for name in glue.runs.names()]
    pinned = [r["Arguments"]["--scriptLocation"] for r in runs if r["Arguments"].get("--RUN_ID") == "e2e-pinned"]
    assert len(pinned) == 2 and set(pinned) == {job["Command"]["ScriptLocation"]} != {other}


def test_the_saved_model_answers_as_the_local_deploy_answers(default_run, env, tmp_path, monkeypatch):
    """SM-ENDPOINT-MODEL, SM-SCRIPT-OFFLINE, SM-SCRIPT-HEADERS: the model Save Model created runs the
    endpoint's script in script mode from its source dir, startable offline; run as the container runs
    it (its source dir unpacked, its model extracted, its manifest and decision read where its
    environment says), it answers every request byte for byte as the local deploy of the run does,
    deciding at the cutoff notebook 03 recorded."""
    import importlib.util
    import tarfile

    from churn_pipeline import container, inference, serving
    from churn_pipeline.backends.local import LocalBackend

    backend = LocalBackend(None, env["CHURN_PIPELINE_HOME"])
    saved = backend.client("sagemaker").describe_model(ModelName="churn-local-e2e-default")["PrimaryContainer"]
    variables = saved["Environment"]
    assert variables["SAGEMAKER_PROGRAM"] == container.ENDPOINT_PROGRAM
    assert variables["PIP_NO_BUILD_ISOLATION"] == "false"
    assert variables[inference.DECISION_VARIABLE].endswith("/churn/local/e2e-default/decision.json")
    code_dir, model_dir = tmp_path / "code", tmp_path / "model"
    with tarfile.open(backend.store.local_path(variables["SAGEMAKER_SUBMIT_DIRECTORY"])) as archive:
        archive.extractall(code_dir, filter="data")
    with tarfile.open(backend.store.local_path(saved["ModelDataUrl"])) as archive:
        archive.extractall(model_dir, filter="data")
    spec = importlib.util.spec_from_file_location("serve_endpoint", code_dir / container.ENDPOINT_PROGRAM)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    for name, value in variables.items():
        monkeypatch.setenv(name, str(backend.store.local_path(value)) if value.startswith("s3://") else value)
    on_aws = serving.host_app(script, model_dir, variables[container.DEFAULT_ACCEPT_VARIABLE]).test_client()

    source = serving.resolve_model("e2e-default", backend, registry(env))
    for name, value in source.environment().items():
        monkeypatch.setenv(name, value)
    with tarfile.open(source.model) as archive:
        archive.extractall(tmp_path / "local-model", filter="data")
    local = serving.host_app(serving.endpoint_script(), tmp_path / "local-model", "text/csv").test_client()

    data = Path(env["CHURN_PIPELINE_HOME"]) / "s3" / "churn-pipeline-local" / "churn" / "local" / "e2e-default"
    raw = "\n".join(next((data / "raw").glob("*.csv")).read_text().splitlines()[:40])
    requests = [
        ({"Content-Type": "text/csv; header=present"}, raw),
        ({"Content-Type": "text/csv; header=present", "Accept": "application/json"}, raw),
        ({"Content-Type": "text/csv; header=present", inference.CUSTOM_ATTRIBUTES_HEADER: "explain=2"}, raw),
        ({"Content-Type": "text/csv; header=present", "Accept": "application/jsonlines",
          inference.CUSTOM_ATTRIBUTES_HEADER: "explain=1"}, raw),
        ({"Content-Type": "text/csv"}, "1,2,3"),
        ({"Content-Type": "application/json"}, "{not json"),
        ({"Content-Type": "text/csv; header=present", "Accept": "image/png"}, raw),
        ({}, ""),
    ]  # fmt: skip
    answers = []
    for headers, body in requests:
        aws, here = (client.post("/invocations", data=body, headers=headers) for client in (on_aws, local))
        assert (aws.status_code, aws.content_type, aws.data) == (here.status_code, here.content_type, here.data)
        answers.append(aws)
    assert [a.status_code for a in answers] == [200, 200, 200, 200, 400, 415, 406, 415]
    decided = [json.loads(line) for line in answers[3].data.decode().splitlines()]
    cutoff = registry(env).get("e2e-default").cutoff
    assert all(row["decision"] == (row["score"] > cutoff) for row in decided) and cutoff != 0.5


def test_the_loop_from_a_drifted_window_to_a_retrained_model_is_one_command(default_run, env, tmp_path):
    """Score a drifted population with a control group, simulate its outcomes, then `monitor --retrain`:
    notebook 04 runs headlessly, the verdict is the exit status, and a new model is trained on the
    model's data plus the window's untreated customers."""
    customers, scores, outcomes = tmp_path / "customers.csv", tmp_path / "scores.csv", tmp_path / "outcomes.csv"
    drawn = cli(
        env, "generate-data", "--rows", "4000", "--seed", "8", "--shift", "day-mins-up", "--out", str(customers)
    )
    assert drawn.returncode == 0, drawn.stderr[-2000:]
    scored = cli(env, "score", "--model", "e2e-default", "--data", str(customers), "--out", str(scores),
                 "--holdout-fraction", "0.2", "--date", "2026-11-29")  # fmt: skip
    assert scored.returncode == 0, scored.stderr[-2000:]
    assert "held out of the offers (control group of 20% for 2026-11-29)" in scored.stdout
    simulated = cli(env, "generate-data", "--outcomes-for", str(scores), "--offer-effect", "0.3",
                    "--out", str(outcomes))  # fmt: skip
    assert simulated.returncode == 0, simulated.stderr[-2000:]
    refused = cli(env, "monitor", "--window", str(scores), "-p", "max_psi=0.2")
    assert refused.returncode == 2 and "unknown monitor threshold max_psi" in refused.stderr
    monitored = cli(env, "monitor", "--window", str(scores), "--outcomes", str(outcomes), "--monitor-id", "loop-1",
                    "--retrain", "--quiet")  # fmt: skip
    assert monitored.returncode == 3, monitored.stdout[-2000:] + monitored.stderr[-3000:]
    folder = Path(env["CHURN_PIPELINE_ARTIFACTS"]) / "monitor-loop-1"
    report = json.loads((folder / "monitoring.json").read_text())
    assert report["verdict"] == "drift" and report["drift"]["Day Mins"]["drifted"] and report["model"] == "e2e-default"
    assert report["quality"]["customers"] > 0 and report["offers"]["holdout"]["customers"] > 0
    violations = json.loads((folder / "constraint_violations.json").read_text())["violations"]
    drifted = {(v["feature_name"], v["constraint_check_type"]) for v in violations}
    assert ("Day Mins", "baseline_drift_check") in drifted
    # the audit page names the windows it read; the project's and the home's paths are sanitised
    executed = (folder / "04-monitor.ipynb").read_text()
    assert (folder / "04-monitor.html").exists() and str(scores) in executed and str(ROOT) not in executed
    import browser

    session = browser.chromium(optional=True)  # the monitor's audit page, as a reviewer opens it
    if session is not None:
        try:
            facts = browser.page_facts(session, folder / "04-monitor.html")
        finally:
            session.quit()
        assert facts["title"] == "04-monitor" and len(facts["images"]) >= 2, facts
        assert all(i["loaded"] for i in facts["images"]) and facts["errors"] == 0 and not facts["nan"], facts
    added = int(re.search(r"and ([\d,]+) untreated customers", monitored.stdout).group(1).replace(",", ""))
    untreated = report["windows"][0]["decisions"]["no_offer"] + report["windows"][0]["decisions"]["holdout"]
    assert 0 < added <= untreated
    default_data_lines = 5000 + 1  # the default run's synthetic customers and their header
    assert len((folder / "retraining.csv").read_text().splitlines()) == default_data_lines + added
    retrained = re.search(r"run id:    (\S+) \(succeeded\)", monitored.stdout).group(1)
    assert registry(env).get(retrained).data_uri.endswith("retraining.csv")
