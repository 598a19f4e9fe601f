"""The embedded local backend: a folder for S3, local Spark for Glue, XGBoost in
process for SageMaker, in-process handlers for Lambda, the local ASL executor
for Step Functions and SQLite for the registry.

Each local client implements the subset of the boto3 client the pipeline calls,
with the same parameter names, response shapes and ``ClientError`` codes, so the
code that drives a backend is the same for both.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import re
import os
import subprocess
import sys
import time
import traceback
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

from botocore.exceptions import ClientError

from .. import asl, training
from ..errors import PipelineError, TaskFailed
from ..storage import LocalObjectStore, copy_to_local, sha256_of, write_atomic
from . import BACKEND_ENV, HOME_ENV

ACCOUNT = "000000000000"
REGION = "local"


def _error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _arn(service: str, kind: str, name: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{kind}{name}"


class _JsonStore:
    """One JSON document per resource name, written atomically."""

    def __init__(self, folder: Path):
        self.folder = folder

    def path(self, name: str) -> Path:
        return self.folder / f"{name}.json"

    def exists(self, name: str) -> bool:
        return self.path(name).exists()

    def read(self, name: str) -> dict[str, Any]:
        return json.loads(self.path(name).read_text())

    def write(self, name: str, document: dict[str, Any]) -> None:
        write_atomic(self.path(name), json.dumps(document, indent=2, default=str))

    def names(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json")) if self.folder.exists() else []


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _last_error(log: str) -> str:
    """The exception line a failed job printed last (what Glue shows as ErrorMessage)."""
    lines = [line for line in log.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Problem)\b", line)]
    return (errors or lines or ["the job failed without output"])[-1][:2000]


class LocalGlue:
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.jobs = _JsonStore(backend.home / "glue" / "jobs")
        self.runs = _JsonStore(backend.home / "glue" / "runs")

    def create_job(self, Name: str, Command: dict, DefaultArguments: dict | None = None, **settings) -> dict:
        if self.jobs.exists(Name):
            raise _error("AlreadyExistsException", f"job {Name} already exists", "CreateJob")
        self.jobs.write(Name, {"Name": Name, "Command": Command, "DefaultArguments": DefaultArguments or {},
                               **settings, "CreatedOn": _now().isoformat()})
        return {"Name": Name}

    def update_job(self, JobName: str, JobUpdate: dict) -> dict:
        if not self.jobs.exists(JobName):
            raise _error("EntityNotFoundException", f"job {JobName} not found", "UpdateJob")
        job = self.jobs.read(JobName)
        job.update(JobUpdate, LastModifiedOn=_now().isoformat())
        self.jobs.write(JobName, job)
        return {"JobName": JobName}

    def get_job(self, JobName: str) -> dict:
        if not self.jobs.exists(JobName):
            raise _error("EntityNotFoundException", f"job {JobName} not found", "GetJob")
        return {"Job": self.jobs.read(JobName)}

    def start_job_run(self, JobName: str, Arguments: dict | None = None, **_: Any) -> dict:
        """Run the job's script to completion on local Spark (Glue runs it asynchronously)."""
        job = self.get_job(JobName)["Job"]
        arguments = {**job.get("DefaultArguments", {}), **(Arguments or {})}
        run_id = "jr_" + hashlib.sha256(f"{JobName}{time.time_ns()}".encode()).hexdigest()[:32]
        run = {"Id": run_id, "JobName": JobName, "Arguments": arguments, "StartedOn": _now().isoformat(),
               "JobRunState": "RUNNING"}
        script = self.backend.store.localize(job["Command"]["ScriptLocation"])
        command = [sys.executable, script]
        for name, value in arguments.items():
            command += [name, self.backend.store.localize(str(value))]
        log_path = self.backend.home / "glue" / "logs" / f"{run_id}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        # A job runs in its own process, as on Glue: its JVM and its output stay out of the caller.
        with open(log_path, "wb") as log:
            finished = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                                      env={**os.environ, HOME_ENV: str(self.backend.home)})
        run["LogFile"] = str(log_path)
        if finished.returncode == 0:
            run["JobRunState"] = "SUCCEEDED"
        else:
            run.update(JobRunState="FAILED", ErrorMessage=_last_error(log_path.read_text(errors="replace")))
        run.update(CompletedOn=_now().isoformat(), ExecutionTime=round(time.perf_counter() - started, 3))
        self.runs.write(run_id, run)
        return {"JobRunId": run_id}

    def get_job_run(self, JobName: str, RunId: str) -> dict:
        if not self.runs.exists(RunId):
            raise _error("EntityNotFoundException", f"job run {RunId} not found", "GetJobRun")
        return {"JobRun": self.runs.read(RunId)}


