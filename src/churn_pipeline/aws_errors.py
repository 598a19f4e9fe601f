"""AWS error codes, named once.

The local services raise them and the create-or-update code catches them,
always through these classes, never as bare strings. Each ``error`` is the
botocore ``ClientError`` the AWS API returns for that code, so one piece of
handling serves both backends (and moto).
"""

from __future__ import annotations

from botocore.exceptions import ClientError


class AwsErrorCode:
    """One error code of one service: raise it with ``error``, recognise it with ``matches``."""

    code = ""
    status = 400

    @classmethod
    def error(cls, message: str, operation: str) -> ClientError:
        return ClientError(
            {"Error": {"Code": cls.code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": cls.status}},
            operation,
        )

    @classmethod
    def matches(cls, exc: BaseException) -> bool:
        return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == cls.code


def error_code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "")


# --- Glue ------------------------------------------------------------------------------------------
class GlueEntityNotFound(AwsErrorCode):
    code = "EntityNotFoundException"


class GlueAlreadyExists(AwsErrorCode):
    code = "AlreadyExistsException"


class GlueIdempotentParameterMismatch(AwsErrorCode):
    """CreateJob for an existing name with another definition."""

    code = "IdempotentParameterMismatchException"


class GlueInvalidInput(AwsErrorCode):
    code = "InvalidInputException"


class GlueConcurrentRunsExceeded(AwsErrorCode):
    code = "ConcurrentRunsExceededException"


# --- Lambda ----------------------------------------------------------------------------------------
class LambdaResourceConflict(AwsErrorCode):
    """CreateFunction for an existing name, or an update while another is in progress."""

    code = "ResourceConflictException"
    status = 409


class LambdaResourceNotFound(AwsErrorCode):
    code = "ResourceNotFoundException"
    status = 404


class LambdaCodeChanged(AwsErrorCode):
    """PublishVersion whose ``CodeSha256`` is not the hash of the function's current code."""

    code = "InvalidParameterValueException"
    status = 400


# --- Step Functions ----------------------------------------------------------------------------------
class StateMachineDoesNotExist(AwsErrorCode):
    code = "StateMachineDoesNotExist"


class StateMachineAlreadyExists(AwsErrorCode):
    code = "StateMachineAlreadyExists"


class StatesResourceNotFound(AwsErrorCode):
    code = "ResourceNotFound"


class StatesInvalidArn(AwsErrorCode):
    code = "InvalidArn"


class StatesValidation(AwsErrorCode):
    code = "ValidationException"


class ExecutionAlreadyExists(AwsErrorCode):
    """StartExecution with a name already used by an execution that has closed (or another input)."""

    code = "ExecutionAlreadyExists"


class ExecutionDoesNotExist(AwsErrorCode):
    code = "ExecutionDoesNotExist"


class ExecutionNotRedrivable(AwsErrorCode):
    """RedriveExecution of an execution that is running or succeeded (only FAILED, ABORTED and
    TIMED_OUT Standard executions of the last 14 days can be redriven)."""

    code = "ExecutionNotRedrivable"


class StatesQuotaExceeded(AwsErrorCode):
    """Publishing beyond a state machine's 1,000 versions."""

    code = "ServiceQuotaExceededException"


# --- SageMaker ---------------------------------------------------------------------------------------
class SageMakerValidation(AwsErrorCode):
    """SageMaker's code for a bad request, a missing resource and a duplicate model alike."""

    code = "ValidationException"


class SageMakerResourceInUse(AwsErrorCode):
    code = "ResourceInUse"


class SageMakerResourceNotFound(AwsErrorCode):
    """SageMaker's code for a missing tuning job (a missing training job is a ValidationException)."""

    code = "ResourceNotFound"


# --- DynamoDB and S3 ---------------------------------------------------------------------------------
class ConditionalCheckFailed(AwsErrorCode):
    code = "ConditionalCheckFailedException"


S3_NOT_FOUND_CODES = ("404", "NoSuchBucket", "NoSuchKey", "NotFound")


def s3_not_found(exc: BaseException) -> bool:
    """HeadObject/HeadBucket answer a bare 404; GetObject answers NoSuchKey."""
    return isinstance(exc, ClientError) and error_code(exc) in S3_NOT_FOUND_CODES


S3_FORBIDDEN_CODES = ("403", "AccessDenied", "Forbidden")


def s3_forbidden(exc: BaseException) -> bool:
    """HeadObject/HeadBucket answer a bare 403; other calls AccessDenied."""
    return isinstance(exc, ClientError) and error_code(exc) in S3_FORBIDDEN_CODES
