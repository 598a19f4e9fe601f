import json

import pytest

from churn_pipeline.backends.local import asl, asl_paths
from churn_pipeline.errors import StateMachineError, TaskFailed


def machine(states, start=None):
    return {"StartAt": start or next(iter(states)), "States": states}


def run(definition, runners=None, execution_input=None):
    return asl.LocalExecutor(definition, runners or {}, sleep=lambda s: None).run(execution_input, name="t")


def test_paths_parse_dot_and_bracket_notation():
    assert asl_paths.parse_path("$.a['b:c'][2].d") == ("$", ["a", "b:c", 2, "d"])
    assert asl_paths.parse_path("$$.Execution.Input['RunId']") == ("$$", ["Execution", "Input", "RunId"])
    with pytest.raises(StateMachineError):
        asl_paths.parse_path("$.a[*]")


def test_parameters_with_paths_and_context_and_result_path():
    seen = {}

    def task(parameters):
        seen.update(parameters)
        return {"ok": True}

    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "ResultPath": "$.result",
                "Parameters": {
                    "fixed": 1,
                    "value.$": "$.x",
                    "run.$": "$$.Execution.Input['RunId']",
                    "nested": {"name.$": "$$.Execution.Name"},
                },
            }
        }
    )
    execution = run(definition, {"r": task}, {"x": 5, "RunId": "r1"})
    assert execution.status == "SUCCEEDED"
    assert seen == {"fixed": 1, "value": 5, "run": "r1", "nested": {"name": "t"}}
    assert execution.output == {"x": 5, "RunId": "r1", "result": {"ok": True}}


def test_input_output_paths_and_result_selector():
    definition = machine(
        {
            "P": {"Type": "Pass", "InputPath": "$.inner", "Result": {"a": {"b": 2}}, "ResultPath": "$.r", "Next": "T"},
            "T": {
                "Type": "Task",
                "Resource": "r",
                "ResultSelector": {"v.$": "$.value"},
                "ResultPath": "$.sel",
                "OutputPath": "$.sel",
                "End": True,
            },
        }
    )
    execution = run(definition, {"r": lambda p: {"value": 9, "noise": 1}}, {"inner": {"k": 1}, "outer": 0})
    assert execution.output == {"v": 9}


@pytest.mark.parametrize("value, expected", [(0.95, "Yes"), (0.90, "No"), ("0.95", "No")])
def test_choice_numeric_greater_than(value, expected):
    definition = machine(
        {
            "C": {
                "Type": "Choice",
                "Choices": [{"Variable": "$.m['validation:accuracy']", "NumericGreaterThan": 0.9, "Next": "Yes"}],
                "Default": "No",
            },
            "Yes": {"Type": "Succeed"},
            "No": {"Type": "Fail", "Error": "Low", "Cause": "too low"},
        }
    )
    execution = run(definition, execution_input={"m": {"validation:accuracy": value}})
    assert execution.status == ("SUCCEEDED" if expected == "Yes" else "FAILED")
    if expected == "No":
        assert (execution.failed_state, execution.error, execution.cause) == ("No", "Low", "too low")


def test_choice_combinators_and_missing_default():
    rule = {
        "And": [
            {"Variable": "$.a", "StringEquals": "x"},
            {"Not": {"Variable": "$.b", "BooleanEquals": True}},
            {"Or": [{"Variable": "$.c", "IsPresent": True}, {"Variable": "$.d", "NumericLessThanEquals": 1}]},
        ]
    }
    definition = machine({"C": {"Type": "Choice", "Choices": [{**rule, "Next": "S"}]}, "S": {"Type": "Succeed"}})
    assert run(definition, execution_input={"a": "x", "b": False, "d": 1}).status == "SUCCEEDED"
    failed = run(definition, execution_input={"a": "x", "b": True, "d": 1})
    assert failed.error == "States.NoChoiceMatched"


def test_retry_then_success_and_context_retry_count():
    calls = []

    def flaky(parameters):
        calls.append(1)
        if len(calls) < 3:
            raise TaskFailed("Lambda.ServiceException", "try again")
        return {"n": len(calls)}

    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Retry": [
                    {
                        "ErrorEquals": ["Lambda.ServiceException"],
                        "MaxAttempts": 3,
                        "IntervalSeconds": 1,
                        "BackoffRate": 2.0,
                    }
                ],
            }
        }
    )
    execution = run(definition, {"r": flaky})
    assert execution.status == "SUCCEEDED" and execution.output == {"n": 3}
    assert [e["type"] for e in execution.history].count("TaskFailed") == 2


def test_retry_gives_up_after_max_attempts():
    def broken(parameters):
        raise TaskFailed("Lambda.ServiceException", "down")

    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Retry": [{"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}],
            }
        }
    )
    execution = run(definition, {"r": broken})
    assert (execution.status, execution.error, execution.failed_state) == ("FAILED", "Lambda.ServiceException", "T")
    assert [e["type"] for e in execution.history].count("TaskScheduled") == 3


