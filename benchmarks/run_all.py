"""`make bench`: every benchmark at its full size; tables on stdout, figures in benchmarks/out/*.json.

python benchmarks/run_all.py
"""

import platform
import sys

import baseline
import drift
import e2e
import endpoint
import monitor
import offers
import scaling
import score
import transform
import tuning
from common import write_figures


def main() -> None:
    figures = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        }
    }
    for name, module, argv in (
        ("e2e", e2e, ["--runs", "3"]),
        ("scaling", scaling, []),
        ("endpoint", endpoint, []),
        ("score", score, []),
        ("transform", transform, []),
        ("drift", drift, []),
        ("baseline", baseline, []),
        ("offers", offers, []),
        ("monitor", monitor, []),
        ("tuning", tuning, []),
    ):
        print(f"\n== {name} ==", flush=True)
        figures[name] = module.main(argv)
    path = write_figures("figures", figures)
    print(f"\nall figures -> {path}")


if __name__ == "__main__":
    sys.exit(main())
