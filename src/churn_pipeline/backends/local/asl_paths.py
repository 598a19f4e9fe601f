"""The data side of Amazon States Language, as the local executor applies it: paths (``$``,
``$$``), ``States.Format``, Parameters templates, Choice rules and error matching."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ...errors import StateMachineError

_TOKEN = re.compile(r"""\.([A-Za-z_][\w-]*)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(\d+)\s*\]""")


class PathError(Exception):
    """A reference path does not resolve (States.Runtime in Step Functions)."""


def parse_path(path: str) -> tuple[str, list[str | int]]:
    """``$.a['b'][0]`` -> ('$', ['a', 'b', 0]); ``$$.Execution.Input`` -> ('$$', [...])."""
    root = "$$" if path.startswith("$$") else "$"
    if not path.startswith("$"):
        raise StateMachineError(f"path {path!r} must start with $")
    rest, position, steps = path[len(root) :], 0, []
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if not match:
            raise StateMachineError(f"unsupported path syntax {path!r} at {rest[position:]!r}")
        name, single, double, index = match.groups()
        steps.append(int(index) if index is not None else next(g for g in (name, single, double) if g is not None))
        position = match.end()
    return root, steps


def read_path(path: str, data: Any, context: Mapping[str, Any]) -> Any:
    root, steps = parse_path(path)
    value = context if root == "$$" else data
    for step in steps:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            raise PathError(f"path {path!r} does not resolve: no {step!r}") from None
    return value


def write_path(path: str | None, data: Any, result: Any) -> Any:
    """Place ``result`` into ``data`` at ResultPath (``$`` replaces, ``None`` discards)."""
    if path is None:
        return data
    root, steps = parse_path(path)
    if root == "$$":
        raise StateMachineError(f"ResultPath {path!r} cannot write into the context object")
    if not steps:
        return result
    data = copy.deepcopy(data) if isinstance(data, dict) else {}
    target = data
    for step in steps[:-1]:
        if not isinstance(target.get(step), dict):
            target[step] = {}
        target = target[step]
    target[steps[-1]] = result
    return data


_FORMAT = re.compile(r"^States\.Format\((.*)\)$", re.S)


_ARGUMENT = re.compile(r"""\s*(?:'((?:[^'\\]|\\.)*)'|(\$\$?[^,\s]*)|(-?\d+(?:\.\d+)?))\s*(?:,|$)""")


def intrinsic(expression: str, data: Any, context: Mapping[str, Any]) -> Any:
    """Evaluate ``States.Format('template {}', arg, ...)``: string literals, numbers and paths."""
    match = _FORMAT.match(expression.strip())
    if not match:
        raise StateMachineError(
            f"intrinsic {expression!r} is not supported by the local executor (supported: States.Format)"
        )
    arguments, body, position = [], match.group(1), 0
    while position < len(body):
        found = _ARGUMENT.match(body, position)
        if not found or found.end() == position:
            raise StateMachineError(f"cannot parse the arguments of {expression!r}")
        literal, path, number = found.groups()
        if literal is not None:
            arguments.append(("literal", literal))
        elif path is not None:
            arguments.append(("value", read_path(path, data, context)))
        else:
            arguments.append(("value", float(number) if "." in number else int(number)))
        position = found.end()
    if not arguments or arguments[0][0] != "literal":
        raise StateMachineError(f"{expression!r}: States.Format takes a string literal template first")
    values = [value if kind == "value" else re.sub(r"\\(.)", r"\1", value) for kind, value in arguments[1:]]
    if any(isinstance(value, (dict, list)) for value in values):
        raise PathError(f"{expression!r}: States.Format takes strings, numbers, booleans and null only")
    # the template's \{ \} are literal braces; an unescaped {} is a placeholder
    pieces, piece, template, index = [], "", arguments[0][1], 0
    while index < len(template):
        if template[index] == "\\" and index + 1 < len(template):
            piece, index = piece + template[index + 1], index + 2
        elif template.startswith("{}", index):
            pieces.append(piece)
            piece, index = "", index + 2
        else:
            piece, index = piece + template[index], index + 1
    pieces.append(piece)
    if len(pieces) - 1 != len(values):
        raise PathError(f"{expression!r}: the template has {len(pieces) - 1} placeholders for {len(values)} arguments")
    text = pieces[0]
    for value, piece in zip(values, pieces[1:]):
        text += (value if isinstance(value, str) else json.dumps(value)) + piece
    return text


