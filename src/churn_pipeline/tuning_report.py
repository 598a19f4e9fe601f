"""A hyper-parameter search as notebook 02 shows it: its training jobs as a table, and the objective
against each tuned hyper-parameter."""

from __future__ import annotations

from typing import Any

import pandas as pd

#: the columns every job row has besides its tuned hyper-parameters (``pipeline.search.search_jobs``)
JOB_COLUMNS = ("job", "status", "objective", "best")


def search_table(jobs: list[dict[str, Any]], objective: str) -> pd.DataFrame:
    """The search's jobs in job order, the objective named, the best job marked."""
    table = pd.DataFrame(jobs).set_index("job")
    table["best"] = table["best"].map({True: "best", False: ""})
    return table.rename(columns={"objective": objective})


def plot_search(jobs: list[dict[str, Any]], objective: str, axes=None):
    """The objective of each job that has one against each tuned hyper-parameter (one panel each; the
    best job ringed): where a range's edge wins, the range is too narrow."""
    import matplotlib.pyplot as plt

    tuned = [name for name in jobs[0] if name not in JOB_COLUMNS] if jobs else []
    scored = [job for job in jobs if job["objective"] is not None]
    if axes is None:
        _, axes = plt.subplots(1, max(len(tuned), 1), figsize=(3.2 * max(len(tuned), 1), 3.0), squeeze=False)
        axes = axes[0]
    for ax, name in zip(axes, tuned):
        values = [_number(job[name]) for job in scored]
        ax.scatter(values, [job["objective"] for job in scored], s=18, color="#4477aa")
        best = [job for job in scored if job["best"]]
        if best:
            ax.scatter([_number(best[0][name])], [best[0]["objective"]], s=80, facecolors="none", edgecolors="#cc3311")
        ax.set_xlabel(name)
        ax.set_ylabel(objective if ax is axes[0] else "")
    return axes


def search_summary(search: dict[str, Any] | None) -> str:
    """A record's search in one line: strategy, limits, objective and seed; ``none`` without one."""
    if not search:
        return "none"
    limits, objective = search["ResourceLimits"], search["HyperParameterTuningJobObjective"]
    return (
        f"{search['Strategy']}, {limits.get('MaxNumberOfTrainingJobs')} jobs ({limits['MaxParallelTrainingJobs']} "
        f"at once), {objective['MetricName']} ({objective['Type']}), seed {search.get('RandomSeed')}"
    )


def search_lines(search: dict[str, Any], training_job_name: str) -> list[tuple[str, str]]:
    """A registry record's search (``extra.tuning``) as (label, text) lines: strategy and limits, the tuning
    job (the best training job's name less AMT's ``-NNN-<hex>``), and each range searched."""
    lines = [("search", search_summary(search)), ("tuning job", training_job_name.rsplit("-", 2)[0])]
    for kind, entries in search["ParameterRanges"].items():
        for entry in entries:
            if "Values" in entry:
                text = "one of " + ", ".join(entry["Values"])
            else:
                scaling = entry.get("ScalingType", "Auto")
                text = f"{kind.removesuffix('ParameterRanges')} {entry['MinValue']} to {entry['MaxValue']} ({scaling})"
            lines.append((f"range {entry['Name']}", text))
    return lines


def _number(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text
