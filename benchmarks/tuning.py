"""Hyper-parameter tuning: does the search find a better model, what does the local tuning job cost
beyond its training jobs, and does a search on a large file stay in bounded memory.

1. Quality (``--data``, default the public churn data beside the project when present, else 5,000
   synthetic customers): the ETL's split once; a local tuning job (``--jobs`` with the default ranges,
   Bayesian, two at a time) against one training job with the parameters' defaults; validation and
   test AUC of both; then 5-fold cross-validated AUC of both hyper-parameter sets on the same stratified
   folds of every row (the test split's AUC on a few hundred rows moves by about 0.02).
2. Overhead: the same tuning job on the default 5,000 synthetic customers, against the very same
   hyper-parameter sets run as plain training jobs, two at a time, in the same run.
3. Memory (``--large-rows``, 0 to skip): a tuning job of ``--large-jobs`` on that many synthetic
   customers in a process of its own; its largest process against one training job's.

    python benchmarks/tuning.py [--data PATH] [--jobs 30] [--large-rows 1000000] [--large-jobs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_spark, measure_process, synthetic_file, write_figures

CHURN_TXT = ROOT.parent / "shared" / "data" / "churn.txt"
#: the ETL's split in a process of its own (its Spark JVM gone before the search is measured)
_ETL_COMMAND = (
    "import sys; sys.path.insert(0, 'benchmarks'); from churn_pipeline.etl import job; from common import bench_spark; "
    "job.run_etl(bench_spark('local[*]'), sys.argv[1], sys.argv[2] + '/etl')"
)
FOLDS = 5


def _backend(home: Path, data: str | None):
    """A local backend whose store holds the ETL's split of ``data`` (Spark, as the pipeline runs it;
    None: the split already under ``home``)."""
    from churn_pipeline.backends.local import LocalBackend

    if data is not None:
        from churn_pipeline.etl import job as etl_job

        spark = bench_spark("local[*]")
        etl_job.run_etl(spark, data, str(home / "etl"))
        spark.stop()
    backend = LocalBackend(None, home / "home")
    for channel in ("train", "validation", "test"):
        for part in sorted((home / "etl" / channel).glob("part-*.csv")):
            backend.store.stage(f"s3://bench/etl/{channel}/{part.name}", str(part))
    return backend


def _definition(static: dict) -> dict:
    channels = [
        {"ChannelName": c, "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"s3://bench/etl/{c}/"}}}
        for c in ("train", "validation")
    ]
    return {
        "AlgorithmSpecification": {"TrainingImage": "xgboost", "TrainingInputMode": "File"},
        "RoleArn": "arn:aws:iam::000000000000:role/bench",
        "InputDataConfig": channels,
        "OutputDataConfig": {"S3OutputPath": "s3://bench/models"},
        "StaticHyperParameters": static,
    }


def _search(
    backend, name: str, jobs: int, parallel: int, ranges: dict | None = None, seed: int | None = None
) -> tuple[dict, float]:
    """A local tuning job with the default search (or ``ranges``; ``seed``: the search's, else the
    parameters' default); its description and wall time."""
    from churn_pipeline import config, training, tuning

    overrides = {"tuning_max_jobs": jobs, "tuning_max_parallel_jobs": parallel, "tuning_ranges": ranges or {}}
    params = config.load(overrides={**overrides, **({"tuning_seed": seed} if seed is not None else {})})
    search = tuning.tuning_config(params)
    static = {k: v for k, v in training.hyperparameters_from(params).items() if k not in tuning.tuned_names(search)}
    sagemaker = backend.client("sagemaker")
    started = time.perf_counter()
    sagemaker.create_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name,
        HyperParameterTuningJobConfig=search,
        TrainingJobDefinition=_definition(static),
    )
    seconds = time.perf_counter() - started
    return sagemaker.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name), seconds


