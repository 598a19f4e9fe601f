"""``churn-pipeline score``: every customer of a file scored, with a control group, as a window the
monitor reads."""

from __future__ import annotations

import argparse
import json
import os
from datetime import date, datetime, timezone
from pathlib import Path

from . import config, decisions, reports, scoring, serving
from .backends import open_backend
from .errors import PipelineError
from .etl.spark_worker import local_session
from .names import registry_table
from .pipeline.scoring import HISTORY, STATE_MACHINE, batch_transform
from .registry import open_registry


def _draw_state_machine(folder: Path) -> Path:
    """The scoring state machine as its execution went, beside its definition and history."""
    import matplotlib

    matplotlib.use("Agg")  # a file, never a window
    definition = json.loads((folder / STATE_MACHINE).read_text())
    history = json.loads((folder / HISTORY).read_text())
    axes = reports.plot_state_machine(definition, history)
    target = folder / "state-machine.png"
    axes.figure.savefig(target, dpi=100, bbox_inches="tight")
    return target


def score_command(args) -> int:
    params = config.load(args.params)
    holdout = decisions.Holdout(
        params["holdout_fraction"] if args.holdout_fraction is None else args.holdout_fraction, args.date
    )
    if args.batch_transform or params["backend"] == "aws":
        result = batch_transform(
            params,
            args.model,
            args.data,
            args.out,
            args.explain,
            args.cutoff,
            args.overwrite,
            progress=lambda line: print(line, flush=True),
            holdout=holdout,
        )
        if result["status"] == "RUNNING":
            print(
                f"scoring started: {result['execution_arn']} (wait_for_execution is false); scores will be "
                f"under {result['output_uri']}"
            )
            return 0
        print(
            f"scores under {result['output_uri']} (one <part>.csv.out per part, no header): "
            f"{','.join(result['columns'])}; decisions above cutoff {result['cutoff']:g} ({result['cutoff_origin']})"
        )
        print(f"state machine: {_draw_state_machine(Path(result['artifacts']))}")
        return 0
    backend, registry = backend_and_registry(args)
    model = serving.resolve_model(args.model, backend, registry, args.manifest, args.cutoff)
    data_location = str(backend.store.local_path(args.data)) if args.data.startswith("s3://") else args.data
    if not os.path.isfile(data_location):
        raise PipelineError(f"--data {args.data}: no such file")
    manifest = json.loads(model.manifest.read_text())
    spark = local_session(args.spark_master)
    described = {"model": args.model, "cutoff_origin": model.cutoff_origin}
    scored = scoring.score_file(
        spark,
        model.model,
        manifest,
        model.cutoff,
        data_location,
        args.out,
        args.explain,
        args.overwrite,
        holdout,
        described,
    )
    print(
        f"scored {scored.rows:,} customers into {scored.path}: {scored.offers + scored.holdouts:,} above cutoff "
        f"{scored.cutoff:g} ({model.cutoff_origin}), {scored.holdouts:,} of them held out of the offers "
        f"(control group of {holdout.fraction:.0%} for {holdout.date}); described in {scored.description.name}"
    )
    return 0


def _scoring_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date as YYYY-MM-DD") from None


def add_command(commands) -> None:
    score = commands.add_parser("score", help="score every customer of a file, in input order, with reasons")
    score.add_argument("--model", required=True, help="run id, s3:// URI of a model.tar.gz, or a local file")
    score.add_argument("--manifest", help="feature manifest (default: the one beside the model)")
    score.add_argument(
        "--data",
        required=True,
        help="customers: raw records (with or without the label) or "
        "pre-encoded rows; a path, or an s3:// URI of the backend's bucket",
    )
    score.add_argument("--out", required=True, help="the CSV to write")
    score.add_argument("--explain", type=int, default=0, metavar="K", help="add the K largest reasons per customer")
    score.add_argument(
        "--cutoff", type=float, help="decide above this probability (default: the run's cost-chosen cutoff)"
    )
    score.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    score.add_argument(
        "--holdout-fraction",
        type=float,
        help="share of the customers above the cutoff held out of the offers (default: holdout_fraction)",
    )
    score.add_argument(
        "--date",
        type=_scoring_date,
        default=datetime.now(timezone.utc).date().isoformat(),
        help="the scoring date (YYYY-MM-DD, default today, UTC): with the customer, it draws the control group",
    )
    score.add_argument("--params", help="parameters file whose backend and registry to use (default: local)")
    score.add_argument("--spark-master", default="local[*]")
    score.add_argument(
        "--batch-transform",
        action="store_true",
        help="score as on AWS, with the ETL job and a Batch Transform (the aws backend always does; "
        "--out is then an s3:// prefix)",
    )
    score.set_defaults(func=score_command)


def backend_and_registry(args):
    """The backend and registry of ``--params`` (the local ones by default)."""
    params = config.validate(
        config.read_parameters_file(args.params) if args.params else {}, source=args.params or "defaults"
    )
    return open_backend(params), registry_of(args)


def registry_of(args):
    """``--registry URL``, else the registry of ``--params`` (DynamoDB on aws), else the local SQLite one."""
    if getattr(args, "registry", None):
        return open_registry(args.registry)
    params = config.validate(
        config.read_parameters_file(args.params) if args.params else {}, source=args.params or "defaults"
    )
    return open_backend(params).registry(registry_table(params))
