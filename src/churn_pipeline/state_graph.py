"""A state machine's graph in execution order, for drawing: each state's rank (its longest path from
``StartAt``, so a state is drawn below every state that can lead to it), its lane (the branches of a
Choice side by side), its status in an execution (succeeded, failed, running, not run), and each edge
with its label (a Choice rule in words, ``otherwise`` for the Default, the errors of a Catch) and
whether the execution took it. Pure: the same for the local executor's histories and AWS's."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

#: a state the execution never entered
NOT_RUN = "NOT_RUN"
#: Choice comparison operators in words (Step Functions' JSONPath rules)
_OPERATORS = {
    "Equals": "=",
    "GreaterThan": ">",
    "GreaterThanEquals": "≥",
    "LessThan": "<",
    "LessThanEquals": "≤",
    "Matches": "matches",
}


@dataclass(frozen=True)
class Node:
    name: str
    type: str
    rank: int
    lane: float
    status: str


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    label: str
    taken: bool


def successors(state: dict[str, Any]) -> list[tuple[str, str]]:
    """(next state, label) for every transition out of ``state``."""
    out = [(rule["Next"], rule_label(rule)) for rule in state.get("Choices", [])]
    if state.get("Default"):
        out.append((state["Default"], "otherwise"))
    if state.get("Next"):
        out.append((state["Next"], ""))
    out += [(catch["Next"], "on " + ", ".join(catch.get("ErrorEquals", []))) for catch in state.get("Catch", [])]
    return out


def rule_label(rule: dict[str, Any]) -> str:
    """A Choice rule in words: ``ReuseEtl = true``, ``validation:accuracy > 0.9``."""
    if "Condition" in rule:  # JSONata
        return str(rule["Condition"]).strip("{}% ")
    for combinator, joiner in (("And", " and "), ("Or", " or ")):
        if combinator in rule:
            return joiner.join(f"({rule_label(inner)})" for inner in rule[combinator])
    if "Not" in rule:
        return f"not ({rule_label(rule['Not'])})"
    variable = _short_path(rule.get("Variable", ""))
    for key, value in rule.items():
        if key in ("Variable", "Next"):
            continue
        if key == "IsPresent" or key.startswith("Is"):
            return f"{variable} {key[2:].lower()}" if value else f"{variable} not {key[2:].lower()}"
        operator = next((word for suffix, word in _OPERATORS.items() if key.removesuffix("Path").endswith(suffix)), key)
        shown = _short_path(value) if key.endswith("Path") else json.dumps(value)
        return f"{variable} {operator} {shown}"
    return variable


def _short_path(path: str) -> str:
    """The last field a JSONPath names: ``$.TrainingResults.Payload.metrics['validation:accuracy']`` ->
    ``validation:accuracy``."""
    fields = re.findall(r"\['([^']+)'\]|\[\"([^\"]+)\"\]|\.([^.\[]+)", str(path))
    names = [next(part for part in found if part) for found in fields]
    return names[-1] if names else str(path)


def layout(definition: dict[str, Any], history: dict[str, Any] | None = None) -> tuple[list[Node], list[Edge]]:
    """The nodes (reachable from ``StartAt``) and edges of ``definition``, placed in execution order, with
    what ``history`` (``{"states": [{"state", "status"}, ...]}`` in the order they were entered) ran."""
    states = definition["States"]
    order = _reachable(definition)
    rank = _ranks(definition, order)
    ranks: dict[int, list[str]] = {}
    for name in order:
        ranks.setdefault(rank[name], []).append(name)
    entered = [row["state"] for row in (history or {}).get("states", [])]
    status = {row["state"]: row["status"] for row in (history or {}).get("states", [])}
    nodes = []
    for level, names in sorted(ranks.items()):
        for place, name in enumerate(names):
            lane = place - (len(names) - 1) / 2
            nodes.append(Node(name, states[name]["Type"], level, lane, status.get(name, NOT_RUN)))
    steps = set(zip(entered, entered[1:]))
    edges = [
        Edge(name, target, label, (name, target) in steps)
        for name in order
        for target, label in successors(states[name])
        if target in rank
    ]
    return nodes, edges


def _reachable(definition: dict[str, Any]) -> list[str]:
    order, pending = [], [definition["StartAt"]]
    while pending:
        name = pending.pop(0)
        if name not in order:
            order.append(name)
            pending += [target for target, _ in successors(definition["States"][name])]
    return order


def _ranks(definition: dict[str, Any], order: list[str]) -> dict[str, int]:
    """Each state's longest path from ``StartAt``, loops left out (an edge back to a state on the current
    path does not push it down)."""
    rank = {name: 0 for name in order}
    forward: list[tuple[str, str]] = []
    visiting: set[str] = set()
    done: set[str] = set()

    def visit(name: str) -> None:
        visiting.add(name)
        for target, _ in successors(definition["States"][name]):
            if target in visiting:
                continue  # a loop back
            forward.append((name, target))
            if target not in done:
                visit(target)
        visiting.discard(name)
        done.add(name)

    visit(definition["StartAt"])
    for _ in order:  # longest paths by relaxation: at most one round per state
        changed = False
        for source, target in forward:
            if rank[target] < rank[source] + 1:
                rank[target], changed = rank[source] + 1, True
        if not changed:
            break
    return rank
