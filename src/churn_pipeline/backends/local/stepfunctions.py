"""Local Step Functions: state machines with revisions and published versions, executions run by
the local ASL executor, and the task integrations (Glue, SageMaker, Lambda) it calls.

Versions, revisions and execution names follow the service: a version is
published only for a revision that has none (publishing again returns it),
a state machine holds at most ``VERSION_QUOTA`` versions, and an execution name
can be reused only while that execution is still running with the same input.

An execution runs in the process that starts (or redrives) it, and its record
is kept current after every event, so another process can follow it. If that
process ends before the execution does, the execution is ABORTED (on AWS it
would carry on); like any unsuccessful execution it can then be redriven.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

from ...aws_errors import (
    ExecutionAlreadyExists,
    ExecutionDoesNotExist,
    ExecutionNotRedrivable,
    StateMachineAlreadyExists,
    StateMachineDoesNotExist,
    StatesInvalidArn,
    StatesQuotaExceeded,
    StatesResourceNotFound,
    StatesValidation,
)
from ...errors import StateMachineError
from ...workspace import process_alive
from . import asl
from .common import JsonStore, arn, now

VERSION_QUOTA = 1000


def _parts(state_machine_arn: str, operation: str) -> tuple[str, int | None]:
    """``...:stateMachine:NAME[:VERSION]`` -> (NAME, VERSION or None)."""
    parts = state_machine_arn.split(":")
    if len(parts) < 7 or parts[5] != "stateMachine":
        raise StatesInvalidArn.error(f"Invalid Arn: '{state_machine_arn}'", operation)
    return parts[6], (int(parts[7]) if len(parts) > 7 and parts[7].isdigit() else None)


class LocalStepFunctions:
    def __init__(self, backend):
        self.backend = backend
        self.machines = JsonStore(backend.home / "stepfunctions" / "state-machines")
        self.executions = JsonStore(backend.home / "stepfunctions" / "executions")

    # --- state machines, revisions, versions ---------------------------------------------------------
    def _machine(self, name: str, state_machine_arn: str, operation: str) -> dict:
        if not self.machines.exists(name):
            raise StateMachineDoesNotExist.error(f"State Machine Does Not Exist: '{state_machine_arn}'", operation)
        return self.machines.read(name)

    def _check(self, definition: str) -> None:
        """Refuse, at deploy time, a definition the local executor cannot run (StateMachineError)."""
        asl.LocalExecutor(definition, self.backend.runners())

    def _publish(self, machine: dict, description: str | None = None) -> str:
        """The version of the current revision: the existing one, or a new one."""
        versions = machine.setdefault("versions", {})
        for number, version in versions.items():
            if version["revisionId"] == machine["revisionId"]:
                return f"{machine['stateMachineArn']}:{number}"
        if len(versions) >= VERSION_QUOTA:
            raise StatesQuotaExceeded.error(
                f"State machine {machine['name']} has {len(versions)} versions, the maximum; delete older versions",
                "PublishStateMachineVersion",
            )
        number = machine.get("lastVersion", 0) + 1
        machine["lastVersion"] = number
        versions[str(number)] = {
            "definition": machine["definition"],
            "roleArn": machine["roleArn"],
            "revisionId": machine["revisionId"],
            "creationDate": now(),
            "description": description or "",
        }
        return f"{machine['stateMachineArn']}:{number}"

    def create_state_machine(
        self,
        name: str,
        definition: str,
        roleArn: str,
        publish: bool = False,
        versionDescription: str | None = None,
        **_: Any,
    ) -> dict:
        """Idempotent for the same definition (another role is not applied); otherwise
        StateMachineAlreadyExists."""
        machine_arn = arn("states", "stateMachine:", name)
        if self.machines.exists(name):
            machine = self.machines.read(name)
            if machine["definition"] != definition:
                raise StateMachineAlreadyExists.error(
                    f"State Machine Already Exists: '{machine_arn}'", "CreateStateMachine"
                )
        else:
            self._check(definition)
            machine = {
                "name": name,
                "stateMachineArn": machine_arn,
                "definition": definition,
                "roleArn": roleArn,
                "creationDate": now(),
                "revisionId": uuid.uuid4().hex,
                "status": "ACTIVE",
            }
        response = {"stateMachineArn": machine_arn, "creationDate": machine["creationDate"]}
        if publish:
            response["stateMachineVersionArn"] = self._publish(machine, versionDescription)
        self.machines.write(name, machine)
        return response

    def update_state_machine(
        self,
        stateMachineArn: str,
        definition: str | None = None,
        roleArn: str | None = None,
        publish: bool = False,
        versionDescription: str | None = None,
        **_: Any,
    ) -> dict:
        name, version = _parts(stateMachineArn, "UpdateStateMachine")
        if version is not None:
            raise StatesValidation.error("Cannot update a state machine version", "UpdateStateMachine")
        machine = self._machine(name, stateMachineArn, "UpdateStateMachine")
        if definition is None and roleArn is None:
            raise StatesValidation.error("Either definition or roleArn must be specified", "UpdateStateMachine")
        if definition is not None:
            self._check(definition)
        changed = {
            k: v for k, v in (("definition", definition), ("roleArn", roleArn)) if v is not None and machine[k] != v
        }
        machine.update(changed, updateDate=now())
        if changed:  # a new revision; an update that changes nothing keeps the revision (and its version)
            machine["revisionId"] = uuid.uuid4().hex
        response = {"updateDate": machine["updateDate"], "revisionId": machine["revisionId"]}
        if publish:
            response["stateMachineVersionArn"] = self._publish(machine, versionDescription)
        self.machines.write(name, machine)
        return response

    def publish_state_machine_version(
        self, stateMachineArn: str, revisionId: str | None = None, description: str | None = None
    ) -> dict:
        name, _ = _parts(stateMachineArn, "PublishStateMachineVersion")
        machine = self._machine(name, stateMachineArn, "PublishStateMachineVersion")
        if revisionId is not None and revisionId != machine["revisionId"]:
            raise StatesValidation.error(
                f"revisionId {revisionId} is not the latest revision {machine['revisionId']}",
                "PublishStateMachineVersion",
            )
        version_arn = self._publish(machine, description)
        self.machines.write(name, machine)
        return {"stateMachineVersionArn": version_arn, "creationDate": now()}

    def list_state_machine_versions(self, stateMachineArn: str, **_: Any) -> dict:
        """Newest first, as the service lists them."""
        name, _ = _parts(stateMachineArn, "ListStateMachineVersions")
        machine = self._machine(name, stateMachineArn, "ListStateMachineVersions")
        numbers = sorted(map(int, machine.get("versions", {})), reverse=True)
        return {
            "stateMachineVersions": [
                {
                    "stateMachineVersionArn": f"{machine['stateMachineArn']}:{n}",
                    "creationDate": machine["versions"][str(n)]["creationDate"],
                }
                for n in numbers
            ]
        }

    def delete_state_machine_version(self, stateMachineVersionArn: str) -> dict:
        """Deleting a version that does not exist succeeds, as on the service."""
        name, version = _parts(stateMachineVersionArn, "DeleteStateMachineVersion")
        if version is None:
            raise StatesValidation.error("not a version ARN", "DeleteStateMachineVersion")
        if self.machines.exists(name):
            machine = self.machines.read(name)
            machine.get("versions", {}).pop(str(version), None)
            self.machines.write(name, machine)
        return {}

    def describe_state_machine(self, stateMachineArn: str) -> dict:
        name, version = _parts(stateMachineArn, "DescribeStateMachine")
        machine = self._machine(name, stateMachineArn, "DescribeStateMachine")
        described = {
            k: machine[k]
            for k in ("name", "stateMachineArn", "definition", "roleArn", "creationDate", "revisionId", "status")
        }
        if version is not None:
            stored = machine.get("versions", {}).get(str(version))
            if stored is None:
                raise StatesResourceNotFound.error(
                    f"Version does not exist: '{stateMachineArn}'", "DescribeStateMachine"
                )
            described.update(
                definition=stored["definition"],
                roleArn=stored["roleArn"],
                revisionId=stored["revisionId"],
                stateMachineArn=stateMachineArn,
                creationDate=stored["creationDate"],
                description=stored["description"],
            )
        return described

    # --- executions --------------------------------------------------------------------------------------
    @staticmethod
    def _execution_key(execution_arn: str) -> str:
        parts = execution_arn.split(":")
        if len(parts) < 8 or parts[5] != "execution":
            raise StatesInvalidArn.error(f"Invalid Arn: '{execution_arn}'", "DescribeExecution")
        return f"{parts[6]}--{parts[7]}"

    def start_execution(self, stateMachineArn: str, name: str, input: str = "{}", **_: Any) -> dict:
        """Run the execution to its end (Step Functions runs it asynchronously).

        ``stateMachineArn`` may name a published version: the execution then runs
        that version's definition whatever the state machine holds now. A name
        already used is refused once that execution has closed, as the service
        refuses it; this executor closes every execution before returning.
        """
        machine = self.describe_state_machine(stateMachineArn)
        base_arn = arn("states", "stateMachine:", machine["name"])
        execution_arn = base_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        key = self._execution_key(execution_arn)
        if self.executions.exists(key):
            existing = self._execution(execution_arn, "StartExecution")
            if existing["status"] == "RUNNING" and existing["input"] == json.loads(input):
                return {"executionArn": existing["executionArn"], "startDate": existing["startDate"]}
            raise ExecutionAlreadyExists.error(f"Execution Already Exists: '{execution_arn}'", "StartExecution")
        execution = self._executor(machine["definition"], key, stateMachineArn).run(json.loads(input), name=name)
        self._keep(key, stateMachineArn, execution, owner=None)
        return {"executionArn": execution.arn, "startDate": execution.start_date}

    def _executor(self, definition: str, key: str, source_arn: str) -> asl.LocalExecutor:
        base_arn = arn("states", "stateMachine:", _parts(source_arn, "")[0])
        return asl.LocalExecutor(
            definition,
            self.backend.runners(),
            base_arn,
            on_event=lambda execution: self._keep(key, source_arn, execution, os.getpid()),
        )

    def _keep(self, key: str, source_arn: str, execution: asl.Execution, owner: int | None) -> None:
        """Write the execution's record; ``owner`` is the process running it, while it runs."""
        self.executions.write(key, {**execution.to_dict(), "stateMachineArn": source_arn, "ownerPid": owner})

    def redrive_execution(self, executionArn: str, clientToken: str | None = None) -> dict:
        """Continue a FAILED, ABORTED or TIMED_OUT execution from the state that did not succeed, with the
        same definition (version), input and ARN; other statuses -> ExecutionNotRedrivable."""
        record = self._execution(executionArn, "RedriveExecution")
        if record["status"] not in asl.REDRIVABLE:
            raise ExecutionNotRedrivable.error(
                f"Execution is {record['status']} and cannot be redriven", "RedriveExecution"
            )
        machine = self.describe_state_machine(record["stateMachineArn"])
        key = self._execution_key(executionArn)
        executor = self._executor(machine["definition"], key, record["stateMachineArn"])
        try:
            execution = executor.redrive(asl.Execution.from_dict(record))
        except StateMachineError as exc:  # nothing left to continue from
            raise ExecutionNotRedrivable.error(str(exc), "RedriveExecution") from None
        self._keep(key, record["stateMachineArn"], execution, owner=None)
        return {"redriveDate": execution.redrive_date}

    def _execution(self, execution_arn: str, operation: str) -> dict:
        key = self._execution_key(execution_arn)
        if not self.executions.exists(key):
            raise ExecutionDoesNotExist.error(f"Execution Does Not Exist: '{execution_arn}'", operation)
        record = self.executions.read(key)
        if record["status"] == "RUNNING" and not process_alive(record.get("ownerPid")):
            execution = asl.Execution.from_dict(record)
            execution.close(
                "ABORTED",
                error="States.Aborted",
                cause=f"the local process running the execution (pid {record.get('ownerPid')}) ended",
            )
            record = {**record, **execution.to_dict(), "ownerPid": None}
            self.executions.write(key, record)
        return record

    def describe_execution(self, executionArn: str) -> dict:
        record = self._execution(executionArn, "DescribeExecution")
        source = record["stateMachineArn"]
        described = {
            "executionArn": record["executionArn"],
            "name": record["name"],
            "status": record["status"],
            "stateMachineArn": source.rsplit(":", 1)[0] if _parts(source, "")[1] else source,
            "startDate": record["startDate"],
            "stopDate": record["stopDate"],
            "input": json.dumps(record["input"]),
        }
        if _parts(source, "")[1] is not None:
            described["stateMachineVersionArn"] = source
        if record["status"] == "SUCCEEDED":
            described["output"] = json.dumps(record["output"])
        elif record["status"] != "RUNNING":
            described.update(error=record["error"], cause=record["cause"])
        described["redriveCount"] = record.get("redriveCount", 0)
        if record.get("redriveDate"):
            described["redriveDate"] = record["redriveDate"]
        redrivable = record["status"] in asl.REDRIVABLE
        described["redriveStatus"] = "REDRIVABLE" if redrivable else "NOT_REDRIVABLE"
        if not redrivable:
            described["redriveStatusReason"] = f"Execution is {record['status']} and cannot be redriven"
        return described

    def get_execution_history(
        self, executionArn: str, reverseOrder: bool = False, maxResults: int = 1000, **_: Any
    ) -> dict:
        """The events in the service's shape (``<Type>StateEntered`` with ``stateEnteredEventDetails``...)."""
        events = _service_events(self._execution(executionArn, "GetExecutionHistory").get("events", []))
        if reverseOrder:
            events.reverse()
        return {"events": events[:maxResults]}

    def local_execution(self, executionArn: str) -> dict:
        """The full local record: states with input/output/timings, and the raw events."""
        return self._execution(executionArn, "DescribeExecution")