def resolve_parameters(template: Any, data: Any, context: Mapping[str, Any]) -> Any:
    """Fill a Parameters/ResultSelector template: keys ending in ``.$`` take a path's value."""
    if isinstance(template, dict):
        resolved = {}
        for key, value in template.items():
            if key.endswith(".$"):
                if not isinstance(value, str):
                    raise StateMachineError(f"{key!r} must hold a path or an intrinsic function")
                resolved[key[:-2]] = (
                    read_path(value, data, context) if value.startswith("$") else intrinsic(value, data, context)
                )
            else:
                resolved[key] = resolve_parameters(value, data, context)
        return resolved
    if isinstance(template, list):
        return [resolve_parameters(v, data, context) for v in template]
    return template


_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "StringEquals": lambda a, b: isinstance(a, str) and a == b,
    "StringLessThan": lambda a, b: isinstance(a, str) and a < b,
    "StringGreaterThan": lambda a, b: isinstance(a, str) and a > b,
    "StringLessThanEquals": lambda a, b: isinstance(a, str) and a <= b,
    "StringGreaterThanEquals": lambda a, b: isinstance(a, str) and a >= b,
    "NumericEquals": lambda a, b: _is_number(a) and a == b,
    "NumericLessThan": lambda a, b: _is_number(a) and a < b,
    "NumericGreaterThan": lambda a, b: _is_number(a) and a > b,
    "NumericLessThanEquals": lambda a, b: _is_number(a) and a <= b,
    "NumericGreaterThanEquals": lambda a, b: _is_number(a) and a >= b,
    "BooleanEquals": lambda a, b: isinstance(a, bool) and a == b,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def evaluate_rule(rule: Mapping[str, Any], data: Any, context: Mapping[str, Any], state: str) -> bool:
    if "And" in rule:
        return all(evaluate_rule(r, data, context, state) for r in rule["And"])
    if "Or" in rule:
        return any(evaluate_rule(r, data, context, state) for r in rule["Or"])
    if "Not" in rule:
        return not evaluate_rule(rule["Not"], data, context, state)
    variable = rule.get("Variable")
    if variable is None:
        raise StateMachineError(f"state {state!r}: a choice rule has no Variable")
    if "IsPresent" in rule:
        try:
            read_path(variable, data, context)
            present = True
        except PathError:
            present = False
        return present == rule["IsPresent"]
    value = read_path(variable, data, context)
    for name, test in _TYPE_TESTS.items():
        if name in rule:
            return test(value) == rule[name]
    for name, compare in _COMPARISONS.items():
        if name in rule:
            return compare(value, rule[name])
        if name + "Path" in rule:
            return compare(value, read_path(rule[name + "Path"], data, context))
    operators = sorted(k for k in rule if k not in ("Variable", "Next"))
    raise StateMachineError(f"state {state!r}: choice operator {', '.join(operators)} is not supported locally")


def error_matches(patterns: list[str], error: str) -> bool:
    # States.TaskFailed matches every task error except a time-out, as in Step Functions.
    return (
        "States.ALL" in patterns or error in patterns or ("States.TaskFailed" in patterns and error != "States.Timeout")
    )


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda a: a is None,
    "IsString": lambda a: isinstance(a, str),
    "IsNumeric": lambda a: _is_number(a),
    "IsBoolean": lambda a: isinstance(a, bool),
}
