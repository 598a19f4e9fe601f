"""ETL reuse: a run whose ETL inputs match an earlier run's trains on that run's output."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ..errors import PipelineError
from ..names import FEATURE_MANIFEST
from .run import Run


def etl_key(run: Run) -> str:
    """What makes two ETL outputs the same: the data, the ETL code and the package it ships (their
    content-addressed names), the split fractions and the seed."""
    glue = run.state.get("glue_job")
    if not glue:
        raise PipelineError(f"run {run.run_id!r} has no ETL job: run notebook 01 first")
    inputs = {
        "data_sha256": run.state["data_sha256"],
        "script": glue["script"].rsplit("/", 1)[-1],
        "package": glue["package"].rsplit("/", 1)[-1],
        "train_fraction": run.params["train_fraction"],
        "validation_fraction": run.params["validation_fraction"],
        "split_seed": run.params["split_seed"],
    }
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:32]


def plan_etl(run: Run) -> dict[str, Any]:
    """Decide, once per run, whether the execution runs the ETL or reuses an identical earlier output.

    The decision goes to the state machine as execution input (its Choice
    state skips the ETL job); it is kept in ``run.json``, so a resumed run
    keeps it. A reused output's manifest is copied beside this run's model
    (``<run>/etl/manifest.json``) with the run it came from.
    """
    if "etl" in run.state:
        return run.state["etl"]
    key = etl_key(run)
    plan = {
        "key": key,
        "record_uri": run.etl_record_uri(key),
        "reused": False,
        "source_run_id": run.run_id,
        "output_uri": run.own_etl_output_uri,
    }
    if not run.params["reuse_etl"]:
        plan["reason"] = "reuse_etl is false"
    elif not run.backend.store.exists(plan["record_uri"]):
        plan["reason"] = "no earlier ETL with this data, ETL code, split fractions and seed"
    else:
        source = json.loads(run.backend.store.read_text(plan["record_uri"]))["run_id"]
        output_uri = f"{run.run_prefix(source)}/etl"
        manifest_uri = f"{output_uri}/{FEATURE_MANIFEST}"
        if source == run.run_id or not run.backend.store.exists(manifest_uri):
            plan["reason"] = f"the earlier ETL output of run {source} is gone"
        else:
            manifest = json.loads(run.backend.store.read_text(manifest_uri))
            manifest["reused_from"] = {"run_id": source, "output_uri": output_uri}
            run.backend.store.put(
                f"{run.own_etl_output_uri}/{FEATURE_MANIFEST}", json.dumps(manifest, indent=2).encode()
            )
            plan.update(
                reused=True,
                source_run_id=source,
                output_uri=output_uri,
                reason=f"run {source} ran the ETL on the same data, ETL code, split fractions and seed",
            )
    run.state["etl"] = plan
    run.save()
    return plan
