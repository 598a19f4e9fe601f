"""The scoring and endpoint scripts under the SageMaker XGBoost container's Python 3.10 and its pins.

``make container-env`` builds ``.venv-container`` from ``requirements-container.lock`` with Python 3.10
(CI always does; ``CHURN_PIPELINE_REQUIRE_CONTAINER_PYTHON=1`` turns a missing one into a failure).
The scripts run from their source dir unpacked as the container unpacks it, with the package it ships.
"""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from helpers import ROOT

from churn_pipeline import archives, container

CONTAINER_PYTHON = Path(os.environ.get("CHURN_PIPELINE_CONTAINER_PYTHON", ROOT / ".venv-container" / "bin" / "python"))
PINS = {"xgboost": "3.0.5", "numpy": "2.1.0", "pandas": "2.2.3", "flask": "1.1.1", "werkzeug": "0.15.6"}


@pytest.fixture(scope="module")
def container_python():
    if not CONTAINER_PYTHON.exists():
        if os.environ.get("CHURN_PIPELINE_REQUIRE_CONTAINER_PYTHON"):
            pytest.fail(f"{CONTAINER_PYTHON} is missing: run `make container-env` (needs Python 3.10)")
        pytest.skip(f"the container's Python 3.10 is not installed ({CONTAINER_PYTHON}): `make container-env`")
    return CONTAINER_PYTHON


def _answers(python, spec: dict, code_dir: Path) -> dict:
    result = subprocess.run(
        [str(python), str(ROOT / "tests" / "container_check.py")],
        input=json.dumps(spec),
        env={**os.environ, "PYTHONPATH": str(code_dir)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


@pytest.mark.spark
def test_the_scripts_answer_under_the_containers_python_as_here(container_python, small_model, synthetic_csv, tmp_path):
    """SM-SCRIPT-MODE, SM-ENDPOINT-MODEL: every endpoint answer (CSV, JSON, JSON Lines, reasons, refusals)
    and the Batch Transform script's scores are the same bytes under the container's Python 3.10 with
    xgboost 3.0.5, numpy 2.1.0, pandas 2.2.3 and Flask 1.1.1 as under this project's interpreter."""
    from churn_pipeline import training

    archive, manifest_path, etl = small_model
    code_dir, model_dir = tmp_path / "code", tmp_path / "model"
    code_dir.mkdir()
    archive_path = tmp_path / "sourcedir.tar.gz"
    archive_path.write_bytes(archives.source_dir(json.loads(manifest_path.read_text())))
    for source, target in ((archive_path, code_dir), (archive, model_dir)):
        with tarfile.open(source) as unpacked:
            unpacked.extractall(target, filter="data")
    features, _ = training.read_channel(etl / "test")
    raw = "\n".join(synthetic_csv.read_text().splitlines()[:30])
    attributes = container.inference.CUSTOM_ATTRIBUTES_HEADER
    spec = {
        "code_dir": str(code_dir),
        "model_dir": str(model_dir),
        "environment": {
            **container.endpoint_environment(str(manifest_path), cutoff=0.3),
            container.EXPLAIN_VARIABLE: "2",
        },
        "requests": [
            {"headers": {"Content-Type": "text/csv; header=present"}, "body": raw},
            {"headers": {"Content-Type": "text/csv; header=present", "Accept": "application/json"}, "body": raw},
            {"headers": {"Content-Type": "text/csv; header=present", attributes: "explain=3"}, "body": raw},
            {"headers": {"Content-Type": "text/csv", "Accept": "application/jsonlines", attributes: "explain=1"},
             "body": "\n".join(",".join(repr(float(v)) for v in row) for row in features[:20])},
            {"headers": {"Content-Type": "application/json"}, "body": json.dumps(features[:5].tolist())},
            {"headers": {"Content-Type": "text/csv"}, "body": "1,2,3"},
            {"headers": {"Content-Type": "application/json"}, "body": "{not json"},
            {"headers": {"Content-Type": "text/csv", "Accept": "image/png"},
             "body": ",".join(repr(float(v)) for v in features[0])},
            {"headers": {}, "body": ""},
        ],
        # the transform's rows: the control-group flag (every third customer held), then the features
        "rows": "\n".join(
            ",".join([str(int(i % 3 == 0)), *(repr(float(v)) for v in row)]) for i, row in enumerate(features[:200])
        ),
    }  # fmt: skip
    there = _answers(container_python, spec, code_dir)
    here = _answers(sys.executable, spec, code_dir)
    assert there["python"] == [3, 10] and there["versions"] == PINS
    assert [a[0] for a in there["answers"]] == [200, 200, 200, 200, 200, 400, 415, 406, 415]
    assert there["answers"] == here["answers"]
    assert there["scored"] == here["scored"] and len(there["scored"].splitlines()) == len(features[:200])
    assert "holdout" in there["scored"]