class LocalLambda:
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.functions = _JsonStore(backend.home / "lambda" / "functions")

    def create_function(self, FunctionName: str, Handler: str, Code: dict, Environment: dict | None = None,
                        **settings) -> dict:
        if self.functions.exists(FunctionName):
            raise _error("ResourceConflictException", f"function {FunctionName} already exist", "CreateFunction")
        document = {"FunctionName": FunctionName, "FunctionArn": _arn("lambda", "function:", FunctionName),
                    "Handler": Handler, "Code": Code, "Environment": Environment or {"Variables": {}},
                    **settings, "LastUpdateStatus": "Successful", "State": "Active"}
        self.functions.write(FunctionName, document)
        return document

    def _existing(self, name: str, operation: str) -> dict:
        if not self.functions.exists(name):
            raise _error("ResourceNotFoundException", f"Function not found: {name}", operation)
        return self.functions.read(name)

    def update_function_code(self, FunctionName: str, **code) -> dict:
        document = self._existing(FunctionName, "UpdateFunctionCode")
        document["Code"] = code
        self.functions.write(FunctionName, document)
        return document

    def update_function_configuration(self, FunctionName: str, **settings) -> dict:
        document = self._existing(FunctionName, "UpdateFunctionConfiguration")
        document.update(settings)
        self.functions.write(FunctionName, document)
        return document

    def get_function(self, FunctionName: str) -> dict:
        return {"Configuration": self._existing(FunctionName, "GetFunction")}

    def _unpack(self, bundle: Path) -> Path:
        """Unpack a deployment zip once per content hash, as Lambda does per code version."""
        target = self.backend.home / "lambda" / "code" / sha256_of(bundle)[:16]
        if not target.exists():
            partial = target.with_name(target.name + ".partial")
            with zipfile.ZipFile(bundle) as archive:
                archive.extractall(partial)
            os.replace(partial, target)
        return target

    def invoke(self, FunctionName: str, Payload: Any = None, **_: Any) -> dict:
        """Call the staged handler in process, with the function's environment variables set."""
        function = self._existing(FunctionName, "Invoke")
        module_file, _, handler_name = function["Handler"].rpartition(".")
        bundle = self.backend.store.path(f"s3://{function['Code']['S3Bucket']}/{function['Code']['S3Key']}")
        unpacked = self._unpack(bundle)
        spec = importlib.util.spec_from_file_location(f"local_lambda_{module_file}", unpacked / f"{module_file}.py")
        module = importlib.util.module_from_spec(spec)
        event = json.loads(Payload) if isinstance(Payload, (str, bytes)) else (Payload or {})
        variables = {**function["Environment"].get("Variables", {}),
                     BACKEND_ENV: "local", HOME_ENV: str(self.backend.home)}
        with _environment(variables):
            spec.loader.exec_module(module)
            try:
                result = getattr(module, handler_name)(event, None)
            except Exception as exc:  # a function error, reported as Lambda reports it
                return {"StatusCode": 200, "FunctionError": "Unhandled",
                        "Payload": {"errorType": type(exc).__name__, "errorMessage": str(exc),
                                    "stackTrace": traceback.format_exception(exc)[-3:]}}
        return {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": result}


class LocalSageMaker:
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.jobs = _JsonStore(backend.home / "sagemaker" / "training-jobs")
        self.models = _JsonStore(backend.home / "sagemaker" / "models")

    def create_training_job(self, TrainingJobName: str, AlgorithmSpecification: dict, RoleArn: str,
                            InputDataConfig: list, OutputDataConfig: dict, HyperParameters: dict | None = None,
                            **settings) -> dict:
        """Train in process, to completion, and record the job as DescribeTrainingJob shows it."""
        if self.jobs.exists(TrainingJobName):
            raise _error("ResourceInUse", f"Training job names must be unique; {TrainingJobName} exists",
                         "CreateTrainingJob")
        channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in InputDataConfig}
        output_uri = f"{OutputDataConfig['S3OutputPath'].rstrip('/')}/{TrainingJobName}/output/model.tar.gz"
        job = {"TrainingJobName": TrainingJobName,
               "TrainingJobArn": _arn("sagemaker", "training-job/", TrainingJobName),
               "AlgorithmSpecification": AlgorithmSpecification, "RoleArn": RoleArn,
               "InputDataConfig": InputDataConfig, "OutputDataConfig": OutputDataConfig,
               "HyperParameters": HyperParameters or {}, **settings,
               "CreationTime": _now().isoformat(), "TrainingStartTime": _now().isoformat()}
        started = time.perf_counter()
        try:
            missing = {"train", "validation"} - set(channels)
            if missing:
                raise PipelineError(f"channels {', '.join(sorted(missing))} are missing")
            booster, final = training.train(self.backend.store.localize(channels["train"]),
                                            self.backend.store.localize(channels["validation"]),
                                            job["HyperParameters"])
            training.save_model_archive(booster, self.backend.store.localize(output_uri))
            job.update(TrainingJobStatus="Completed", SecondaryStatus="Completed",
                       ModelArtifacts={"S3ModelArtifacts": output_uri},
                       FinalMetricDataList=training.final_metric_data_list(final, _now().isoformat()))
        except PipelineError as exc:
            job.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=str(exc))
        job.update(TrainingEndTime=_now().isoformat(),
                   TrainingTimeInSeconds=round(time.perf_counter() - started, 3))
        self.jobs.write(TrainingJobName, job)
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def describe_training_job(self, TrainingJobName: str) -> dict:
        if not self.jobs.exists(TrainingJobName):
            raise _error("ValidationException", f"Requested resource not found: {TrainingJobName}",
                         "DescribeTrainingJob")
        return self.jobs.read(TrainingJobName)

    def create_model(self, ModelName: str, PrimaryContainer: dict, ExecutionRoleArn: str, **settings) -> dict:
        if self.models.exists(ModelName):
            raise _error("ValidationException", f"Cannot create already existing model {ModelName}",
                         "CreateModel")
        arn = _arn("sagemaker", "model/", ModelName.lower())
        self.models.write(ModelName, {"ModelName": ModelName, "ModelArn": arn, "PrimaryContainer": PrimaryContainer,
                                      "ExecutionRoleArn": ExecutionRoleArn, **settings,
                                      "CreationTime": _now().isoformat()})
        return {"ModelArn": arn}

    def describe_model(self, ModelName: str) -> dict:
        if not self.models.exists(ModelName):
            raise _error("ValidationException", f"Could not find model {ModelName}", "DescribeModel")
        return self.models.read(ModelName)


