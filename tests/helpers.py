"""What the tests share besides fixtures (those live in conftest.py): paths, sample rows, AWS set-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from churn_pipeline import data
from churn_pipeline.registry import RegistryRecord

ROOT = Path(__file__).resolve().parents[1]
#: the public 3,333-row churn dataset, when it lies beside the project (never copied in)
CHURN_TXT = ROOT.parent / "shared" / "data" / "churn.txt"


def write_lines(path: Path, lines: list[str]) -> str:
    path.write_text("\n".join(lines) + ("\n" if lines else ""))
    return str(path)


HEADER = ",".join(data.RAW_COLUMNS)
GOOD = "KS,128,415,382-4657,no,yes,25,265.1,110,45.07,197.4,99,16.78,244.7,91,11.01,10,3,2.7,1,False."
CHURNER = "OH,107,415,371-7191,yes,no,0,161.6,123,27.47,195.5,103,16.62,254.4,103,11.45,13.7,3,3.7,5,True."

BAD_RAW = [
    ([HEADER.replace(",Night Calls", "")], "line 1", "missing columns: Night Calls"),
    ([HEADER + ",Extra", GOOD + ",1"], "line 1", "unknown columns: Extra"),
    ([HEADER, GOOD, CHURNER.replace("161.6", "lots")], "line 3, column 'Day Mins'", "'lots' is not a number"),
    ([HEADER, GOOD, CHURNER.replace("True.", "Maybe.")], "line 3, column 'Churn?'", "is not binary"),
    ([HEADER, GOOD, CHURNER + ",9"], "line 3", "has 22 fields, the header has 21"),
    ([HEADER, GOOD, GOOD], "", "only one class"),
    ([HEADER], "", "no data rows"),
    ([HEADER, GOOD, CHURNER.replace(",yes,no,", ",maybe,no,")], 'column "Int\'l Plan"', "not yes/no"),
    ([HEADER, GOOD, CHURNER.replace(",13.7,", ",nan,")], "line 3, column 'Intl Mins'", "'nan' is not a number"),
    ([HEADER, GOOD, CHURNER.replace(",13.7,", ",1_3,")], "line 3, column 'Intl Mins'", "'1_3' is not a number"),
    ([HEADER, GOOD, CHURNER.replace("OH,", " ,")], "line 3, column 'State'", "empty value"),
]

BAD_ENCODED = [
    (["1,0.5,3", "0,0.25"], "line 2", "has 2 fields, earlier rows have 3"),
    (["1,0.5,3", "2,0.25,1"], "line 2, column 'label'", "not binary"),
    (["1,0.5,3", "0,x,1"], "line 2, column 'feature 1'", "'x' is not a number"),
    (["1,0.5,3", "", "0,1.5d,1"], "line 3, column 'feature 1'", "'1.5d' is not a number"),
]


ROLE_NAMES = (
    "workflow_execution_role",
    "sagemaker_execution_role",
    "glue_role",
    "lambda_role",
    "model_registry_lambda_role",
)
ACCOUNT = "123456789012"


def fake_aws_credentials(monkeypatch, **extra: str) -> None:
    """Credentials and a region that only moto accepts (never a real account's)."""
    for name, value in {
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        **extra,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


def create_account_resources(monkeypatch) -> None:
    """What the CI/CD stack provides: the five roles (trusted by their services), their variables, the table."""
    import boto3

    from churn_pipeline.doctor import ROLE_SERVICES

    iam = boto3.client("iam")
    for name in ROLE_NAMES:
        role = f"churn-dev-{name.replace('_', '-')}"
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": ROLE_SERVICES[name]}}
            ],
        }
        iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
        monkeypatch.setenv(name, f"  arn:aws:iam::{ACCOUNT}:role/{role}\n")  # stray white space, as pasted
    boto3.client("dynamodb").create_table(
        TableName="churn-dev-model-registry",
        KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def make_record(run_id: str = "run-1", **changes) -> RegistryRecord:
    values = dict(
        run_id=run_id,
        created_at="2026-01-01T00:00:00+00:00",
        environment="test",
        algorithm="xgboost",
        model_name=f"churn-test-{run_id}",
        model_data_url=f"s3://b/{run_id}/model.tar.gz",
        training_job_name=f"churn-test-{run_id}",
        metrics={"validation:accuracy": 0.95},
        hyperparameters={"max_depth": "5"},
        data_uri="s3://b/raw.csv",
        data_sha256="ab" * 32,
        threshold=0.9,
        status="approved",
        image="img:1",
        git_commit=None,
    )
    values.update(changes)
    return RegistryRecord(**values)


DECISION = {
    "cutoff": 0.1834,
    "expected_cost": 2100.0,
    "expected_cost_per_customer": 4.2,
    "cost_offering_nobody": 35000.0,
    "cost_offering_everybody": 50000.0,
    "retention_offer_cost": 100.0,
    "churn_loss": 500.0,
}


class _CfnLoader(yaml.SafeLoader):
    """Keeps CloudFormation's short-form tags as {"!Tag": value}."""


def _tag(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {f"!{suffix}": value}


_CfnLoader.add_multi_constructor("!", _tag)


def policy_statements(resource) -> list[dict]:
    """The statements of a template role's inline policies; a conditional one (``!If``) in its granted form."""
    return [
        statement["!If"][1] if "!If" in statement else statement
        for policy in resource["Properties"].get("Policies", [])
        for statement in policy["PolicyDocument"]["Statement"]
    ]


def template(name):
    return yaml.load((ROOT / "cloudformation" / name).read_text(), Loader=_CfnLoader)


def run_benchmark(script, arguments, tmp_path) -> dict:
    """Run one benchmark script; its figures (never asserted on their values)."""
    out = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *arguments, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["cpu_count"] >= 1 and result.stdout.strip()
    return figures


def churn_pipeline_calls(spec, environment):
    """The arguments of every ``churn-pipeline`` call of a buildspec's (pre-)build commands, as bash (the
    buildspec's shell, one shell for every command, as version 0.2 runs them) expands them with
    ``environment``: the calls are recorded, not run."""
    commands = [c for name in ("pre_build", "build") for c in spec["phases"].get(name, {}).get("commands", [])]
    script = "churn-pipeline() { printf '%s\\0' \"$@\"; printf '\\n'; }\n" + "\n".join(commands)
    variables = {**spec["env"]["variables"], "CODEBUILD_BUILD_NUMBER": "17", **environment}
    ran = subprocess.run(["bash", "-c", script], env={"PATH": "/usr/bin:/bin", **variables}, capture_output=True)
    assert ran.returncode == 0, ran.stderr
    return [line.split("\0")[:-1] for line in ran.stdout.decode().splitlines() if "\0" in line]
