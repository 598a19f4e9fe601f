"""Each benchmark runs, on a tiny size (its figures are reported, never asserted)."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT


@pytest.mark.parametrize("script, arguments", [
    ("e2e.py", ["--runs", "1", "--rows", "2000"]),
    ("scaling.py", ["--rows", "2000"]),  # small sizes must still clear the accuracy gate
    ("endpoint.py", ["--concurrency", "2", "--payload-rows", "1", "--seconds", "0.3", "--training-rows", "1000",
                     "--workers", "1"]),
])
def test_benchmark_runs_on_a_tiny_size(script, arguments, tmp_path):
    out = tmp_path / "figures.json"
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *arguments, "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert figures["cpu_count"] >= 1 and result.stdout.strip()
