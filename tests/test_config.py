import json
import re

import pytest
from helpers import ROOT

from churn_pipeline import config
from churn_pipeline.errors import ConfigError
from churn_pipeline.notebooks import MONITOR_NOTEBOOK
from churn_pipeline.pipeline.monitor import MONITOR_PARAMETERS


def test_defaults_are_valid_and_complete():
    assert config.validate({}) == config.DEFAULTS


def test_parameters_file_overrides_defaults_then_overrides_win(tmp_path):
    params_file = tmp_path / "p.yaml"
    params_file.write_text("num_round: 10\naccuracy_threshold: 0.8\n")
    merged = config.load(params_file, {"accuracy_threshold": 0.95})
    assert merged["num_round"] == 10
    assert merged["accuracy_threshold"] == 0.95
    assert merged["max_depth"] == config.DEFAULTS["max_depth"]


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_rounds": 3}, "unknown parameter 'num_rounds'"),
        ({"max_depth": "5"}, "'max_depth' must be int"),
        ({"max_depth": True}, "'max_depth' must be int"),
        ({"accuracy_threshold": 1.5}, "'accuracy_threshold' must be <= 1.0"),
        ({"backend": "gcp"}, "'backend' must be one of"),
        ({"bad-name": 1}, "is not a Python identifier"),
        ({"class": 1}, "is not a Python identifier"),
        ({"train_fraction": 0.8, "validation_fraction": 0.19}, "leave at least 1 %"),
    ],
)
def test_bad_parameters_are_refused_naming_the_key(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.validate(values)


def test_integer_is_accepted_where_a_float_is_expected():
    assert config.validate({"gamma": 4})["gamma"] == 4.0


def test_override_values_are_typed_from_yaml():
    assert config.parse_override("accuracy_threshold=0.99") == ("accuracy_threshold", 0.99)
    assert config.parse_override("num_round=7") == ("num_round", 7)
    assert config.parse_override("run_id=2024") == ("run_id", "2024")
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        config.parse_override("accuracy_threshold")


def test_parameters_files_in_the_project_are_valid(monkeypatch):
    for name in config.ROLE_VARIABLES:
        monkeypatch.setenv(name, f"arn:aws:iam::123456789012:role/{name}")
    backends = {path.name: config.load(path)["backend"] for path in sorted((ROOT / "parameters").glob("*.yaml"))}
    assert backends == {"dev.yaml": "aws", "local.yaml": "local", "prod.yaml": "aws"}


def test_bad_yaml_file_names_the_file(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="broken.yaml"):
        config.load(broken)


def test_notebook_parameters_cells_match_the_package_defaults():
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, notebook.name
        namespace: dict = {}
        exec("".join(tagged[0]["source"]), namespace)
        namespace.pop("__builtins__")
        if notebook.name == MONITOR_NOTEBOOK:  # the monitor's own parameters besides the pipeline's
            assert {k: namespace.pop(k) for k in MONITOR_PARAMETERS} == MONITOR_PARAMETERS
        assert namespace == config.DEFAULTS, notebook.name
