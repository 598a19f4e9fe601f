"""Environments apart: two environments' builds with the same run id, in one home and one bucket,
neither write nor read each other's objects, registry or ETL records."""

from __future__ import annotations

import json

from helpers import ROOT

from churn_pipeline import config, workflow
from churn_pipeline.etl import job as etl_job
from churn_pipeline.pipeline.execution import execution_input
from churn_pipeline.registry import SqliteRegistry
from churn_pipeline.storage import MirroredS3


def _build(environment: str, synthetic_csv, tmp_path, monkeypatch):
    """Notebook 01 and the planning of notebook 02 of build ``build-7`` in ``environment`` (each build
    has an artifacts folder of its own, as each CodeBuild build has; the home and bucket are shared)."""
    monkeypatch.setenv("CHURN_PIPELINE_ARTIFACTS", str(tmp_path / f"artifacts-{environment}"))
    params = config.load(
        ROOT / "parameters" / "local.yaml",
        {"environment": environment, "run_id": "build-7", "data": str(synthetic_csv)},
    )
    run = workflow.start_run(params)
    workflow.stage_data(run)
    workflow.deploy_etl_job(run)
    workflow.deploy_functions(run)
    plan = workflow.plan_etl(run)
    workflow.deploy_state_machine(run, workflow.build_state_machine(run))
    return run, plan, execution_input(run)


def test_two_environments_with_the_same_build_number_keep_apart(isolated, synthetic_csv, monkeypatch):
    dev, dev_plan, dev_input = _build("dev", synthetic_csv, isolated, monkeypatch)
    # dev's ETL finishes: its output and the record that lets later dev runs reuse it
    dev.backend.store.put(f"{dev.own_etl_output_uri}/manifest.json", json.dumps({"features": ["a"]}).encode())
    etl_job.write_etl_record(dev_plan["record_uri"], dev_plan["key"], "build-7", {"rows": {}}, dev.backend.store)
    prod, prod_plan, prod_input = _build("prod", synthetic_csv, isolated, monkeypatch)

    assert dev_plan["key"] == prod_plan["key"]  # the same data, code and split: only the environment differs
    assert not prod_plan["reused"], "prod reused dev's ETL output"
    bucket = "s3://churn-pipeline-local/churn"
    for environment, values in (("dev", dev_input), ("prod", prod_input)):
        uris = [v for v in values.values() if isinstance(v, str) and v.startswith("s3://")]
        assert uris and all(u.startswith(f"{bucket}/{environment}/") for u in uris), (environment, uris)
    written = MirroredS3(isolated / "home" / "s3").objects_under(f"{bucket}/")
    assert written and all(k.startswith((f"{bucket}/dev/", f"{bucket}/prod/")) for k in written)
    assert {k.split("/")[4] for k in written} == {"dev", "prod"}
    for environment, run in (("dev", dev), ("prod", prod)):
        assert run.state["data_uri"] == f"{bucket}/{environment}/build-7/raw/synthetic.csv"
        assert run.registry_table == f"churn-{environment}-model-registry"
    assert dev.backend.registry_url(dev.registry_table) != prod.backend.registry_url(prod.registry_table)


def test_a_run_begun_before_environments_had_folders_goes_on_where_it_began(isolated, synthetic_csv):
    """Its state names no folder: it is the old one, ``<project>/<run-id>``, so a resume finds its data."""
    params = config.load(ROOT / "parameters" / "local.yaml", {"run_id": "older", "data": str(synthetic_csv)})
    run = workflow.start_run(params)
    assert run.prefix == "s3://churn-pipeline-local/churn/local/older"
    run.state.pop("prefix")
    run.save()
    assert workflow.resume_run(params).prefix == "s3://churn-pipeline-local/churn/older"


def test_a_registry_every_environment_shared_is_split_by_environment_when_first_opened(isolated):
    """The local registry was one file for every environment; each environment's file takes its own
    records from it once, and the shared file is left as it was."""
    from helpers import make_record

    from churn_pipeline.backends.local import LEGACY_REGISTRY, LocalBackend

    home = isolated / "home"
    shared = SqliteRegistry(home / LEGACY_REGISTRY)
    shared.register(make_record("a", environment="dev"))
    shared.register(make_record("b", environment="prod"))
    dev = LocalBackend({"environment": "dev"}, home).registry("churn-dev-model-registry")
    assert [r.run_id for r in dev.list()] == ["a"]
    prod = LocalBackend({"environment": "prod"}, home).registry("churn-prod-model-registry")
    assert [r.run_id for r in prod.list()] == ["b"]
    assert sorted(r.run_id for r in shared.list()) == ["a", "b"]
