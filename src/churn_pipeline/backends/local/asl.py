"""A local executor of Amazon States Language: the very JSON Step Functions receives.

Supported: Task, Choice, Pass, Succeed, Fail; Parameters and ResultSelector
with ``.$`` paths (including ``$$`` context paths) and the ``States.Format``
intrinsic; InputPath, ResultPath, OutputPath; Retry and Catch; redrive (an
unsuccessful execution continues from the state that did not succeed, with
that state's input, as Step Functions' RedriveExecution does). Task
``Resource`` ARNs are looked up in a map of runners supplied by the backend. Anything else stops the run with a
StateMachineError that names the state, never a silent skip.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ...errors import StateMachineError, TaskFailed
from .asl_paths import PathError, error_matches, evaluate_rule, read_path, resolve_parameters, write_path

Runner = Callable[[dict[str, Any]], Any]
SUPPORTED_STATES = {"Task", "Choice", "Pass", "Succeed", "Fail"}
#: statuses RedriveExecution accepts (a Standard workflow, within 14 days of when it closed)
REDRIVABLE = ("FAILED", "ABORTED", "TIMED_OUT")


def utc_timestamp() -> str:
    """Now, as the executor stamps events (ISO 8601, milliseconds, UTC)."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Execution:
    """What a run did: status, output or failure, and the event history."""

    name: str
    arn: str
    input: Any
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    failed_state: str | None = None
    start_date: str = field(default_factory=utc_timestamp)
    stop_date: str | None = None
    redrive_count: int = 0
    redrive_date: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    def states(self) -> list[dict[str, Any]]:
        """One row per state entered: name, type, status, input, output, start, end, seconds."""
        rows: list[dict[str, Any]] = []
        for event in self.history:
            if event["type"] == "StateEntered":
                rows.append(
                    {
                        "state": event["state"],
                        "type": event["stateType"],
                        "status": "RUNNING",
                        "input": event["input"],
                        "output": None,
                        "started": event["timestamp"],
                        "ended": None,
                        "seconds": None,
                    }
                )
            elif event["type"] == "ExecutionAborted" and rows and rows[-1]["status"] == "RUNNING":
                rows[-1].update(status="ABORTED", ended=event["timestamp"])
            elif event["type"] in ("StateExited", "StateFailed") and rows:
                row = rows[-1]
                row.update(
                    status="SUCCEEDED" if event["type"] == "StateExited" else "FAILED",
                    output=event.get("output"),
                    ended=event["timestamp"],
                    seconds=round(
                        (parse_timestamp(event["timestamp"]) - parse_timestamp(row["started"])).total_seconds(), 3
                    ),
                )
        return rows

    def record(self, kind: str, **details: Any) -> None:
        """Append an event to the history."""
        self.history.append({"id": len(self.history) + 1, "type": kind, "timestamp": utc_timestamp(), **details})

    def close(
        self,
        status: str,
        output: Any = None,
        state: str | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> None:
        """End the execution with ``status`` (SUCCEEDED, FAILED or ABORTED) and its closing event."""
        self.status, self.output, self.failed_state = status, output, state
        self.error, self.cause, self.stop_date = error, cause, utc_timestamp()
        kind = {"SUCCEEDED": "ExecutionSucceeded", "ABORTED": "ExecutionAborted"}.get(status, "ExecutionFailed")
        self.record(
            kind, **({"output": output} if status == "SUCCEEDED" else {"state": state, "error": error, "cause": cause})
        )

    def redrive_point(self) -> tuple[str, Any]:
        """The state that did not succeed (failed, or entered and never left) and the input it had."""
        entered: dict[str, Any] = {}
        last = None
        for event in self.history:
            if event["type"] == "StateEntered":
                entered, last = event, event["state"]
            elif event["type"] == "StateExited" and event["state"] == last:
                last = None
        if last is None:
            raise StateMachineError(f"execution {self.arn} has no unsuccessful state to continue from")
        return last, copy.deepcopy(entered["input"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "executionArn": self.arn,
            "status": self.status,
            "input": self.input,
            "output": self.output,
            "error": self.error,
            "cause": self.cause,
            "failedState": self.failed_state,
            "startDate": self.start_date,
            "stopDate": self.stop_date,
            "redriveCount": self.redrive_count,
            "redriveDate": self.redrive_date,
            "states": self.states(),
            "events": list(self.history),
        }

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> Execution:
        return cls(
            name=record["name"],
            arn=record["executionArn"],
            input=record["input"],
            status=record["status"],
            output=record.get("output"),
            error=record.get("error"),
            cause=record.get("cause"),
            failed_state=record.get("failedState"),
            start_date=record["startDate"],
            stop_date=record.get("stopDate"),
            redrive_count=record.get("redriveCount", 0),
            redrive_date=record.get("redriveDate"),
            history=list(record.get("events", [])),
        )


def parse_timestamp(timestamp: str) -> datetime:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


class LocalExecutor:
    """Interprets one state-machine definition with local task runners."""

    def __init__(
        self,
        definition: Mapping[str, Any] | str,
        runners: Mapping[str, Runner],
        state_machine_arn: str = "arn:aws:states:local:000000000000:stateMachine:local",
        sleep: Callable[[float], None] = time.sleep,
        max_transitions: int = 1000,
        on_event: Callable[[Execution], None] | None = None,
    ):
        """``on_event`` sees the execution after every event (the local service keeps it current)."""
        self.on_event = on_event
        self.definition = json.loads(definition) if isinstance(definition, str) else dict(definition)
        self.runners = dict(runners)
        self.state_machine_arn = state_machine_arn
        self.sleep = sleep
        self.max_transitions = max_transitions
        self.check()

    def check(self) -> None:
        """Refuse, before running, what this executor cannot run faithfully."""
        states = self.definition.get("States")
        if not isinstance(states, dict) or self.definition.get("StartAt") not in (states or {}):
            raise StateMachineError("definition needs States and a StartAt that names one of them")
        for name, state in states.items():
            kind = state.get("Type")
            if kind not in SUPPORTED_STATES:
                raise StateMachineError(
                    f"state {name!r}: type {kind!r} is not supported by the local "
                    f"executor (supported: {', '.join(sorted(SUPPORTED_STATES))})"
                )
            if kind == "Task" and state.get("Resource") not in self.runners:
                raise StateMachineError(
                    f"state {name!r}: resource {state.get('Resource')!r} has no local "
                    f"runner (known: {', '.join(sorted(self.runners))})"
                )
            targets = [state.get("Next"), state.get("Default")]
            targets += [c.get("Next") for c in state.get("Choices", [])]
            targets += [c.get("Next") for c in state.get("Catch", [])]
            for target in filter(None, targets):
                if target not in states:
                    raise StateMachineError(f"state {name!r}: transition to unknown state {target!r}")

    def _event(self, execution: Execution, kind: str, **details: Any) -> None:
        execution.record(kind, **details)
        if self.on_event is not None:
            self.on_event(execution)

    def run(self, execution_input: Any = None, name: str | None = None) -> Execution:
        name = name or str(uuid.uuid4())
        arn = self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"
        execution = Execution(name=name, arn=arn, input=execution_input if execution_input is not None else {})
        self._event(execution, "ExecutionStarted", input=execution.input)
        return self._drive(execution, copy.deepcopy(execution.input), self.definition["StartAt"])

    def redrive(self, execution: Execution) -> Execution:
        """Continue an unsuccessful execution from the state that did not succeed, with the input that
        state had; the states that succeeded are not run again."""
        if execution.status not in REDRIVABLE:
            raise StateMachineError(f"execution {execution.arn} is {execution.status} and cannot be redriven")
        state_name, data = execution.redrive_point()
        execution.status, execution.stop_date = "RUNNING", None
        execution.error = execution.cause = execution.failed_state = None
        execution.redrive_count += 1
        execution.redrive_date = utc_timestamp()
        self._event(execution, "ExecutionRedriven", redriveCount=execution.redrive_count)
        return self._drive(execution, data, state_name)

    def _drive(self, execution: Execution, data: Any, state_name: str) -> Execution:
        """Run from ``state_name``; whatever escapes (an interrupt, a definition this executor refuses)
        closes the execution as ABORTED before it propagates, so it is never left running."""
        try:
            return self._transitions(execution, data, state_name)
        except BaseException as escaped:
            if execution.status == "RUNNING":
                self._finish(
                    execution,
                    "ABORTED",
                    state=state_name if execution.failed_state is None else None,
                    error="States.Aborted",
                    cause=f"{type(escaped).__name__}: {escaped}",
                )
            raise

    def _transitions(self, execution: Execution, data: Any, state_name: str) -> Execution:
        context = {
            "Execution": {
                "Id": execution.arn,
                "Name": execution.name,
                "Input": execution.input,
                "StartTime": execution.start_date,
                "RedriveCount": execution.redrive_count,
            },
            "StateMachine": {"Id": self.state_machine_arn},
            "State": {},
        }
        if execution.redrive_date:
            context["Execution"]["RedriveTime"] = execution.redrive_date
        for _ in range(self.max_transitions):
            state = self.definition["States"][state_name]
            context["State"] = {"Name": state_name, "EnteredTime": utc_timestamp(), "RetryCount": 0}
            self._event(execution, "StateEntered", state=state_name, stateType=state["Type"], input=data)
            try:
                data, next_state = self._step(state_name, state, data, context, execution)
            except _Failure as failure:
                self._event(execution, "StateFailed", state=state_name, error=failure.error, cause=failure.cause)
                return self._finish(execution, "FAILED", state=state_name, error=failure.error, cause=failure.cause)
            self._event(execution, "StateExited", state=state_name, output=data)
            if next_state is None:
                return self._finish(execution, "SUCCEEDED", output=data)
            state_name = next_state
        return self._finish(
            execution,
            "FAILED",
            state=state_name,
            error="States.Runtime",
            cause=f"more than {self.max_transitions} state transitions",
        )

    def _finish(
        self,
        execution: Execution,
        status: str,
        output: Any = None,
        state: str | None = None,
        error: str | None = None,
        cause: str | None = None,
    ) -> Execution:
        execution.close(status, output, state, error, cause)
        if self.on_event is not None:
            self.on_event(execution)
        return execution

    def _step(self, name: str, state: Mapping[str, Any], data: Any, context: dict, execution: Execution):
        kind = state["Type"]
        if kind == "Fail":
            raise _Failure(state.get("Error", "States.Fail"), state.get("Cause", ""))
        if kind == "Succeed":
            return self._output(state, self._input(state, data, context), context), None
        if kind == "Choice":
            effective = self._input(state, data, context)
            for rule in state.get("Choices", []):
                if self._guard(lambda rule=rule: evaluate_rule(rule, effective, context, name)):
                    return self._output(state, effective, context), rule["Next"]
            if "Default" not in state:
                raise _Failure("States.NoChoiceMatched", f"no choice rule of state {name!r} matched")
            return self._output(state, effective, context), state["Default"]
        effective = self._input(state, data, context)
        if kind == "Pass":
            result = state.get("Result", effective)
            if "Parameters" in state:
                result = self._guard(lambda: resolve_parameters(state["Parameters"], effective, context))
        else:
            parameters = self._guard(lambda: resolve_parameters(state.get("Parameters", effective), effective, context))
            try:
                result = self._run_task(name, state, parameters, context, execution)
            except TaskFailed as failure:
                handler = next(
                    (c for c in state.get("Catch", []) if error_matches(c["ErrorEquals"], failure.error)), None
                )
                if handler is None:
                    raise _Failure(failure.error, failure.cause) from None
                error_output = {"Error": failure.error, "Cause": failure.cause}
                caught = self._guard(lambda: write_path(handler.get("ResultPath", "$"), data, error_output))
                return caught, handler["Next"]
            if "ResultSelector" in state:
                result = self._guard(lambda: resolve_parameters(state["ResultSelector"], result, context))
        combined = self._guard(lambda: write_path(state.get("ResultPath", "$"), data, result))
        return self._output(state, combined, context), (None if state.get("End") else state.get("Next"))

    def _run_task(self, name, state, parameters, context, execution) -> Any:
        runner = self.runners[state["Resource"]]
        retriers = [dict(r) for r in state.get("Retry", [])]
        attempts = [0] * len(retriers)
        while True:
            self._event(execution, "TaskScheduled", state=name, resource=state["Resource"], parameters=parameters)
            try:
                result = runner(copy.deepcopy(parameters))
            except TaskFailed as failure:
                self._event(execution, "TaskFailed", state=name, error=failure.error, cause=failure.cause)
                index = next(
                    (i for i, r in enumerate(retriers) if error_matches(r["ErrorEquals"], failure.error)), None
                )
                if index is None or attempts[index] >= retriers[index].get("MaxAttempts", 3):
                    raise
                retry = retriers[index]
                delay = retry.get("IntervalSeconds", 1) * retry.get("BackoffRate", 2.0) ** attempts[index]
                attempts[index] += 1
                context["State"]["RetryCount"] = sum(attempts)
                self.sleep(delay)
                continue
            self._event(execution, "TaskSucceeded", state=name, output=result)
            return result

    @staticmethod
    def _guard(action: Callable[[], Any]) -> Any:
        try:
            return action()
        except PathError as exc:
            raise _Failure("States.Runtime", str(exc)) from None

    def _input(self, state, data, context):
        path = state.get("InputPath", "$")
        return {} if path is None else self._guard(lambda: read_path(path, data, context))

    def _output(self, state, data, context):
        path = state.get("OutputPath", "$")
        return {} if path is None else self._guard(lambda: read_path(path, data, context))


class _Failure(Exception):
    def __init__(self, error: str, cause: str):
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause
