"""buildspec.yml names commands, files and paths that exist in the project."""

import shlex

import tomllib
import yaml
from helpers import ROOT

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
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    commands = [c for phase in buildspec()["phases"].values() for c in phase.get("commands", [])]
    pipeline = [
        shlex.split(_substitute(c, {**buildspec()["env"]["variables"], "CODEBUILD_BUILD_NUMBER": "17"}))
        for c in commands
        if c.startswith("churn-pipeline")
    ]
    assert [c[1] for c in pipeline] == ["doctor", "run"]
    for argv in pipeline:
        assert argv[0] in scripts
        arguments = cli.build_parser().parse_args(argv[1:])
        assert (ROOT / arguments.params).exists()
    run = cli.build_parser().parse_args(pipeline[1][1:])
    assert run.params == "parameters/dev.yaml" and run.run_id == "build-17"


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