def _service_events(events: list[dict]) -> list[dict]:
    """Local executor events as GetExecutionHistory returns them."""
    shaped, state_types = [], {}
    for event in events:
        kind, details = event["type"], None
        if kind == "StateEntered":
            state_types[event["state"]] = event["stateType"]
            kind = f"{event['stateType']}StateEntered"
            details = ("stateEnteredEventDetails", {"name": event["state"], "input": json.dumps(event["input"])})
        elif kind == "StateExited":
            kind = f"{state_types.get(event['state'], 'Task')}StateExited"
            details = ("stateExitedEventDetails", {"name": event["state"], "output": json.dumps(event["output"])})
        elif kind == "StateFailed":
            continue  # the service reports the failure in TaskFailed / ExecutionFailed
        elif kind == "ExecutionStarted":
            details = ("executionStartedEventDetails", {"input": json.dumps(event["input"])})
        elif kind == "ExecutionSucceeded":
            details = ("executionSucceededEventDetails", {"output": json.dumps(event["output"])})
        elif kind in ("ExecutionFailed", "TaskFailed", "ExecutionAborted"):
            details = (f"{kind[0].lower()}{kind[1:]}EventDetails", {"error": event["error"], "cause": event["cause"]})
        elif kind == "ExecutionRedriven":
            details = ("executionRedrivenEventDetails", {"redriveCount": event["redriveCount"]})
        elif kind == "TaskScheduled":
            details = (
                "taskScheduledEventDetails",
                {"resource": event["resource"], "parameters": json.dumps(event["parameters"])},
            )
        elif kind == "TaskSucceeded":
            details = ("taskSucceededEventDetails", {"output": json.dumps(event["output"], default=str)})
        item = {
            "id": len(shaped) + 1,
            "previousEventId": len(shaped),
            "type": kind,
            "timestamp": asl.parse_timestamp(event["timestamp"]),
        }
        if details:
            item[details[0]] = details[1]
        shaped.append(item)
    return shaped
