"""The control group's figures against known truth: how often the offers' 95 % interval covers the true
effect, how wide it is, and how often the untreated customers' AUC interval covers the model's AUC on a
large fresh sample.

Each seed draws a window of ``--window-rows`` synthetic customers, scores them with a model whose log-odds
err from the simulator's own by normal noise (sd ``--model-noise``), decides at ``--cutoff`` with
``--holdout-fraction`` held out (``decisions.Holdout``), and draws outcomes with offers that prevent
``--effect`` of an offered customer's churn (``synthetic.simulate_decisions``). The true effect is the
mean of p x effect over the eligible customers; the model's AUC is measured on ``--reference-rows``
fresh customers with no offers at all.

    python benchmarks/offers.py [--seeds 200] [--window-rows 100000]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
from common import write_figures


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--window-rows", type=int, default=100_000)
    parser.add_argument("--reference-rows", type=int, default=1_000_000)
    parser.add_argument("--holdout-fraction", type=float, default=0.05)
    parser.add_argument("--effect", type=float, default=0.3)
    parser.add_argument("--cutoff", type=float, default=0.4)
    parser.add_argument("--model-noise", type=float, default=1.0)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from churn_pipeline import decisions, quality, synthetic

    started = time.perf_counter()
    none = decisions.Holdout(0.0, "reference")
    reference = synthetic.simulate_decisions(args.reference_rows, 10**6, 0.0, none, args.cutoff, args.model_noise)
    reference_auc = quality.binned_auc(
        *[
            np.bincount(quality.score_bins(reference["score"][reference["churned"] == label]), minlength=quality.BINS)
            for label in (False, True)
        ]
    )
    figures = {"cpu_count": os.cpu_count(), **{k: v for k, v in vars(args).items() if k != "out"}}
    figures["reference_auc"] = round(reference_auc, 4)
    for effect in (args.effect, 0.0):
        covered, widths, errors, auc_covered, aucs, eligible_held = 0, [], [], 0, [], []
        for seed in range(args.seeds):
            holdout = decisions.Holdout(args.holdout_fraction, f"seed-{seed}")
            window = synthetic.simulate_decisions(
                args.window_rows, seed, effect, holdout, args.cutoff, args.model_noise
            )
            counts = quality.counts_of(window["decision"], window["score"], window["churned"])
            eligible = window["decision"] != decisions.NO_OFFER
            truth = float((window["p"][eligible] * effect).mean())
            found = quality.offer_effect(counts)
            low, high = found["interval"]
            covered += low <= truth <= high
            widths.append(found["half_width"])
            errors.append(found["effect"] - truth)
            eligible_held.append(found["holdout"]["customers"])
            judged = quality.untreated_quality(counts, args.holdout_fraction, args.cutoff)
            auc_covered += judged["auc_interval"][0] <= reference_auc <= judged["auc_interval"][1]
            aucs.append(judged["auc"])
        name = "with_effect" if effect else "without_effect"
        figures[name] = {
            "coverage": covered / args.seeds,
            "half_width_mean": round(float(np.mean(widths)), 4),
            "half_width_max": round(float(np.max(widths)), 4),
            "bias": round(float(np.mean(errors)), 5),
            "holdout_customers_mean": round(float(np.mean(eligible_held)), 1),
            "untreated_auc_mean": round(float(np.mean(aucs)), 4),
            "untreated_auc_interval_coverage": auc_covered / args.seeds,
        }
        f = figures[name]
        print(
            f"effect {effect:g}, {args.seeds} windows of {args.window_rows:,} ({f['holdout_customers_mean']:.0f} "
            f"held out on average): the 95 % interval covers the truth in {f['coverage']:.1%}, half-width "
            f"{f['half_width_mean']:.3f} (max {f['half_width_max']:.3f}), bias {f['bias']:+.4f}; untreated AUC "
            f"{f['untreated_auc_mean']:.4f} vs {reference_auc:.4f} on {args.reference_rows:,} fresh customers, "
            f"its interval covering it in {f['untreated_auc_interval_coverage']:.1%}"
        )
    figures["seconds"] = round(time.perf_counter() - started, 1)
    write_figures("offers", figures, args.out)
    return figures


if __name__ == "__main__":
    main()
