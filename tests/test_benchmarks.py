"""Each benchmark runs, on a tiny size (its figures are reported, never asserted)."""

import pytest
from helpers import run_benchmark


@pytest.mark.parametrize(
    "script, arguments",
    [
        ("e2e.py", ["--runs", "1", "--rows", "2000", "--only", "worker"]),
        (
            "endpoint.py",
            [
                "--concurrency",
                "2",
                "--payload-rows",
                "1",
                "--seconds",
                "0.3",
                "--training-rows",
                "1000",
                "--workers",
                "1",
                "--explain",
                "0",
                "3",
            ],
        ),
        ("score.py", ["--rows", "3000", "--training-rows", "1000", "--explain", "2"]),
        ("transform.py", ["--training-rows", "1000", "--batch-rows", "200", "--large-rounds", "20"]),
        ("drift.py", ["--baseline-rows", "2000", "--window-rows", "500", "--windows", "3"]),
        ("baseline.py", ["--rows", "2000"]),
        ("offers.py", ["--seeds", "2", "--window-rows", "5000", "--reference-rows", "20000"]),
        ("monitor.py", ["--rows", "3000", "--training-rows", "1000", "--rounds", "1"]),
        ("tuning.py", ["--jobs", "2", "--large-rows", "3000", "--large-jobs", "2"]),
    ],
)
def test_benchmark_runs_on_a_tiny_size(script, arguments, tmp_path):
    figures = run_benchmark(script, arguments, tmp_path)
    if script == "e2e.py":
        runs = figures["rounds"][0]["with worker"]
        assert runs["second"]["etl_reused"] and not runs["first"]["etl_reused"] and not runs["edited"]["etl_reused"]
