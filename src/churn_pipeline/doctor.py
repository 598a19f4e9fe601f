"""``churn-pipeline doctor``: check an AWS account before a run, one line per check."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from . import config, names
from .aws_errors import (
    GlueEntityNotFound,
    LambdaResourceNotFound,
    StateMachineDoesNotExist,
    error_code,
    s3_not_found,
)
from .errors import ConfigError
from .sdk import import_sdks

#: the object the bucket check writes, in the environment's folder, to know the run may write there
DOCTOR_PROBE = ".doctor-probe"
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
    table = names.registry_table(params)

    def registry() -> str:
        keys = session.client("dynamodb").describe_table(TableName=table)["Table"]["KeySchema"]
        if keys != [{"AttributeName": "run_id", "KeyType": "HASH"}]:
            raise ValueError(f"table {table} has key {keys}; the registry needs the hash key run_id alone")
        return f"table {table} with key run_id"

    checks.append(_attempt("registry table", registry))

    checks.append(_attempt("bucket", lambda: bucket(session, params)))
    checks.append(_attempt("resources the run creates", lambda: created_on_first_use(session, params)))
    return checks


def bucket(session, params: dict[str, Any]) -> str:
    """The bucket exists, in the run's region, and this role may read and write under the environment's
    folder; or it is the account's SageMaker default bucket, which the first run creates (as the SDK
    does). A bucket named in the parameters must exist."""
    from botocore.exceptions import ClientError

    s3, region, named = session.client("s3"), params["region"], params["bucket"]
    name = named or f"sagemaker-{region}-{session.client('sts').get_caller_identity()['Account']}"
    try:
        answer = s3.head_bucket(Bucket=name)
    except ClientError as exc:
        if s3_not_found(exc) and not named:
            return f"s3://{name} does not exist yet: the first run creates it (the SageMaker default bucket)"
        if s3_not_found(exc):
            raise ValueError(
                f"s3://{name}, named by bucket in the parameters, does not exist: create it in {region}, or "
                "leave bucket empty to use the account's SageMaker default bucket, which the run creates"
            ) from exc
        if error_code(exc) == "400":
            raise ValueError(
                f"s3://{name} answered 400 Bad Request, which S3 gives for a bucket it will not describe to this "
                f"request: check the bucket's name, and that it is in {region}"
            ) from exc
        if error_code(exc) in ("403", "AccessDenied", "Forbidden"):
            raise ValueError(
                f"s3://{name} exists but this role may not read it (403): it belongs to another account, or "
                f"the role lacks s3:ListBucket on it; {'name a bucket of this account' if named else 'set bucket'} "
                "in the parameters, or grant the role access"
            ) from exc
        raise
    located = answer.get("BucketRegion") or answer["ResponseMetadata"]["HTTPHeaders"].get("x-amz-bucket-region")
    if located and located != region:
        raise ValueError(
            f"s3://{name} is in {located}, the run's region is {region}: Glue, SageMaker and Step Functions "
            f"read and write it from {region}; name a bucket in {region}"
        )
    # one empty object, written again at every check (the build role may not delete; no run id starts
    # with a dot, so no run's folder holds it)
    folder = f"{params['project']}/{params['environment']}/"
    try:
        s3.put_object(Bucket=name, Key=f"{folder}{DOCTOR_PROBE}", Body=b"")
    except ClientError as exc:
        raise ValueError(
            f"s3://{name} is readable but this role may not write under {folder} "
            f"({error_code(exc)}): grant it s3:PutObject there"
        ) from exc
    return f"s3://{name} is reachable, in {region}, and writable under {folder}"


def created_on_first_use(session, params: dict[str, Any]) -> str:
    """Which of the resources the run creates or updates exist already (the ETL job, the two functions,
    the state machine): a missing one is created by the first run, not a failure; a refused look is."""
    from botocore.exceptions import ClientError

    identity = session.client("sts").get_caller_identity()
    partition = identity["Arn"].split(":")[1]
    machine = names.state_machine_name(params)
    machine_arn = f"arn:{partition}:states:{params['region']}:{identity['Account']}:stateMachine:{machine}"
    glue, functions, sfn = session.client("glue"), session.client("lambda"), session.client("stepfunctions")
    looks = [
        (names.resource_name(params, "etl"), GlueEntityNotFound, lambda n: glue.get_job(JobName=n)),
        *[
            (
                names.function_name(params, role),
                LambdaResourceNotFound,
                lambda n: functions.get_function(FunctionName=n),
            )
            for role in names.FUNCTION_MODULES
        ],
        (machine, StateMachineDoesNotExist, lambda n: sfn.describe_state_machine(stateMachineArn=machine_arn)),
    ]
    existing, missing = [], []
    for name, not_found, look in looks:
        try:
            look(name)
        except ClientError as exc:  # only the named not-found code means "not there yet"
            if not not_found.matches(exc):
                raise
            missing.append(name)
        else:
            existing.append(name)
    said = [f"{', '.join(existing)} exist"] if existing else []
    said += [f"the run creates {', '.join(missing)}"] if missing else []
    return "; ".join(said)
