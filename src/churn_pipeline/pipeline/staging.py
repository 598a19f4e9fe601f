"""Staging: the customer data copied to the run's prefix, and code at content-addressed keys."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .. import profiling, synthetic, workspace
from .run import Run


def stage_data(run: Run) -> profiling.DataProfile:
    """Check the header and the first rows of the input and copy it to the run's prefix; generate
    synthetic data when none is named. Every row is validated by the ETL job, on Spark."""
    params = run.params
    source = params["data"]
    if not source:
        source = str(workspace.home() / "data" / f"synthetic-{params['synthetic_rows']}-{params['synthetic_seed']}.csv")
        if not Path(source).exists():
            synthetic.write_synthetic(source, params["synthetic_rows"], params["synthetic_seed"])
    profile = profiling.profile_file(source, run.backend.inputs)
    name = Path(source.split("?")[0]).name or "data.csv"
    staged_uri = f"{run.prefix}/raw/{name}"
    digest = run.backend.store.stage(staged_uri, source, run.backend.inputs)
    run.state.update(
        data_source=params["data"] or f"synthetic(rows={params['synthetic_rows']}, seed={params['synthetic_seed']})",
        data_uri=staged_uri,
        data_sha256=digest,
        data_format=profile.summary.format,
        data_rows=profile.rows,
        data_rows_counted=profile.complete,
        churn_rate=round(profile.summary.churn_rate, 4),
    )
    run.save()
    return profile


def stage_code(run: Run, name: str, content: bytes) -> str:
    """Stage ``content`` at ``<code prefix>/<stem>-<sha256[:16]><suffix>`` (once; the key names the content)."""
    stem, dot, suffix = name.partition(".")
    uri = f"{run.code_prefix}/{stem}-{hashlib.sha256(content).hexdigest()[:16]}{dot}{suffix}"
    if not run.backend.store.exists(uri):
        run.backend.store.put(uri, content)
    return uri
