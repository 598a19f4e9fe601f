import dataclasses

import matplotlib
import pytest

matplotlib.use("Agg")

from churn_pipeline import (
    profiling,
    reports,  # noqa: E402
)

HISTORY = {
    "states": [
        {"state": "ETL", "type": "Task", "status": "SUCCEEDED", "seconds": 7.25},
        {"state": "Gate", "type": "Choice", "status": "FAILED", "seconds": None},
    ]
}
EVALUATION = {
    "training": {"validation:accuracy": 0.95, "validation:auc": 0.97},
    "test": {
        "accuracy": 0.94,
        "auc": 0.96,
        "precision": 0.9,
        "recall": 0.7,
        "f1": 0.79,
        "confusion_matrix": {"true_negative": 80, "false_positive": 2, "false_negative": 5, "true_positive": 13},
    },
    "roc": {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]},
    "feature_importance": [{"feature": "Day Mins", "gain": 40.0}, {"feature": "Intl Calls", "gain": 9.0}],
}


def test_state_table_shows_each_state_with_its_duration():
    table = reports.state_table(HISTORY)
    assert table.to_dict("records") == [
        {"state": "ETL", "type": "Task", "status": "SUCCEEDED", "duration": "7.2 s"},
        {"state": "Gate", "type": "Choice", "status": "FAILED", "duration": ""},
    ]


def test_metrics_table_puts_validation_beside_test():
    table = reports.metrics_table(EVALUATION)
    assert table.loc["accuracy"].tolist() == [0.95, 0.94]
    assert table.loc["recall", "test"] == 0.7
    assert table.loc["recall", "validation"] == "not computed" and "NaN" not in table.to_html()


def test_plots_draw_what_they_say():
    assert [t.get_text() for t in reports.plot_confusion_matrix(EVALUATION).texts] == ["80", "2", "5", "13"]
    assert reports.plot_roc(EVALUATION).get_legend().get_texts()[0].get_text() == "AUC 0.960"
    assert [t.get_text() for t in reports.plot_feature_importance(EVALUATION).get_yticklabels()] == [
        "Intl Calls",
        "Day Mins",
    ]
    definition = {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Succeed"}}}
    graph = reports.plot_state_machine(definition, {"states": [{"state": "A", "status": "SUCCEEDED"}]})
    assert [t.get_text() for t in graph.texts if t.get_text()] == ["A\nPass · succeeded", "B\nSucceed · not run"]


def test_data_profile(synthetic_csv):

    profile = reports.data_profile(profiling.profile_file(str(synthetic_csv)).sample)
    assert profile.loc["Churn?", "type"] == "categorical"
    assert profile.loc["Day Mins", "type"] == "numeric" and 150 < profile.loc["Day Mins", "mean"] < 210
    assert "NaN" not in profile.to_html() and profile.loc["State", "mean"] == ""


def test_nbval_sanitiser_makes_the_state_table_independent_of_durations():
    """A state taking 10 s or more widens its cell; the committed output must still match."""
    import re

    from helpers import ROOT
    from nbval.plugin import get_sanitize_patterns

    patterns = get_sanitize_patterns((ROOT / "tests" / "nbval-sanitize.cfg").read_text())

    def sanitised(seconds):
        history = {
            "states": [
                {"state": "ETL", "type": "Task", "status": "SUCCEEDED", "seconds": seconds},
                {"state": "Model Training", "type": "Task", "status": "SUCCEEDED", "seconds": 0.2},
            ]
        }
        table = reports.state_table(history)
        text = repr(table) + table.to_html()
        for regex, replace in patterns:
            text = re.sub(regex, replace, text)
        return text

    assert sanitised(8.0) == sanitised(10.4) == sanitised(123.0) == sanitised(4321.9)


def test_registry_compare_shows_runs_side_by_side_and_marks_what_changed(tmp_path, capsys):
    """`registry compare`: one column per run in the order named, metrics and hyper-parameters as rows,
    * on the rows that differ, a figure one run lacks shown empty (never NaN); an unknown run is named."""
    from helpers import DECISION, make_record

    from churn_pipeline import cli
    from churn_pipeline.registry import open_registry

    url = f"sqlite:///{tmp_path / 'registry.db'}"
    registry = open_registry(url)
    registry.register(make_record("base", hyperparameters={"max_depth": "5", "eta": "0.2"}))
    tuned = make_record("tuned", metrics={"validation:accuracy": 0.96, "validation:auc": 0.93})
    registry.register(dataclasses.replace(tuned, hyperparameters={"max_depth": "7", "eta": "0.2"}))
    registry.record_decision("tuned", DECISION)
    assert cli.main(["registry", "--registry", url, "compare", "tuned", "base"]) == 0
    shown = capsys.readouterr().out
    lines = {line.split()[0]: line for line in shown.splitlines()[1:]}
    header = shown.splitlines()[0].split()
    assert header == ["tuned", "base", "differs"]
    assert lines["validation:accuracy"].split() == ["validation:accuracy", "0.96", "0.95", "*"]
    assert lines["validation:auc"].split() == ["validation:auc", "0.93", "*"]  # base has none: empty
    assert lines["hyper-parameter"] and "NaN" not in shown
    table = reports.registry_comparison([registry.get("tuned"), registry.get("base")])
    assert (
        table.loc["hyper-parameter max_depth", "differs"] == "*" and table.loc["hyper-parameter eta", "differs"] == ""
    )
    assert table.loc["cutoff", "tuned"] == DECISION["cutoff"] and table.loc["cutoff", "base"] == reports.NOT_COMPUTED
    assert cli.main(["registry", "--registry", url, "compare", "tuned", "nope"]) == 2
    assert "nope" in capsys.readouterr().err


def test_audit_pages_render_beside_the_run_and_report_a_failed_page(tmp_path):
    """Pages rendered in the background all exist once the block is left; a page that cannot be
    rendered fails the block, not silently."""
    import nbformat

    from churn_pipeline.notebooks import Background

    notebook = tmp_path / "01-etl-setup.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# staged")]), notebook)
    with Background(tmp_path) as pages:
        pages.render(notebook)
    assert "staged" in notebook.with_suffix(".html").read_text()
    with pytest.raises(FileNotFoundError):
        with Background(tmp_path) as pages:
            pages.render(tmp_path / "missing.ipynb")


