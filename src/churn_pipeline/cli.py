"""``churn-pipeline``: run the notebooks, generate data, read the registry."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from . import cli_monitor, cli_score, config, reports, serving, synthetic, tuning_report, workspace
from .capture import CaptureWriter
from .cli_score import backend_and_registry, registry_of
from .deployments import LocalEndpoints
from .doctor import run_checks
from .errors import ConfigError, PipelineError
from .router import route
from .runner import resume_notebooks, run_notebooks


def _cmd_run(args) -> int:
    if args.resume:
        if args.parameter or args.data is not None or args.run_id is not None or args.params is not None:
            raise PipelineError(
                "--resume continues a run with the parameters it started with: "
                "leave out --params, -p, --data and --run-id"
            )
        result = resume_notebooks(args.resume, progress=not args.quiet)
    else:
        overrides = dict(config.parse_override(item) for item in args.parameter)
        if args.data is not None:  # a relative path is the caller's: the notebooks run in notebooks/
            overrides["data"] = args.data if "://" in args.data or not args.data else os.path.abspath(args.data)
        if args.run_id is not None:
            overrides["run_id"] = args.run_id
        result = run_notebooks(config.load(args.params or "parameters/local.yaml", overrides), progress=not args.quiet)
    print(f"run id:    {result.run_id}")
    print(f"status:    {result.status}")
    print(f"artifacts: {result.artifacts_dir}")
    if not result.succeeded:
        print(f"error:     {result.error}", file=sys.stderr)
        return 1
    return 0


def _cmd_generate(args) -> int:
    if args.outcomes_for:
        if args.shift:
            raise PipelineError("--shift draws customers; outcomes follow the scored customers as they are")
        simulated = synthetic.simulate_outcomes(args.outcomes_for, args.out, args.offer_effect, args.seed)
        print(
            f"wrote the outcomes of {simulated.rows:,} customers to {simulated.path} (churn rate "
            f"{simulated.churned / simulated.rows:.1%}); the offers' true effect on the churn rate of the "
            f"{simulated.eligible:,} eligible customers: {simulated.true_effect:.4f}"
        )
        return 0
    written = synthetic.generate_file(args.out, args.rows, args.seed, tuple(args.shift))  # counted: no second pass
    shifted = f", shifted: {', '.join(args.shift)}" if args.shift else ""
    print(f"wrote {written.rows} rows to {written.path} (churn rate {written.churn_rate:.1%}{shifted})")
    return 0


def _cmd_doctor(args) -> int:
    params = config.validate(config.read_parameters_file(args.params), source=args.params)
    checks = run_checks(params)
    for check in checks:
        print(check.line())
    failed = [c for c in checks if not c.ok]
    print(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    return 1 if failed else 0


def _cmd_serve(args) -> int:
    backend, registry = backend_and_registry(args)
    model = serving.resolve_model(args.model, backend, registry, args.manifest, args.cutoff)
    serving.check_served_model(model.model, model.manifest)  # fail here, clearly, rather than in every worker
    print(
        f"serving {args.model} on http://{args.host}:{args.port} (/ping, /invocations); decisions above "
        f"cutoff {model.cutoff:g} ({model.cutoff_origin})",
        flush=True,
    )
    capture = (Path(args.capture_dir or workspace.home() / "capture"), args.endpoint_name, args.capture_percent)
    CaptureWriter(*capture)  # a percentage out of range fails here, not in every worker
    if args.capture_percent:
        print(f"capturing {args.capture_percent:g} % of answered requests under {capture[0] / args.endpoint_name}")
    serving.serve(model, host=args.host, port=args.port, workers=args.workers, threads=args.threads, capture=capture)
    return 0


def _model_record(registry, parameters_file: str):
    """The registry record behind a ``cloudformation_parameters.json``."""
    try:
        exported = json.loads(open(parameters_file).read())["Parameters"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"{parameters_file} is not a cloudformation_parameters.json: {exc}") from exc
    record = next((r for r in registry.list() if r.model_name == exported.get("ModelName")), None)
    if record is None or record.model_data_url != exported.get("ModelDataUrl"):
        raise PipelineError(
            f"model {exported.get('ModelName')!r} of {parameters_file} has no registry record: "
            "only a model that passed the gate is deployed"
        )
    return record


def _cmd_deploy(args) -> int:
    endpoints = LocalEndpoints()
    record = _model_record(registry_of(args), args.parameters)
    deployment = endpoints.deploy(record, args.environment, args.port, capture_percent=args.capture_percent)
    print(
        f"{args.environment}: version {deployment.version} ({deployment.run_id}) takes traffic on "
        f"http://127.0.0.1:{endpoints.router_port(args.environment)}"
    )
    return 0


def _cmd_rollback(args) -> int:
    endpoints = LocalEndpoints()
    deployment = endpoints.rollback(args.environment, registry_of(args))
    print(
        f"{args.environment}: rolled back to {deployment.run_id} (version {deployment.version}) on "
        f"http://127.0.0.1:{endpoints.router_port(args.environment)}"
    )
    return 0


def _cmd_deployments(args) -> int:
    history = LocalEndpoints().store.history(args.environment)
    if args.json:
        print(json.dumps([vars(d) for d in history], indent=2))
        return 0
    if not history:
        print(f"nothing was deployed to {args.environment}")
    for d in history:
        print(f"v{d.version:<4} {d.status:<12} {d.created_at:<26} {d.run_id:<24} {d.model_name}")
    return 0


def _cmd_undeploy(args) -> int:
    LocalEndpoints().stop(args.environment)
    print(f"{args.environment}: router and model servers stopped")
    return 0


def _cmd_route(args) -> int:
    route(args.environment, args.port)
    return 0


def _cmd_registry_list(args) -> int:
    records = registry_of(args).list()
    if args.json:
        print(json.dumps([r.to_dict() for r in records], indent=2))
        return 0
    if not records:
        print("no registered models")
        return 0
    print(f"{'run id':<24} {'created':<26} {'env':<8} {'val. accuracy':>13}  model")
    for r in records:
        accuracy = r.metrics.get("validation:accuracy")
        shown = f"{accuracy:.4f}" if accuracy is not None else "-"
        print(f"{r.run_id:<24} {r.created_at:<26} {r.environment:<8} {shown:>13}  {r.model_name}")
    return 0


def _cmd_registry_show(args) -> int:
    record = registry_of(args).get(args.run_id)
    if args.json:
        print(json.dumps(record.to_dict(), indent=2))
    else:
        for key, value in record.to_dict().items():
            print(f"{key:<18} {json.dumps(value) if isinstance(value, (dict, list)) else value}")
        for label, text in (
            tuning_report.search_lines(record.extra["tuning"], record.training_job_name)
            if record.extra.get("tuning")
            else []
        ):
            print(f"{label:<18} {text}")
    return 0


def _cmd_registry_compare(args) -> int:
    registry = registry_of(args)
    records = [registry.get(run_id) for run_id in args.run_ids]
    table = reports.registry_comparison(records)
    if args.json:
        print(table.to_json(orient="index", indent=2))
    else:
        print(table.to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="churn-pipeline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the three notebooks end to end")
    run.add_argument("--params", help="parameters file (YAML; default parameters/local.yaml)")
    run.add_argument("--data", help="input CSV: a path or an s3:// URI (default: synthetic data)")
    run.add_argument("--run-id", help="run id (default: a new one)")
    run.add_argument(
        "--resume",
        metavar="RUN_ID",
        help="continue a failed or interrupted run: states that succeeded are not run again, "
        "the failed attempt is kept in attempt-<n>/",
    )
    run.add_argument(
        "-p",
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one parameter (repeatable)",
    )
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no progress lines")
    run.set_defaults(func=_cmd_run)

    generate = commands.add_parser("generate-data", help="write seeded synthetic churn data (raw format)")
    generate.add_argument("--rows", type=int, default=5000)
    generate.add_argument("--seed", type=int, default=42)
    generate.add_argument("--out", required=True)
    generate.add_argument(
        "--shift",
        action="append",
        default=[],
        choices=list(synthetic.SHIFTS),
        help="a named shift of the population (repeatable): "
        + "; ".join(f"{name}: {what}" for name, what in synthetic.SHIFTS.items()),
    )
    generate.add_argument(
        "--outcomes-for",
        metavar="SCORES",
        help="write the outcomes (identifier, churned yes/no) of this score file's synthetic customers to --out "
        "instead of customers: each churns with the simulator's own probability p, an offered one with "
        "p x (1 - --offer-effect)",
    )
    generate.add_argument(
        "--offer-effect", type=float, default=0.0, help="with --outcomes-for: the share of churn an offer prevents"
    )
    generate.set_defaults(func=_cmd_generate)

    cli_monitor.add_command(commands)

    doctor = commands.add_parser("doctor", help="check an AWS account before a run (aws backend)")
    doctor.add_argument("--params", default="parameters/dev.yaml", help="parameters file (YAML)")
    doctor.set_defaults(func=_cmd_doctor)

    serve = commands.add_parser("serve", help="serve a model with SageMaker's inference contract")
    serve.add_argument("--model", required=True, help="run id, s3:// URI of a model.tar.gz, or a local file")
    serve.add_argument("--manifest", help="feature manifest (default: the one beside the model)")
    serve.add_argument("--params", help="parameters file whose backend and registry to use (default: local)")
    serve.add_argument(
        "--cutoff", type=float, help="decide above this probability (default: the run's cost-chosen cutoff)"
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    serve.add_argument("--threads", type=int, default=4, help="threads per worker")
    serve.add_argument(
        "--capture-percent",
        type=float,
        default=0.0,
        help="keep this share of answered requests in SageMaker's data capture format (default: none)",
    )
    serve.add_argument("--capture-dir", help="where captures go (default: <home>/capture)")
    serve.add_argument("--endpoint-name", default="local", help="the endpoint's name in the capture folders")
    serve.set_defaults(func=_cmd_serve)

    cli_score.add_command(commands)

    deploy = commands.add_parser("deploy", help="deploy a registered model locally, blue/green")
    deploy.add_argument("--parameters", required=True, help="a run's cloudformation_parameters.json")
    deploy.add_argument("--environment", default="staging")
    deploy.add_argument(
        "--capture-percent",
        type=float,
        default=0.0,
        help="capture this share of answered requests (SageMaker's format, under <home>/capture/<environment>/)",
    )
    deploy.add_argument(
        "--port", type=int, help="the environment's port (first deploy; default 8080 staging, 8081 prod)"
    )
    deploy.set_defaults(func=_cmd_deploy, params=None)
    rollback = commands.add_parser("rollback", help="return an environment to its previous healthy version")
    rollback.add_argument("--environment", default="staging")
    rollback.set_defaults(func=_cmd_rollback, params=None)
    deployments = commands.add_parser("deployments", help="an environment's deployment history")
    deployments.add_argument("--environment", default="staging")
    deployments.add_argument("--json", action="store_true")
    deployments.set_defaults(func=_cmd_deployments)
    undeploy = commands.add_parser("undeploy", help="stop an environment's router and model servers")
    undeploy.add_argument("--environment", default="staging")
    undeploy.set_defaults(func=_cmd_undeploy)
    route = commands.add_parser("route")  # internal: the router process a deploy starts
    route.add_argument("--environment", required=True)
    route.add_argument("--port", type=int, required=True)
    route.set_defaults(func=_cmd_route)

    registry = commands.add_parser("registry", help="read the model registry")
    registry.add_argument("--registry", help="registry URL: sqlite:///PATH or dynamodb://TABLE")
    registry.add_argument("--params", help="parameters file whose registry to read (default: the local one)")
    registry_commands = registry.add_subparsers(dest="registry_command", required=True)
    listing = registry_commands.add_parser("list", help="all registered models, newest first")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=_cmd_registry_list)
    show = registry_commands.add_parser("show", help="one run's record")
    show.add_argument("run_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_cmd_registry_show)
    compare = registry_commands.add_parser(
        "compare", help="runs side by side: data, metrics, hyper-parameters and cutoff; * marks what differs"
    )
    compare.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=_cmd_registry_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except PipelineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
