"""``churn-pipeline monitor``: notebook 04 over scored windows, a verdict as the exit status, and a
retraining run on request."""

from __future__ import annotations

import os
import sys

from . import config, quality, reports
from .backends import open_backend
from .errors import PipelineError
from .pipeline.monitor import describe_window, retraining_data
from .pipeline.monitor_job import run_data, start_pipeline
from .runner import run_monitor, run_notebooks


def monitor_command(args) -> int:
    params = config.load(args.params)
    monitor = dict(config.parse_override(item) for item in args.parameter)
    quality.check_thresholds(monitor)  # refused here, before a kernel starts
    if args.retrain and not args.outcomes:
        raise PipelineError("--retrain adds the window's untreated customers with their outcomes: name --outcomes")
    windows = [_absolute(w) for w in args.window]  # the notebook runs in notebooks/
    store = open_backend(params).store
    for window in windows:
        describe_window(window, store)  # a location that is neither scores nor captures fails here
    monitor.update(
        model=args.model or "",
        windows=windows,
        outcomes=_absolute(args.outcomes) if args.outcomes else "",
        monitor_id=args.monitor_id or "",
    )
    result = run_monitor(params, monitor, progress=not args.quiet)
    print(f"monitor:   monitor-{result.monitor_id}")
    print(f"artifacts: {result.artifacts_dir}")
    if result.failure or result.report is None:
        print(f"error:     {result.failure}", file=sys.stderr)
        return 1
    report = result.report
    print(reports.verdict_lines(report))
    if args.start_pipeline and not args.retrain and report["verdict"] != "ok":  # on the parameters' data
        _start(params, args.start_pipeline, "", windows)
    if args.retrain and report["verdict"] != "ok":
        target = result.artifacts_dir / "retraining.csv"
        assembled = retraining_data(None, params, report["model"], windows[0], monitor["outcomes"], target)
        print(
            f"retraining on {assembled['path']}: {assembled['training_data']} and {assembled['added']:,} "
            "untreated customers"
        )
        if args.start_pipeline:
            _start(params, args.start_pipeline, assembled["path"], windows)
            return quality.EXIT_STATUS[report["verdict"]]
        data = run_data(params, assembled["path"])
        retrained = run_notebooks(dict(params, data=data, run_id=""), progress=not args.quiet)
        print(f"run id:    {retrained.run_id} ({retrained.status})")
        if not retrained.succeeded:
            print(f"error:     {retrained.error}", file=sys.stderr)
            return 1
    return quality.EXIT_STATUS[report["verdict"]]


def _start(params, pipeline: str, training_data: str, windows: list[str]) -> None:
    execution, started = start_pipeline(params, pipeline, training_data, windows)
    if started:
        print(f"pipeline:  {pipeline} started (execution {execution})")
    else:
        print(f"pipeline:  {pipeline} not started again: these windows started execution {execution}")


def _absolute(location: str) -> str:
    return location if location.startswith("s3://") else os.path.abspath(location)


def add_command(commands) -> None:
    monitor = commands.add_parser(
        "monitor",
        help="compare scored windows with the model's baseline; judge it on outcomes; exit 0 ok, 3 drift, 4 degraded",
    )
    monitor.add_argument(
        "--window",
        action="append",
        default=[],
        help="a score file of `score`, or a folder of an endpoint's data capture (repeatable)",
    )
    monitor.add_argument("--outcomes", help="the window's outcomes: <identifier>,churned (yes/no), a header first")
    monitor.add_argument("--model", help="the run id of the model (default: the one that scored the windows)")
    monitor.add_argument("--params", help="parameters file whose backend and registry to use (default: local)")
    monitor.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"a verdict threshold ({', '.join(quality.THRESHOLDS)})",
    )
    monitor.add_argument("--monitor-id", help="names artifacts/monitor-<id>/ (default: a new id)")
    monitor.add_argument(
        "--retrain",
        action="store_true",
        help="on a drift or degraded verdict, start a run on the model's data plus the window's untreated customers",
    )
    monitor.add_argument(
        "--start-pipeline",
        metavar="PIPELINE",
        help="on a drift or degraded verdict, start this CodePipeline instead of a run here: with --retrain on "
        "the new training file (its TrainingData variable), else on the data its parameters name",
    )
    monitor.add_argument("--quiet", action="store_true", help="no progress bar and no progress lines")
    monitor.set_defaults(func=monitor_command)