def test_a_kernel_started_ahead_has_the_package_imported_and_never_outlives_the_run(tmp_path):
    """The next notebook's kernel starts while a notebook runs, with the package the notebooks import
    already imported; one that no notebook took is shut down with the run."""
    import nbformat
    from jupyter_core.utils import run_sync
    from nbclient import NotebookClient

    from churn_pipeline.notebooks import Background, stop_kernel

    cell = nbformat.v4.new_code_cell("import sys\nprint('churn_pipeline.workflow' in sys.modules)")
    notebook = nbformat.v4.new_notebook(cells=[cell])
    with Background(tmp_path) as background:
        background.start_kernel_now()
        kernel = background.take_kernel()
        try:
            NotebookClient(notebook, km=kernel).execute()
        finally:
            stop_kernel(kernel)
        assert cell.outputs[0]["text"] == "True\n" and cell.execution_count == 1
        run_sync(background.start_kernel)()
        unused = background._kernel
        assert run_sync(unused.is_alive)()
    assert not run_sync(kernel.is_alive)() and not run_sync(unused.is_alive)()


def test_a_kernel_started_ahead_that_died_fails_its_notebook_not_the_run(tmp_path):
    """A kernel that died before its notebook started fails that notebook; stopping it after is no error."""
    import os
    import signal

    import nbformat
    from nbclient import NotebookClient

    from churn_pipeline.notebooks import Background, stop_kernel

    with Background(tmp_path) as background:
        background.start_kernel_now()
        kernel = background.take_kernel()
        os.kill(kernel.provisioner.process.pid, signal.SIGKILL)
        kernel.provisioner.process.wait()
        with pytest.raises(RuntimeError, match="died"):
            NotebookClient(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1")]), km=kernel).execute()
        stop_kernel(kernel)


def test_a_kernel_that_cannot_start_ahead_is_left_to_its_notebook(tmp_path, monkeypatch):
    from jupyter_client.manager import AsyncKernelManager

    from churn_pipeline.notebooks import Background

    async def cannot_start(self, **kwargs):
        raise RuntimeError("no kernel here")

    monkeypatch.setattr(AsyncKernelManager, "start_kernel", cannot_start)
    with Background(tmp_path) as background:
        background.start_kernel_now()
        assert background.take_kernel() is None