def _train(backend, name: str, hyperparameters: dict) -> dict:
    from churn_pipeline import tuning

    sagemaker = backend.client("sagemaker")
    sagemaker.create_training_job(**tuning.training_job_request(_definition({}), name, hyperparameters))
    job = sagemaker.describe_training_job(TrainingJobName=name)
    if job["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"training job {name} failed: {job.get('FailureReason')}")
    return job


def _auc(labels, scores) -> float:
    """The area under the ROC curve (the rank-sum form; ties count one half)."""
    import numpy as np
    from scipy.stats import rankdata

    labels = np.asarray(labels) == 1
    ranks = rankdata(scores)
    positives, negatives = labels.sum(), (~labels).sum()
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _rows(folder: Path):
    import numpy as np

    from churn_pipeline import training

    parts = [training.read_channel(folder / c) for c in ("train", "validation", "test")]
    return np.vstack([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), parts[2]


def _test_auc(backend, job: dict, test) -> float:
    from churn_pipeline import training

    booster = training.load_model_archive(backend.mirror.localize(job["ModelArtifacts"]["S3ModelArtifacts"]))
    return _auc(test[1], booster.inplace_predict(test[0]))


def _cross_validated(features, labels, hyperparameters: dict, seed: int = 0) -> list[float]:
    """AUC on each of ``FOLDS`` stratified folds (the same folds for every hyper-parameter set)."""
    import numpy as np
    import xgboost as xgb

    from churn_pipeline import training

    random = np.random.default_rng(seed)
    fold = np.empty(len(labels), dtype=int)
    for label in (0, 1):
        members = np.flatnonzero(labels == label)
        fold[random.permutation(members)] = np.arange(len(members)) % FOLDS
    booster_params = training._booster_params({k: v for k, v in hyperparameters.items() if not k.startswith("_")})
    rounds = int(float(hyperparameters.get("num_round", 100)))
    found = []
    for k in range(FOLDS):
        train = xgb.DMatrix(features[fold != k], label=labels[fold != k])
        booster = xgb.train({**booster_params, "eval_metric": []}, train, rounds)
        found.append(_auc(labels[fold == k], booster.inplace_predict(features[fold == k])))
    return found


def quality(data: str, jobs: int, parallel: int, seeds: list[int]) -> dict:
    """The untuned model against the winner of one search per seed in ``seeds`` (the first seed's is
    ``tuned``, the others ``tuned seed N``), on the same split and folds."""
    from churn_pipeline import config, training

    with tempfile.TemporaryDirectory(prefix="churn-tuning-") as scratch:
        scratch = Path(scratch)
        backend = _backend(scratch, data)
        jobs_by_name = {"untuned": _train(backend, "bench-untuned", training.hyperparameters_from(config.DEFAULTS))}
        for number, seed in enumerate(seeds):
            described, seconds = _search(backend, f"bench-quality-{seed}", jobs, parallel, seed=seed)
            best = backend.client("sagemaker").describe_training_job(
                TrainingJobName=described["BestTrainingJob"]["TrainingJobName"]
            )
            jobs_by_name["tuned" if number == 0 else f"tuned seed {seed}"] = best
            if number == 0:
                first_seconds, counters = seconds, described["TrainingJobStatusCounters"]
        features, labels, test = _rows(scratch / "etl")
        figures = {}
        for name, job in jobs_by_name.items():
            metrics = training.metrics_by_name(job["FinalMetricDataList"])
            folds = _cross_validated(features, labels, job["HyperParameters"])
            figures[name] = {
                "validation_auc": round(metrics["validation:auc"], 4),
                "test_auc": round(_test_auc(backend, job, test), 4),
                "cv_auc_mean": round(statistics.mean(folds), 4),
                "cv_auc_sd": round(statistics.stdev(folds), 4),
                "cv_folds": [round(f, 4) for f in folds],
                "hyperparameters": {k: v for k, v in job["HyperParameters"].items() if not k.startswith("_")},
            }
    return {
        "data": "churn.txt" if Path(data) == CHURN_TXT else data,
        "rows": int(len(labels)),
        "jobs": jobs,
        "parallel": parallel,
        "seeds": seeds,
        "search_seconds": round(first_seconds, 1),
        "counters": counters,
        **figures,
    }


def overhead(jobs: int, parallel: int) -> dict:
    """The tuning job's wall time against its own hyper-parameter sets run as plain training jobs, one
    after another, each on every core."""
    with tempfile.TemporaryDirectory(prefix="churn-tuning-") as scratch:
        backend = _backend(Path(scratch), str(synthetic_file(5000)))
        described, tuned_seconds = _search(backend, "bench-overhead", jobs, parallel)
        sagemaker = backend.client("sagemaker")
        listed = sagemaker.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName="bench-overhead", MaxResults=100
        )["TrainingJobSummaries"]
        sets = [
            sagemaker.describe_training_job(TrainingJobName=s["TrainingJobName"])["HyperParameters"] for s in listed
        ]
        started = time.perf_counter()
        for number, hyperparameters in enumerate(sets):
            _train(backend, f"plain-{number:03d}", hyperparameters)
        plain_seconds = time.perf_counter() - started
    return {
        "jobs": jobs,
        "parallel": parallel,
        "tuning_job_seconds": round(tuned_seconds, 1),
        "plain_jobs_seconds": round(plain_seconds, 1),
        "overhead_seconds": round(tuned_seconds - plain_seconds, 1),
        "ratio": round(tuned_seconds / plain_seconds, 3),
    }


def large(rows: int, jobs: int, parallel: int, home: str) -> None:
    """(In a process of its own) a tuning job on the ETL's split of ``rows`` synthetic customers, made
    beforehand under ``home``."""
    backend = _backend(Path(home), None)
    described, _ = _search(
        backend, "bench-large", jobs, parallel, {"max_depth": {"min": 3, "max": 8}, "eta": {"min": 0.05, "max": 0.5}}
    )
    print(json.dumps(described["TrainingJobStatusCounters"]))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(CHURN_TXT) if CHURN_TXT.exists() else None)
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    parser.add_argument("--large-jobs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42], help="one search per seed (tuning_seed)")
    parser.add_argument("--skip", nargs="*", default=[], choices=("quality", "overhead"))
    parser.add_argument("--out")
    parser.add_argument("--large", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.large:
        return large(int(args.large[0]), int(args.large[1]), int(args.large[2]), args.large[3])
    figures: dict = {"cpu_count": os.cpu_count()}
    if "quality" not in args.skip:
        figures["quality"] = quality(args.data or str(synthetic_file(5000)), args.jobs, args.parallel, args.seeds)
        q = figures["quality"]
        for name in [k for k in q if k == "untuned" or k.startswith("tuned")]:
            f = q[name]
            print(
                f"{name:14s} validation AUC {f['validation_auc']:.4f}  test AUC {f['test_auc']:.4f}  "
                f"{FOLDS}-fold AUC {f['cv_auc_mean']:.4f} +- {f['cv_auc_sd']:.4f}"
            )
        print(f"search: {q['jobs']} jobs, {q['parallel']} at once, {q['search_seconds']} s on {q['rows']:,} rows")
    if "overhead" not in args.skip:
        figures["overhead"] = o = overhead(args.jobs, args.parallel)
        print(
            f"{o['jobs']} jobs on 5,000 rows: tuning job {o['tuning_job_seconds']} s, the same sets as plain "
            f"training jobs {o['plain_jobs_seconds']} s: ratio {o['ratio']} (overhead {o['overhead_seconds']} s)"
        )
    if args.large_rows:
        with tempfile.TemporaryDirectory(prefix="churn-tuning-large-") as home:
            etl = [sys.executable, "-c", _ETL_COMMAND, str(synthetic_file(args.large_rows, seed=43)), home]
            figures["large_etl"] = measure_process(etl, "large ETL")
            me = [sys.executable, str(Path(__file__).resolve())]
            command = [*me, "--large", str(args.large_rows), str(args.large_jobs), str(args.parallel), home]
            figures["large"] = {"rows": args.large_rows, "jobs": args.large_jobs, **measure_process(command, "large")}
        g = figures["large"]
        print(
            f"{g['rows']:,} rows, {g['jobs']} jobs: {g['wall_seconds']} s, largest process "
            f"{g['largest_process_mib']:,} MiB ({g['largest_process']}), peak of the tree {g['peak_rss_mib']:,} MiB "
            f"(the ETL before it, a process of its own: {figures['large_etl']['wall_seconds']} s)"
        )
    write_figures("tuning", figures, args.out)
    return figures


if __name__ == "__main__":
    main()
