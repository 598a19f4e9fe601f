"""The regression check of the committed notebooks, on a machine whose cores are all busy.

nbval re-executes the three notebooks in a fresh home and compares every output
with the committed one (after ``nbval-sanitize.cfg``). Running it while every
core spins keeps each state slower than when the outputs were committed, so an
output that depends on timing (a duration, a column width, an order) fails here
rather than on a busy CI machine.
"""

import os
import subprocess
import sys

from helpers import ROOT

NBVAL = [
    "-m",
    "pytest",
    "notebooks",
    "--nbval",
    "--nbval-sanitize-with",
    "tests/nbval-sanitize.cfg",
    "--nbval-cell-timeout",
    "600",
    "-p",
    "no:cacheprovider",
    "-q",
]


def test_committed_notebooks_pass_nbval_with_every_core_busy(tmp_path):
    environment = {
        **os.environ,
        "CHURN_PIPELINE_HOME": str(tmp_path / "home"),
        "CHURN_PIPELINE_ARTIFACTS": str(tmp_path / "artifacts"),
        "CHURN_PIPELINE_PROJECT": str(ROOT),
    }
    environment.pop("CHURN_PIPELINE_CACHE", None)  # as on a new machine: nothing built yet
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 2)]
    try:
        result = subprocess.run(
            [sys.executable, *NBVAL], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=1500
        )
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