def test_catch_routes_the_error_with_result_path():
    def broken(parameters):
        raise TaskFailed("Custom.Error", "boom")

    definition = machine(
        {
            "T": {
                "Type": "Task",
                "Resource": "r",
                "End": True,
                "Catch": [
                    {"ErrorEquals": ["Other"], "Next": "S"},
                    {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.error", "Next": "S"},
                ],
            },
            "S": {"Type": "Pass", "End": True},
        }
    )
    execution = run(definition, {"r": broken}, {"keep": 1})
    assert execution.output == {"keep": 1, "error": {"Error": "Custom.Error", "Cause": "boom"}}


def test_missing_path_fails_the_execution_with_states_runtime():
    definition = machine({"P": {"Type": "Pass", "Parameters": {"x.$": "$.missing"}, "End": True}})
    execution = run(definition)
    assert execution.error == "States.Runtime" and "missing" in execution.cause


@pytest.mark.parametrize(
    "state, message",
    [
        ({"Type": "Map", "End": True}, "type 'Map' is not supported"),
        ({"Type": "Task", "Resource": "arn:aws:states:::ecs:runTask", "End": True}, "has no local runner"),
        ({"Type": "Pass", "Next": "Nowhere"}, "unknown state 'Nowhere'"),
    ],
)
def test_unsupported_definitions_are_refused_before_running(state, message):
    with pytest.raises(StateMachineError, match=message):
        asl.LocalExecutor(machine({"S": state}), {})


def test_states_format_joins_literals_paths_and_the_context():
    """SFN-REDRIVE-NAMES: the training job name of a redriven execution carries $$.Execution.RedriveCount."""
    definition = machine(
        {
            "P": {
                "Type": "Pass",
                "Parameters": {
                    "x.$": "States.Format('{}-{}', $.name, $$.Execution.RedriveCount)",
                    "y.$": "States.Format('it\\'s {} of {}', $.n, 'two')",
                    "z.$": "States.Format('\\{\\} {}', $.name)",
                },
                "End": True,
            }
        }
    )
    execution = run(definition, execution_input={"name": "job", "n": 1})
    assert execution.output == {"x": "job-0", "y": "it's 1 of two", "z": "{} job"}


@pytest.mark.parametrize(
    "expression",
    ["States.JsonMerge($.a, $.b, false)", "States.Format('{} {}', $.a)", "States.Format($.a)", "States.Format()"],
)
def test_other_intrinsics_and_bad_arguments_fail_loudly(expression):
    definition = machine({"P": {"Type": "Pass", "Parameters": {"x.$": expression}, "End": True}})
    try:
        execution = run(definition, execution_input={"a": 1, "b": 2})
    except StateMachineError as refused:
        assert "intrinsic" in str(refused) or "string literal template" in str(refused)
    else:
        assert execution.status == "FAILED" and "placeholders" in execution.cause


def test_redrive_continues_from_the_failed_state_with_its_input():
    """SFN-REDRIVE: succeeded states are not run again; the failed one reruns with the input it had."""
    calls = []
    outcomes = iter([TaskFailed("States.TaskFailed", "transient"), {"ok": True}])

    def flaky(parameters):
        calls.append(("flaky", parameters))
        outcome = next(outcomes)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def first(parameters):
        calls.append(("first", parameters))
        return 1

    definition = machine(
        {
            "A": {"Type": "Task", "Resource": "arn:first", "ResultPath": "$.a", "Next": "B"},
            "B": {
                "Type": "Task",
                "Resource": "arn:flaky",
                "Parameters": {"a.$": "$.a", "n.$": "$$.Execution.RedriveCount"},
                "ResultPath": "$.b",
                "End": True,
            },
        }
    )
    executor = asl.LocalExecutor(definition, {"arn:first": first, "arn:flaky": flaky})
    execution = executor.run({"x": 1}, name="e")
    assert execution.status == "FAILED" and execution.failed_state == "B"
    stored = asl.Execution.from_dict(json.loads(json.dumps(execution.to_dict())))
    redriven = executor.redrive(stored)
    assert redriven.status == "SUCCEEDED" and redriven.redrive_count == 1
    assert redriven.output == {"x": 1, "a": 1, "b": {"ok": True}}
    assert [name for name, _ in calls] == ["first", "flaky", "flaky"]
    assert calls[-1][1] == {"a": 1, "n": 1}
    assert [e["type"] for e in redriven.history].count("ExecutionRedriven") == 1
    with pytest.raises(StateMachineError, match="SUCCEEDED"):
        executor.redrive(redriven)


def test_history_records_each_state_with_input_output_and_times():
    definition = machine(
        {"A": {"Type": "Pass", "Result": 1, "ResultPath": "$.a", "Next": "B"}, "B": {"Type": "Succeed"}}
    )
    execution = run(definition, execution_input={})
    rows = execution.states()
    assert [(r["state"], r["status"]) for r in rows] == [("A", "SUCCEEDED"), ("B", "SUCCEEDED")]
    assert rows[0]["input"] == {} and rows[0]["output"] == {"a": 1}
    assert all(r["started"] and r["ended"] and r["seconds"] >= 0 for r in rows)
    assert execution.to_dict()["events"][0]["type"] == "ExecutionStarted"


def test_an_interrupted_execution_is_closed_as_aborted_not_left_running():
    def interrupted(parameters):
        raise KeyboardInterrupt

    seen = []
    executor = asl.LocalExecutor(
        machine({"T": {"Type": "Task", "Resource": "arn:t", "End": True}}),
        {"arn:t": interrupted},
        on_event=lambda execution: seen.append(execution.status),
    )
    with pytest.raises(KeyboardInterrupt):
        executor.run({}, name="e")
    assert seen[-1] == "ABORTED"
