"""The scaling benchmark runs on a tiny size (its own file, so `pytest -n` runs it beside the others)."""

from helpers import run_benchmark


def test_scaling_benchmark_runs_on_a_tiny_size(tmp_path):
    figures = run_benchmark("scaling.py", ["--rows", "2000"], tmp_path)  # small sizes must clear the gate
    assert [size["rows"] for size in figures["sizes"]] == [2000]
