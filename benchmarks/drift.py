"""Drift detection: how often windows drawn from the training distribution are called drifted, and how
often each named shift is caught, with the baseline and windows the monitor would compare.

A baseline of ``--baseline-rows`` synthetic customers (seed 1), windows of ``--window-rows`` with other
seeds; a numeric column drifts when its PSI over the baseline's deciles exceeds
``monitoring.PSI_THRESHOLD``, a categorical one when the chi-squared test of homogeneity rejects at
``monitoring.DRIFT_P_VALUE`` divided by the number of categorical columns (Bonferroni). A window is
"drifted" when any column is.

    python benchmarks/drift.py [--windows 200] [--window-rows 5000]
"""

from __future__ import annotations

import argparse
import os
import time

from common import write_figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rows", type=int, default=20_000)
    parser.add_argument("--window-rows", type=int, default=5_000)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from churn_pipeline import data, monitoring, synthetic

    started = time.perf_counter()
    baseline = monitoring.statistics_of(
        synthetic.generate_synthetic(args.baseline_rows, 1), data.MODEL_NUMERIC, data.CATEGORICAL
    )

    def flagged(seed: int, shifts=()) -> list[str]:
        window = synthetic.generate_synthetic(args.window_rows, seed, shifts)
        report = monitoring.feature_drift(baseline, monitoring.window_counts(baseline, window))
        return [name for name, found in report.items() if found["drifted"]]

    undrifted = [flagged(1000 + i) for i in range(args.windows)]
    false_rate = sum(1 for columns in undrifted if columns) / args.windows
    columns = sorted({name for found in undrifted for name in found})
    figures = {
        "cpu_count": os.cpu_count(),
        "baseline_rows": args.baseline_rows,
        "window_rows": args.window_rows,
        "windows": args.windows,
        "columns_checked": len(data.MODEL_NUMERIC) + len(data.CATEGORICAL),
        "false_drift_rate": false_rate,
        "false_alarms_by_column": {name: sum(name in found for found in undrifted) for name in columns},
        "shifts": {},
    }
    print(
        f"{args.windows} windows of {args.window_rows:,} from the training distribution "
        f"({figures['columns_checked']} columns each): {false_rate:.1%} called drifted"
    )
    # the columns each shift touches: a day charge is its minutes times the tariff
    touched = {"day-mins-up": ("Day Mins", "Day Charge"), "more-intl-plans": ("Int'l Plan",), "new-state": ("State",)}
    for shift, columns_touched in touched.items():
        found = [flagged(5000 + i, (shift,)) for i in range(args.windows)]
        caught = sum(set(columns_touched) <= set(columns) for columns in found) / args.windows
        other = sum(bool(set(columns) - set(columns_touched)) for columns in found) / args.windows
        figures["shifts"][shift] = {"columns": list(columns_touched), "caught": caught, "other_columns_flagged": other}
        named = " and ".join(columns_touched)
        print(f"{shift}: {named} flagged in {caught:.1%} of windows; another column in {other:.1%}")
    figures["seconds"] = round(time.perf_counter() - started, 1)
    write_figures("drift", figures, args.out)
    return figures


if __name__ == "__main__":
    main()
