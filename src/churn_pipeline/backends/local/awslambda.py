"""Local Lambda: functions as documents, invoked in process from their unpacked deployment zip.

Creating or updating a function leaves it ``Pending`` / ``InProgress`` until it
is next described, as Lambda leaves it until the change has been applied: a
caller that invokes or updates it again without waiting gets Lambda's
``ResourceConflictException``. ``PublishVersion`` keeps an immutable copy of the
code and settings (none when nothing changed since the last version), and a
qualified name or ARN invokes that copy, whatever ``$LATEST`` holds by then.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import traceback
import zipfile
from pathlib import Path
from typing import Any

from ...aws_errors import LambdaCodeChanged, LambdaResourceConflict, LambdaResourceNotFound
from ...storage import sha256_of
from ...workspace import BACKEND_ENV, HOME_ENV
from .common import JsonStore, arn, environment, now

CODE_FIELDS = ("S3Bucket", "S3Key", "S3ObjectVersion", "ZipFile")
LATEST = "$LATEST"
#: what a published version copies, and what a new version must differ in (PublishVersion)
VERSIONED_FIELDS = ("Role", "Handler", "Runtime", "Code", "CodeSha256", "Environment", "Timeout", "MemorySize")


def function_reference(reference: str, qualifier: str | None = None) -> tuple[str, str]:
    """(name, version) of a function name, ``name:version``, or a (qualified) function ARN."""
    _, marker, rest = reference.partition(":function:")
    name, _, version = (rest if marker else reference).partition(":")
    if version and qualifier and version != qualifier:
        raise LambdaResourceNotFound.error(f"The qualifier {qualifier} does not match {reference}", "Invoke")
    return name, version or qualifier or LATEST


class LocalLambda:
    def __init__(self, backend):
        self.backend = backend
        self.functions = JsonStore(backend.home / "lambda" / "functions")

    def _code_sha256(self, code: dict) -> str:
        content = self.backend.mirror.path(f"s3://{code['S3Bucket']}/{code['S3Key']}").read_bytes()
        return base64.b64encode(hashlib.sha256(content).digest()).decode()

    def create_function(
        self,
        FunctionName: str,
        Role: str,
        Handler: str,
        Code: dict,
        Runtime: str,
        Environment: dict | None = None,
        **settings,
    ) -> dict:
        if self.functions.exists(FunctionName):
            raise LambdaResourceConflict.error(f"Function already exist: {FunctionName}", "CreateFunction")
        document = {
            "FunctionName": FunctionName,
            "FunctionArn": arn("lambda", "function:", FunctionName),
            "Role": Role,
            "Handler": Handler,
            "Runtime": Runtime,
            "Code": Code,
            "CodeSha256": self._code_sha256(Code),
            "Environment": Environment or {"Variables": {}},
            **settings,
            "Version": LATEST,
            "LastModified": now(),
            "State": "Pending",
            "StateReasonCode": "Creating",
        }
        self.functions.write(FunctionName, document)
        return _configuration(document)

    def _existing(self, name: str, operation: str) -> dict:
        if not self.functions.exists(name):
            raise LambdaResourceNotFound.error(f"Function not found: {name}", operation)
        return self.functions.read(name)

    def _version(self, reference: str, qualifier: str | None, operation: str) -> dict:
        """The document of ``$LATEST`` or of one published version."""
        name, version = function_reference(reference, qualifier)
        document = self._existing(name, operation)
        if version == LATEST:
            return document
        published = document.get("Versions", {}).get(version)
        if published is None:
            raise LambdaResourceNotFound.error(f"Function not found: {document['FunctionArn']}:{version}", operation)
        return published

    def publish_version(self, FunctionName: str, CodeSha256: str | None = None, Description: str = "") -> dict:
        """A new version from ``$LATEST``, or the newest version when nothing changed since it."""
        name, _ = function_reference(FunctionName)
        document = self._changeable(name, "PublishVersion")
        if CodeSha256 is not None and CodeSha256 != document["CodeSha256"]:
            raise LambdaCodeChanged.error(
                f"CodeSHA256 ({CodeSha256}) is different from current CodeSHA256 in $LATEST "
                f"({document['CodeSha256']}). Please try again with the CodeSHA256 in $LATEST.",
                "PublishVersion",
            )
        versions = document.setdefault("Versions", {})
        wanted = {field: document.get(field) for field in VERSIONED_FIELDS}
        newest = versions.get(str(document.get("LastVersion", 0)))
        if newest is not None and {field: newest.get(field) for field in VERSIONED_FIELDS} == wanted:
            return _configuration(newest)
        number = str(document.get("LastVersion", 0) + 1)  # never reused, even after a deletion
        versions[number] = {
            **{k: v for k, v in document.items() if k not in ("Versions", "LastVersion")},
            "Version": number,
            "FunctionArn": f"{document['FunctionArn']}:{number}",
            "Description": Description,
            "LastModified": now(),
        }
        document["LastVersion"] = int(number)
        self.functions.write(name, document)
        return _configuration(versions[number])

    def _changeable(self, name: str, operation: str) -> dict:
        document = self._existing(name, operation)
        if document.get("State") != "Active" or document.get("LastUpdateStatus") == "InProgress":
            raise LambdaResourceConflict.error(
                f"The operation cannot be performed at this time. An update is in progress for resource: "
                f"{document['FunctionArn']}",
                operation,
            )
        return document

    def update_function_code(self, FunctionName: str, **code) -> dict:
        document = self._changeable(FunctionName, "UpdateFunctionCode")
        document.update(
            Code={k: v for k, v in code.items() if k in CODE_FIELDS},
            CodeSha256=self._code_sha256(code),
            LastModified=now(),
            LastUpdateStatus="InProgress",
        )
        self.functions.write(FunctionName, document)
        return _configuration(document)

    def update_function_configuration(self, FunctionName: str, **settings) -> dict:
        document = self._changeable(FunctionName, "UpdateFunctionConfiguration")
        document.update(settings, LastModified=now(), LastUpdateStatus="InProgress")
        self.functions.write(FunctionName, document)
        return _configuration(document)

    def get_function_configuration(self, FunctionName: str, Qualifier: str | None = None) -> dict:
        """Describe the function (or one version); a pending creation or update completes here."""
        name, version = function_reference(FunctionName, Qualifier)
        if version != LATEST:
            return _configuration(self._version(FunctionName, Qualifier, "GetFunctionConfiguration"))
        document = self._existing(name, "GetFunctionConfiguration")
        described = _configuration(document)
        if document.get("State") == "Pending" or document.get("LastUpdateStatus") == "InProgress":
            document.update(State="Active", LastUpdateStatus="Successful")
            document.pop("StateReasonCode", None)
            self.functions.write(name, document)
        return described

    def get_function(self, FunctionName: str, Qualifier: str | None = None) -> dict:
        return {"Configuration": self.get_function_configuration(FunctionName, Qualifier)}

    def _unpack(self, archive: Path) -> Path:
        """Unpack a deployment zip once per content hash, as Lambda does per code version."""
        target = self.backend.home / "lambda" / "code" / sha256_of(archive)[:16]
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(partial)
            os.replace(partial, target)
        return target

    def invoke(self, FunctionName: str, Payload: Any = None, Qualifier: str | None = None, **_: Any) -> dict:
        """Call the handler of ``$LATEST`` or of the version named, in process, with its environment."""
        function = self._version(FunctionName, Qualifier, "Invoke")
        if function.get("State") != "Active":
            raise LambdaResourceConflict.error(
                f"The operation cannot be performed at this time. The function is currently in the following "
                f"state: {function.get('State')}",
                "Invoke",
            )
        module_file, _, handler_name = function["Handler"].rpartition(".")
        archive = self.backend.mirror.path(f"s3://{function['Code']['S3Bucket']}/{function['Code']['S3Key']}")
        unpacked = self._unpack(archive)
        spec = importlib.util.spec_from_file_location(f"local_lambda_{module_file}", unpacked / f"{module_file}.py")
        module = importlib.util.module_from_spec(spec)
        event = json.loads(Payload) if isinstance(Payload, (str, bytes)) else (Payload or {})
        variables = {
            **function["Environment"].get("Variables", {}),
            BACKEND_ENV: "local",
            HOME_ENV: str(self.backend.home),
        }
        with environment(variables):
            spec.loader.exec_module(module)
            try:
                result = getattr(module, handler_name)(event, None)
            except Exception as exc:  # a function error, reported as Lambda reports it
                return {
                    "StatusCode": 200,
                    "FunctionError": "Unhandled",
                    "Payload": {
                        "errorType": type(exc).__name__,
                        "errorMessage": str(exc),
                        "stackTrace": traceback.format_exception(exc)[-3:],
                    },
                }
        return {"StatusCode": 200, "ExecutedVersion": function.get("Version", LATEST), "Payload": result}


def _configuration(document: dict) -> dict:
    """GetFunctionConfiguration's shape: the document without the code location and versions."""
    return {k: v for k, v in document.items() if k not in ("Code", "Versions", "LastVersion")}