class LocalStepFunctions:
    def __init__(self, backend: "LocalBackend"):
        self.backend = backend
        self.machines = _JsonStore(backend.home / "stepfunctions" / "state-machines")
        self.executions = _JsonStore(backend.home / "stepfunctions" / "executions")

    @staticmethod
    def _parts(arn: str) -> tuple[str, int | None]:
        """``...:stateMachine:NAME[:VERSION]`` -> (NAME, VERSION or None)."""
        parts = arn.split(":")
        if len(parts) < 7:
            raise _error("InvalidArn", f"Invalid Arn: '{arn}'", "DescribeStateMachine")
        return parts[6], (int(parts[7]) if len(parts) > 7 and parts[7].isdigit() else None)

    @staticmethod
    def _name(arn: str) -> str:
        return arn.rsplit(":", 1)[-1]

    def _publish(self, machine: dict) -> str:
        """Publish the current definition as a version; an unchanged definition keeps its version."""
        versions = machine.setdefault("versions", {})
        latest = max(map(int, versions), default=0)
        if not latest or versions[str(latest)] != machine["definition"]:
            latest += 1
            versions[str(latest)] = machine["definition"]
        return f"{machine['stateMachineArn']}:{latest}"

    def create_state_machine(self, name: str, definition: str, roleArn: str, publish: bool = False,
                             **_: Any) -> dict:
        arn = _arn("states", "stateMachine:", name)
        if self.machines.exists(name):
            machine = self.machines.read(name)
            if machine["definition"] != definition:
                raise _error("StateMachineAlreadyExists", f"State Machine Already Exists: '{arn}'",
                             "CreateStateMachine")
        else:
            asl.LocalExecutor(definition, self.backend.runners())  # refuse what cannot run, at deploy time
            machine = {"name": name, "stateMachineArn": arn, "definition": definition, "roleArn": roleArn,
                       "creationDate": _now().isoformat()}
        response = {"stateMachineArn": arn, "creationDate": machine["creationDate"]}
        if publish:
            response["stateMachineVersionArn"] = self._publish(machine)
        self.machines.write(name, machine)
        return response

    def update_state_machine(self, stateMachineArn: str, definition: str | None = None,
                             roleArn: str | None = None, publish: bool = False, **_: Any) -> dict:
        machine = self.describe_state_machine(stateMachineArn)
        if definition is not None:
            asl.LocalExecutor(definition, self.backend.runners())
            machine["definition"] = definition
        if roleArn is not None:
            machine["roleArn"] = roleArn
        machine["updateDate"] = _now().isoformat()
        response = {"updateDate": machine["updateDate"]}
        if publish:
            response["stateMachineVersionArn"] = self._publish(machine)
        self.machines.write(machine["name"], machine)
        return response

    def describe_state_machine(self, stateMachineArn: str) -> dict:
        name, version = self._parts(stateMachineArn)
        if not self.machines.exists(name):
            raise _error("StateMachineDoesNotExist", f"State Machine Does Not Exist: '{stateMachineArn}'",
                         "DescribeStateMachine")
        machine = self.machines.read(name)
        if version is not None:
            if str(version) not in machine.get("versions", {}):
                raise _error("ResourceNotFound", f"Version does not exist: '{stateMachineArn}'",
                             "DescribeStateMachine")
            machine = dict(machine, definition=machine["versions"][str(version)],
                           stateMachineArn=stateMachineArn)
        return machine

    def start_execution(self, stateMachineArn: str, name: str, input: str = "{}", **_: Any) -> dict:
        """Run the execution to its end (Step Functions runs it asynchronously).

        ``stateMachineArn`` may name a published version: the execution then runs
        that version's definition whatever the state machine holds now.
        """
        machine = self.describe_state_machine(stateMachineArn)
        if self.executions.exists(name):
            existing = self.executions.read(name)
            if existing["input"] == json.loads(input) and existing["stateMachineArn"] == stateMachineArn:
                return {"executionArn": existing["executionArn"], "startDate": existing["startDate"]}
            raise _error("ExecutionAlreadyExists", f"Execution Already Exists: '{name}'", "StartExecution")
        base_arn = _arn("states", "stateMachine:", machine["name"])
        executor = asl.LocalExecutor(machine["definition"], self.backend.runners(), base_arn)
        execution = executor.run(json.loads(input), name=name)
        self.executions.write(name, {**execution.to_dict(), "stateMachineArn": stateMachineArn})
        return {"executionArn": execution.arn, "startDate": execution.start_date}

    def describe_execution(self, executionArn: str) -> dict:
        name = self._name(executionArn)
        if not self.executions.exists(name):
            raise _error("ExecutionDoesNotExist", f"Execution Does Not Exist: '{executionArn}'",
                         "DescribeExecution")
        record = self.executions.read(name)
        described = {"executionArn": record["executionArn"], "name": record["name"], "status": record["status"],
                     "startDate": record["startDate"], "stopDate": record["stopDate"],
                     "input": json.dumps(record["input"])}
        if record["status"] == "SUCCEEDED":
            described["output"] = json.dumps(record["output"])
        else:
            described.update(error=record["error"], cause=record["cause"])
        return described

    def local_execution(self, executionArn: str) -> dict:
        """The full local record: states with input/output/timings, and the raw events."""
        self.describe_execution(executionArn)
        return self.executions.read(self._name(executionArn))


