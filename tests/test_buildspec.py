"""buildspec.yml names commands, files and paths that exist in the project."""

import shlex

import tomllib
import yaml
from helpers import ROOT, churn_pipeline_calls

from churn_pipeline import cli, names


def buildspec():
    return yaml.safe_load((ROOT / "buildspec.yml").read_text())


def _substitute(command, variables):
    for name, value in variables.items():
        command = command.replace(f"${name}", value).replace(f"${{{name}}}", value)
    return command


def test_runtime_matches_the_project():
    runtimes = buildspec()["phases"]["install"]["runtime-versions"]
    assert str(runtimes["python"]) == "3.11" and "17" in str(runtimes["java"])


def test_churn_pipeline_commands_parse_and_name_existing_files():
    """CP-VARIABLES: the build trains on the pipeline's TrainingData when an execution sets it, else on
    the data of its parameters file."""
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "churn-pipeline" in scripts
    calls = churn_pipeline_calls(buildspec(), {"TRAINING_DATA": "from-parameters"})
    assert [c[0] for c in calls] == ["doctor", "run"]
    for argv in calls:
        arguments = cli.build_parser().parse_args(argv)
        assert (ROOT / arguments.params).exists()
    run = cli.build_parser().parse_args(calls[1])
    assert run.params == "parameters/dev.yaml" and run.run_id == "build-17" and run.data is None
    retraining = "s3://sagemaker-eu-west-1-1/churn/dev/monitoring/m/retrain/retraining.csv"
    run = cli.build_parser().parse_args(churn_pipeline_calls(buildspec(), {"TRAINING_DATA": retraining})[1])
    assert run.data == retraining


def test_the_scheduled_monitor_reads_yesterdays_window_and_retrains_only_with_outcomes():
    """CODEBUILD-SHELL: the monitor build's commands share one shell: "{yesterday}" becomes the day's
    capture folders; --retrain with outcomes alone;
    a failing verdict starts the pipeline by its name; the exit status of a verdict keeps the build green."""
    import datetime

    spec = yaml.safe_load((ROOT / "buildspec-monitor.yml").read_text())
    assert spec["phases"]["install"] == buildspec()["phases"]["install"]
    window = "s3://sagemaker-eu-west-1-1/churn/dev/capture/churn-dev-endpoint/AllTraffic/{yesterday}/"
    project = {"MONITOR_WINDOW": window, "MONITOR_MODEL": "", "MONITOR_OUTCOMES": "", "PIPELINE_NAME": "churn-dev"}
    (argv,) = churn_pipeline_calls(spec, project)
    monitor = cli.build_parser().parse_args(argv)
    yesterday = datetime.datetime.now(datetime.timezone.utc).date() - datetime.timedelta(days=1)
    assert monitor.window == [window.replace("{yesterday}", yesterday.strftime("%Y/%m/%d"))]
    assert monitor.start_pipeline == "churn-dev" and not monitor.retrain and monitor.outcomes is None
    assert monitor.model is None and (ROOT / monitor.params).exists()
    days = {(yesterday + datetime.timedelta(days=n)).strftime("%Y%m%d") for n in (1, 2)}  # a midnight between
    assert monitor.monitor_id in {f"scheduled-{day}-17" for day in days}  # unique if build numbers restart
    (argv,) = churn_pipeline_calls(spec, {**project, "MONITOR_MODEL": "build-12"})
    assert cli.build_parser().parse_args(argv).model == "build-12"  # a capture names no model
    outcomes = "s3://customer-data/outcomes/2026-11.csv"
    (argv,) = churn_pipeline_calls(spec, {**project, "MONITOR_OUTCOMES": outcomes})
    monitor = cli.build_parser().parse_args(argv)
    assert monitor.retrain and monitor.outcomes == outcomes
    assert "build/artifacts/**/*" in spec["artifacts"]["files"]


def test_published_artifacts_are_where_the_run_writes_them():
    spec = buildspec()
    variables = {**spec["env"]["variables"], "CODEBUILD_BUILD_NUMBER": "17"}
    copy = shlex.split(_substitute(spec["phases"]["post_build"]["commands"][0], variables))
    assert copy[0] == "cp"
    assert copy[1] == f"{variables['CHURN_PIPELINE_ARTIFACTS']}/build-17/{names.DEPLOY_PARAMETERS}"
    files = spec["artifacts"]["files"]
    assert copy[2] == names.DEPLOY_PARAMETERS  # at the root, where the deploy action reads it
    assert names.DEPLOY_PARAMETERS in files
    assert f"{variables['CHURN_PIPELINE_ARTIFACTS']}/**/*" in files  # executed notebooks and HTML
    for path in files:
        if "*" not in path:
            assert path == names.DEPLOY_PARAMETERS or (ROOT / path).exists(), path
