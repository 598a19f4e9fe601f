import json

import pytest
from helpers import make_record, template

from churn_pipeline import config, export
from churn_pipeline.errors import PipelineError
from churn_pipeline.pipeline.run import Run


def template_parameters(name):
    return template(name)["Parameters"]


def test_exported_parameters_fit_the_deploy_template():
    exported = export.deploy_parameters(make_record(), config.DEFAULTS)
    assert list(exported) == ["Parameters"]
    assert set(exported["Parameters"]) == set(export.PARAMETER_NAMES)
    template = template_parameters("deploy-model.yml")
    required = {name for name, spec in template.items() if "Default" not in spec}
    assert required <= set(exported["Parameters"]) <= set(template)
    assert all(isinstance(v, str) for v in exported["Parameters"].values())


def test_only_an_approved_model_is_exported():
    with pytest.raises(PipelineError, match="only an approved model"):
        export.deploy_parameters(make_record(status="rejected"), config.DEFAULTS)


def test_an_existing_different_file_is_not_overwritten(tmp_path):
    run = Run(config.DEFAULTS, "run-1", backend=None, artifacts_dir=tmp_path)
    path = export.write_parameters(run, make_record())
    first = path.read_text()
    assert export.write_parameters(run, make_record()).read_text() == first  # same content: fine
    with pytest.raises(PipelineError, match="not overwritten"):
        export.write_parameters(run, make_record(model_name="other"))
    assert path.read_text() == first
    assert json.loads(first)["Parameters"]["ModelName"] == "churn-test-run-1"
