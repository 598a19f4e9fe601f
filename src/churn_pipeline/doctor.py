"""``churn-pipeline doctor``: check an AWS account before a run, one line per check."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import config
from .errors import ConfigError
from .names import registry_table
from .sdk import import_sdks

#: the service that must be able to assume each role
ROLE_SERVICES = {
    "workflow_execution_role": "states.amazonaws.com",
    "sagemaker_execution_role": "sagemaker.amazonaws.com",
    "glue_role": "glue.amazonaws.com",
    "lambda_role": "lambda.amazonaws.com",
    "model_registry_lambda_role": "lambda.amazonaws.com",
}


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'}  {self.name:<34} {self.detail}"


def _trusted_services(document: Any) -> set[str]:
    if isinstance(document, str):
        document = json.loads(unquote(document))
    services: set[str] = set()
    for statement in document.get("Statement", []):
        if statement.get("Effect") != "Allow" or "sts:AssumeRole" not in str(statement.get("Action", "")):
            continue
        principal = statement.get("Principal", {}).get("Service", [])
        services.update([principal] if isinstance(principal, str) else principal)
    return services


def _attempt(name: str, action: Callable[[], str]) -> Check:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return Check(name, True, action())
    except ClientError as exc:
        return Check(name, False, f"{exc.response['Error']['Code']}: {exc.response['Error'].get('Message', '')}")
    except (BotoCoreError, ConfigError, ValueError) as exc:
        return Check(name, False, str(exc))


def run_checks(params: dict[str, Any], environ: Mapping[str, str] | None = None, session=None) -> list[Check]:
    """Every check, each independent of the others' outcome (params validated, roles not yet resolved)."""
    import boto3

    environ = os.environ if environ is None else environ
    session = session or boto3.Session(region_name=params["region"])
    checks = [
        _attempt(
            "credentials and account",
            lambda: "account {Account} as {Arn}".format(**session.client("sts").get_caller_identity()),
        )
    ]

    def region() -> str:
        import_sdks()
        from sagemaker import image_uris

        image = image_uris.retrieve("xgboost", params["region"], params["xgboost_version"])
        return f"{params['region']}: SageMaker XGBoost {params['xgboost_version']} is {image}"

    checks.append(_attempt("region", region))
    iam = session.client("iam")
    for variable, service in ROLE_SERVICES.items():

        def role(variable=variable, service=service) -> str:
            arn = config.role_from_environment(variable, environ)
            trusted = _trusted_services(
                iam.get_role(RoleName=arn.rsplit("/", 1)[-1])["Role"]["AssumeRolePolicyDocument"]
            )
            if service not in trusted:
                raise ValueError(
                    f"{arn} exists but {service} cannot assume it (trusted: {', '.join(sorted(trusted)) or 'nobody'})"
                )
            return f"{arn}, assumable by {service}"

        checks.append(_attempt(f"role {variable}", role))
    table = registry_table(params)

    def registry() -> str:
        keys = session.client("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"]
        if keys != [{"AttributeName": "run_id", "KeyType": "HASH"}]:
            raise ValueError(f"table {table} has key {keys}; the registry needs the hash key run_id alone")
        return f"table {table} with key run_id"

    checks.append(_attempt("registry table", registry))

    def bucket() -> str:
        name = params["bucket"]
        if not name:
            account = session.client("sts").get_caller_identity()["Account"]
            name = f"sagemaker-{params['region']}-{account}"
        session.client("s3").head_bucket(Bucket=name)
        return f"s3://{name} is reachable"

    checks.append(_attempt("bucket", bucket))
    return checks
