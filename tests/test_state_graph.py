"""The state-machine graph: states ranked in execution order, Choice rules on their edges, the path an
execution took and the states it did not run."""

import matplotlib
import pytest

from churn_pipeline import reports, state_graph

matplotlib.use("Agg")

TRAINING = {
    "StartAt": "Reuse Previous ETL?",
    "States": {
        "Accuracy Above Threshold": {
            "Type": "Choice",
            "Choices": [
                {
                    "Variable": "$.TrainingResults.Payload.metrics['validation:accuracy']",
                    "NumericGreaterThan": 0.9,
                    "Next": "Update Model Registry",
                }
            ],
            "Default": "Accuracy Below Threshold",
        },
        "Accuracy Below Threshold": {"Type": "Fail", "Error": "ModelAccuracyBelowThreshold"},
        "ETL": {
            "Type": "Task",
            "Next": "Model Training",
            "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Cleanup"}],
        },
        "Cleanup": {"Type": "Fail"},
        "Model Training": {"Type": "Task", "Next": "Save Model"},
        "Reuse Previous ETL?": {
            "Type": "Choice",
            "Choices": [{"Variable": "$.ReuseEtl", "BooleanEquals": True, "Next": "Model Training"}],
            "Default": "ETL",
        },
        "Save Model": {"Type": "Task", "Next": "Accuracy Above Threshold"},
        "Update Model Registry": {"Type": "Task", "End": True},
        "Unreachable": {"Type": "Pass", "End": True},
    },
}


def history(*entered, failed=()):
    return {"states": [{"state": s, "status": "FAILED" if s in failed else "SUCCEEDED"} for s in entered]}


def test_states_are_ranked_in_execution_order_with_the_rules_on_their_edges():
    """ETL is drawn above Model Training (a longest path, not the order the Choice lists its branches);
    the branches of a Choice share a rank side by side; unreachable states are left out."""
    nodes, edges = state_graph.layout(TRAINING)
    rank = {node.name: node.rank for node in nodes}
    assert rank["Reuse Previous ETL?"] == 0 and rank["ETL"] == 1 and rank["Model Training"] == 2
    assert rank["Update Model Registry"] == rank["Accuracy Below Threshold"] == 5 and rank["Cleanup"] == 2
    lanes = {node.name: node.lane for node in nodes}
    assert lanes["Update Model Registry"] == -lanes["Accuracy Below Threshold"] != 0
    assert "Unreachable" not in rank and all(node.status == state_graph.NOT_RUN for node in nodes)
    labels = {(e.source, e.target): e.label for e in edges}
    assert labels[("Reuse Previous ETL?", "Model Training")] == "ReuseEtl = true"
    assert labels[("Reuse Previous ETL?", "ETL")] == "otherwise"
    assert labels[("Accuracy Above Threshold", "Update Model Registry")] == "validation:accuracy > 0.9"
    assert labels[("ETL", "Cleanup")] == "on States.ALL" and labels[("ETL", "Model Training")] == ""


@pytest.mark.parametrize(
    "entered, taken, not_run",
    [
        (
            ("Reuse Previous ETL?", "Model Training", "Save Model", "Accuracy Above Threshold",
             "Update Model Registry"),
            {("Reuse Previous ETL?", "Model Training")},
            {"ETL", "Accuracy Below Threshold", "Cleanup"},
        ),
        (
            ("Reuse Previous ETL?", "ETL", "Model Training", "Save Model", "Accuracy Above Threshold",
             "Accuracy Below Threshold"),
            {("Reuse Previous ETL?", "ETL"), ("Accuracy Above Threshold", "Accuracy Below Threshold")},
            {"Update Model Registry", "Cleanup"},
        ),
    ],
)  # fmt: skip
def test_the_path_an_execution_took_is_marked_and_the_rest_is_not_run(entered, taken, not_run):
    nodes, edges = state_graph.layout(TRAINING, history(*entered))
    marked = {(e.source, e.target) for e in edges if e.taken}
    assert taken <= marked
    assert not any(e.taken for e in edges if e.target in not_run)
    assert {n.name for n in nodes if n.status == state_graph.NOT_RUN} == not_run
    # a skipped branch is never taken, though both its ends ran
    if "ETL" not in entered:
        assert ("ETL", "Model Training") not in marked


def test_a_failed_state_and_a_loop_are_drawn():
    looping = {
        "StartAt": "Wait",
        "States": {
            "Wait": {"Type": "Wait", "Seconds": 5, "Next": "Done?"},
            "Done?": {
                "Type": "Choice",
                "Choices": [{"Not": {"Variable": "$.status", "StringEquals": "Completed"}, "Next": "Wait"}],
                "Default": "End",
            },
            "End": {"Type": "Succeed"},
        },
    }
    nodes, edges = state_graph.layout(looping, history("Wait", "Done?", "Wait", "Done?", failed=("Done?",)))
    assert {n.name: n.rank for n in nodes} == {"Wait": 0, "Done?": 1, "End": 2}
    assert {(e.source, e.target): e.label for e in edges}[("Done?", "Wait")] == 'not (status = "Completed")'
    assert {n.name: n.status for n in nodes}["Done?"] == "FAILED"
    assert reports.plot_state_machine(looping, history("Wait")) is not None
    assert reports.plot_state_machine(TRAINING, None) is not None