class LocalBackend:
    """Everything the local backend keeps lives under one folder, ``home``."""

    name = "local"

    def __init__(self, home: str | os.PathLike):
        self.home = Path(home)
        self.store = LocalObjectStore(self.home / "s3")
        self.registry_url = f"sqlite:///{(self.home / 'registry.db').resolve()}"
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        factories = {"glue": LocalGlue, "lambda": LocalLambda, "sagemaker": LocalSageMaker,
                     "stepfunctions": LocalStepFunctions}
        if service not in factories:
            raise PipelineError(f"the local backend has no {service!r} service")
        if service not in self._clients:
            self._clients[service] = factories[service](self)
        return self._clients[service]

    # --- what the pipeline steps ask of a backend ---------------------------------------------

    def s3_client(self):
        import boto3  # reading a user's s3:// input data from S3 needs the real client

        return boto3.client("s3")

    def stage_file(self, source: str, uri: str) -> str:
        """Copy a local file or S3 object to ``uri`` in the local store; return its SHA-256."""
        target = copy_to_local(source, self.store.path(uri), self.s3_client() if source.startswith("s3://") else None)
        return sha256_of(target)

    def stage_bytes(self, content: bytes, uri: str) -> str:
        write_atomic(self.store.path(uri), content)
        return hashlib.sha256(content).hexdigest()

    def local_copy(self, uri: str) -> Path:
        """A local path holding the object or prefix ``uri`` (here: the store's own file)."""
        path = self.store.path(uri)
        if not path.exists():
            raise PipelineError(f"{uri} does not exist in the local store ({path})")
        return path

    def default_bucket(self) -> str:
        return "churn-pipeline-local"

    def registry(self, table: str):
        """The SQLite registry (one file serves every table name locally)."""
        from ..registry import open_registry

        return open_registry(self.registry_url)

    def prepare_glue_job(self, run) -> dict[str, Any]:
        return {"DefaultArguments": {"--SPARK_MASTER": run.params["spark_master"]}}

    def function_environment(self, run) -> dict[str, str]:
        return {"MODEL_REGISTRY_TABLE": run.registry_table, "MODEL_REGISTRY_URL": self.registry_url}

    def wait_for_function(self, name: str) -> None:
        status = self.client("lambda").get_function(FunctionName=name)["Configuration"]["LastUpdateStatus"]
        if status != "Successful":
            raise PipelineError(f"function {name} update ended {status}")

    def state_machine_arn(self, name: str) -> str:
        return _arn("states", "stateMachine:", name)

    def execution_history(self, execution_arn: str) -> dict[str, Any]:
        return self.client("stepfunctions").local_execution(execution_arn)

    # --- task runners: what each Task Resource of the definition does locally ------------------

    def runners(self) -> dict[str, asl.Runner]:
        return {
            "arn:aws:states:::glue:startJobRun.sync": self._run_glue_job,
            "arn:aws:states:::sagemaker:createTrainingJob.sync": self._run_training_job,
            "arn:aws:states:::sagemaker:createModel": self._create_model,
            "arn:aws:states:::lambda:invoke": self._invoke_function,
        }

    def _run_glue_job(self, parameters: dict) -> dict:
        glue = self.client("glue")
        try:
            run_id = glue.start_job_run(**parameters)["JobRunId"]
        except ClientError as exc:
            raise TaskFailed(exc.response["Error"]["Code"], str(exc)) from exc
        run = glue.get_job_run(JobName=parameters["JobName"], RunId=run_id)["JobRun"]
        if run["JobRunState"] != "SUCCEEDED":
            raise TaskFailed("States.TaskFailed", json.dumps(run))
        return run

    def _run_training_job(self, parameters: dict) -> dict:
        sagemaker = self.client("sagemaker")
        try:
            sagemaker.create_training_job(**parameters)
        except ClientError as exc:
            raise TaskFailed(f"SageMaker.{exc.response['Error']['Code']}", str(exc)) from exc
        job = sagemaker.describe_training_job(TrainingJobName=parameters["TrainingJobName"])
        if job["TrainingJobStatus"] != "Completed":
            raise TaskFailed("States.TaskFailed", json.dumps(job))
        return job

    def _create_model(self, parameters: dict) -> dict:
        try:
            return self.client("sagemaker").create_model(**parameters)
        except ClientError as exc:
            raise TaskFailed(f"SageMaker.{exc.response['Error']['Code']}", str(exc)) from exc

    def _invoke_function(self, parameters: dict) -> dict:
        try:
            response = self.client("lambda").invoke(**parameters)
        except ClientError as exc:
            raise TaskFailed(f"Lambda.{exc.response['Error']['Code']}", str(exc)) from exc
        if response.get("FunctionError"):
            payload = response["Payload"]
            raise TaskFailed(payload["errorType"], json.dumps(payload))
        return response
