"""What the notebooks show a person: tables and plots, built here so they are tested."""

from __future__ import annotations

import io
from typing import Any

import pandas as pd

from . import formats, state_graph
from .tuning_report import search_summary

#: what a table shows where a figure does not apply (a categorical column's mean) or was not computed (the
#: training job reports accuracy and AUC on the validation split, not precision, recall or F1): never NaN
NOT_APPLICABLE = ""
NOT_COMPUTED = "not computed"


def data_profile(lines: list[str], source: str = "data") -> pd.DataFrame:
    """Per-column summary of the first lines of a raw or encoded CSV (``DataProfile.sample``)."""
    header = formats.detect(lines[0], source).has_header
    frame = pd.read_csv(io.StringIO("\n".join(lines)), header=0 if header else None)
    rows = []
    for column in frame.columns:
        series = frame[column]
        numeric = pd.api.types.is_numeric_dtype(series)
        rows.append(
            {
                "column": column,
                "type": "numeric" if numeric else "categorical",
                "distinct": int(series.nunique()),
                "mean": round(float(series.mean()), 2) if numeric else NOT_APPLICABLE,
                "min": series.min() if numeric else NOT_APPLICABLE,
                "max": series.max() if numeric else NOT_APPLICABLE,
                "top": NOT_APPLICABLE if numeric else series.mode().iat[0],
            }
        )
    return pd.DataFrame(rows).set_index("column")


def state_table(history: dict[str, Any]) -> pd.DataFrame:
    """One row per state the execution entered, with its status and duration."""
    rows = [
        {
            "state": s["state"],
            "type": s["type"],
            "status": s["status"],
            "duration": f"{s['seconds']:.1f} s" if s.get("seconds") is not None else "",
        }
        for s in history.get("states", [])
    ]
    return pd.DataFrame(rows, columns=["state", "type", "status", "duration"])


def metrics_table(evaluation: dict[str, Any]) -> pd.DataFrame:
    """Validation metrics from the training job beside the test metrics, three decimals."""
    training = evaluation["training"]
    test = evaluation["test"]
    rows = [
        {
            "metric": name,
            "validation": (
                round(training[f"validation:{name}"], 3) if f"validation:{name}" in training else NOT_COMPUTED
            ),
            "test": round(test[name], 3),
        }
        for name in ("accuracy", "auc", "precision", "recall", "f1")
    ]
    return pd.DataFrame(rows).set_index("metric")


def plot_confusion_matrix(evaluation: dict[str, Any], ax=None):
    import matplotlib.pyplot as plt

    cm = evaluation["test"]["confusion_matrix"]
    cells = [[cm["true_negative"], cm["false_positive"]], [cm["false_negative"], cm["true_positive"]]]
    ax = ax or plt.subplots(figsize=(4, 3.5))[1]
    ax.imshow(cells, cmap="Blues")
    for i in range(2):
        for j in range(2):
            dark = cells[i][j] > max(max(row) for row in cells) / 2
            ax.text(j, i, str(cells[i][j]), ha="center", va="center", fontsize=12, color="white" if dark else "black")
    ax.set_xticks([0, 1], ["stays", "churns"])
    ax.set_yticks([0, 1], ["stays", "churns"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title("Confusion matrix (test)")
    return ax


def plot_roc(evaluation: dict[str, Any], ax=None):
    import matplotlib.pyplot as plt

    ax = ax or plt.subplots(figsize=(4, 3.5))[1]
    ax.plot(evaluation["roc"]["fpr"], evaluation["roc"]["tpr"], label=f"AUC {evaluation['test']['auc']:.3f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("ROC curve (test)")
    ax.legend(loc="lower right")
    return ax


def plot_feature_importance(evaluation: dict[str, Any], top: int = 12, ax=None):
    import matplotlib.pyplot as plt

    pairs = evaluation["feature_importance"][:top][::-1]
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    ax.barh([p["feature"] for p in pairs], [p["gain"] for p in pairs])
    ax.set_xlabel("gain")
    ax.set_title("Feature importance")
    return ax


def decision_table(evaluation: dict[str, Any]) -> pd.DataFrame:
    """The cost-chosen cutoff beside offering to nobody and to everybody, per customer of the test split."""
    d = evaluation["decision"]
    rows = int(evaluation["test"]["rows"]) or 1
    return pd.DataFrame(
        [
            {
                "policy": f"offer above {d['cutoff']:.4f} (chosen)",
                "offered": round(d["share_offered"], 3),
                "churners offered": round(d["share_of_churners_offered"], 3),
                "cost per customer": round(d["expected_cost_per_customer"], 2),
            },
            {
                "policy": "offer to nobody",
                "offered": 0.0,
                "churners offered": 0.0,
                "cost per customer": round(d["cost_offering_nobody"] / rows, 2),
            },
            {
                "policy": "offer to everybody",
                "offered": 1.0,
                "churners offered": 1.0,
                "cost per customer": round(d["cost_offering_everybody"] / rows, 2),
            },
        ]
    ).set_index("policy")


def plot_cost_curve(evaluation: dict[str, Any], ax=None):
    """Expected cost per customer against the cutoff, the chosen cutoff marked."""
    import matplotlib.pyplot as plt

    curve, d = evaluation["cost_curve"], evaluation["decision"]
    ax = ax or plt.subplots(figsize=(5, 3.5))[1]
    ax.plot(curve["cutoff"], curve["cost_per_customer"])
    ax.axvline(d["cutoff"], linestyle="--", color="grey")
    ax.plot(
        [d["cutoff"]],
        [d["expected_cost_per_customer"]],
        "o",
        color="tab:red",
        label=f"cutoff {d['cutoff']:.3f}: {d['expected_cost_per_customer']:.2f} per customer",
    )
    ax.set_xlabel("cutoff (offer above it)")
    ax.set_ylabel("cost per customer")
    ax.set_title(f"Cost curve (offer {d['retention_offer_cost']:g}, churn loss {d['churn_loss']:g})")
    ax.legend(loc="upper right")
    return ax


def plot_reasons(evaluation: dict[str, Any], top: int = 12, ax=None):
    """Mean |SHAP contribution| per raw column on a sample of the test split (the reasons' summary)."""
    import matplotlib.pyplot as plt

    reasons = evaluation["reasons"]
    pairs = reasons["mean_abs_contribution"][:top][::-1]
    ax = ax or plt.subplots(figsize=(5, 4))[1]
    ax.barh([p["column"] for p in pairs], [p["value"] for p in pairs])
    ax.set_xlabel("mean |contribution| (log-odds)")
    ax.set_title(f"Reasons: SHAP summary ({reasons['rows']:,} test rows)")
    return ax


#: a state's colours by its status in the execution (fill, border)
STATE_COLOURS = {
    "SUCCEEDED": ("#b7e1b0", "#2e7d32"),
    "FAILED": ("#f4b6b6", "#c62828"),
    "RUNNING": ("#fff1b8", "#b28704"),
    state_graph.NOT_RUN: ("#ffffff", "#9e9e9e"),
}


def plot_state_machine(definition: dict[str, Any], history: dict[str, Any] | None = None, ax=None):
    """The state machine top to bottom in execution order (``state_graph.layout``): Choice rules on their
    edges, the path the execution took drawn bold, states it did not run dashed."""
    import matplotlib.pyplot as plt

    nodes, edges = state_graph.layout(definition, history)
    where = {node.name: (node.lane * 2.6, -node.rank) for node in nodes}
    depth = max(node.rank for node in nodes) + 1
    width = max(abs(node.lane) for node in nodes) * 2.6 + 2.2
    ax = ax or plt.subplots(figsize=(max(7.0, 2.2 * width), 0.95 * depth + 1.2))[1]
    for edge in edges:
        (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
        skips = y0 - y1 > 1 and x0 == x1  # around the states between, not through them
        colour, style, weight = ("#1f5fa8", "-", 2.2) if edge.taken else ("#9e9e9e", "--", 1.0)
        ax.annotate(
            "",
            xy=(x1, y1),
            xytext=(x0, y0),
            arrowprops={
                "arrowstyle": "-|>",
                "color": colour,
                "linestyle": style,
                "linewidth": weight,
                "shrinkA": 16,
                "shrinkB": 16,
                "connectionstyle": f"arc3,rad={-0.9 if skips else 0.0}",
            },
        )
        if edge.label:  # beside the edge, near its source, on the side it leaves to
            if skips:
                lx, ly, align = x0 + 0.5 * (y0 - y1), (y0 + y1) / 2, "left"
            else:
                lx, ly = x0 + 0.4 * (x1 - x0), y0 + 0.4 * (y1 - y0)
                align = "right" if x1 < x0 else "left"
                lx += -0.15 if x1 < x0 else 0.15
            ax.text(lx, ly, edge.label, fontsize=8, color=colour, ha=align, va="center", style="italic")
    for node in nodes:
        fill, border = STATE_COLOURS.get(node.status, STATE_COLOURS["RUNNING"])
        shown = "not run" if node.status == state_graph.NOT_RUN else node.status.lower()
        ax.text(
            *where[node.name],
            f"{node.name}\n{node.type} · {shown}",
            ha="center",
            va="center",
            fontsize=9,
            color="#616161" if node.status == state_graph.NOT_RUN else "black",
            bbox={
                "boxstyle": "round,pad=0.45",
                "facecolor": fill,
                "edgecolor": border,
                "linestyle": "--" if node.status == state_graph.NOT_RUN else "-",
            },
        )
    ax.legend(handles=_state_legend(), loc="upper left", fontsize=8, frameon=False)
    ax.set_xlim(-width, width)
    ax.set_ylim(-depth + 0.4, 0.6)
    ax.axis("off")
    ax.set_title("State machine, in execution order")
    return ax


def _state_legend() -> list:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    return [
        Patch(facecolor=STATE_COLOURS["SUCCEEDED"][0], edgecolor=STATE_COLOURS["SUCCEEDED"][1], label="succeeded"),
        Patch(facecolor=STATE_COLOURS["FAILED"][0], edgecolor=STATE_COLOURS["FAILED"][1], label="failed"),
        Patch(facecolor="white", edgecolor="#9e9e9e", linestyle="--", label="not run"),
        Line2D([], [], color="#1f5fa8", linewidth=2.2, label="path taken"),
    ]


# --- the registry ---------------------------------------------------------------------------------
def registry_comparison(records: list) -> pd.DataFrame:
    """Several runs side by side (one column each, in the order given): their data, metrics,
    hyper-parameters and cutoff, a row per figure; ``differs`` marks the rows whose values are not all
    the same (what changed between the runs). A figure a run lacks is shown as ``NOT_APPLICABLE``."""
    rows: dict[str, list[Any]] = {
        "created": [r.created_at for r in records],
        "environment": [r.environment for r in records],
        "data sha256": [r.data_sha256[:12] for r in records],
        "git commit": [(r.git_commit or "")[:12] for r in records],
        "cutoff": [r.cutoff if r.cutoff is not None else NOT_COMPUTED for r in records],
        "search": [search_summary(r.extra.get("tuning")) for r in records],
    }
    for name in sorted({m for r in records for m in r.metrics}):
        rows[name] = [r.metrics.get(name, NOT_APPLICABLE) for r in records]
    for name in sorted({h for r in records for h in r.hyperparameters}):
        rows[f"hyper-parameter {name}"] = [r.hyperparameters.get(name, NOT_APPLICABLE) for r in records]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=[r.run_id for r in records], dtype=object)
    table["differs"] = ["*" if len({str(v) for v in values}) > 1 else "" for values in rows.values()]
    return table


# --- notebook 04: a monitor's report ----------------------------------------------------------------
def verdict_lines(report: dict[str, Any]) -> str:
    """The verdict and its reasons, as the monitor prints them."""
    return "\n".join([f"verdict: {report['verdict']}", *(f"  - {reason}" for reason in report["reasons"])])


def drift_table(report: dict[str, Any]) -> pd.DataFrame:
    """One row per baseline column (and the score): method, figure, threshold, drifted; drifted first."""
    rows = []
    entries = dict(report["drift"])
    if report.get("score_drift"):
        entries["(score)"] = report["score_drift"]
    for name, found in entries.items():
        psi = found["method"] == "psi"
        rows.append(
            {
                "column": name,
                "method": "PSI" if psi else "chi-squared",
                "value": round(found["value"] if psi else found["statistic"], 4),
                "p-value": "" if psi else f"{found['p_value']:.2g}",
                "threshold": f"{found['threshold']:.2g}",
                "drifted": "yes" if found["drifted"] else "no",
                "unseen values": ", ".join(found.get("unseen_values", [])),
            }
        )
    frame = pd.DataFrame(rows)
    return frame.sort_values(["drifted", "column"], ascending=[False, True]).set_index("column")


def plot_drift(report: dict[str, Any], ax=None):
    """Population stability index per numeric column, with the threshold."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    numeric = {name: found["value"] for name, found in report["drift"].items() if found["method"] == "psi"}
    names = sorted(numeric, key=numeric.get)
    threshold = next(found["threshold"] for found in report["drift"].values() if found["method"] == "psi")
    ax.barh(names, [numeric[n] for n in names], color=["C3" if numeric[n] > threshold else "C0" for n in names])
    ax.axvline(threshold, color="k", linestyle="--", linewidth=1)
    ax.set_xlabel("population stability index (window vs training split)")
    ax.set_title("Drift of the numeric columns")
    return ax


def plot_score_distribution(report: dict[str, Any], ax=None):
    """The window's share of scores in each decile of the test split's scores (10 % each if unchanged)."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    counts = report["score_drift"]["deciles"]
    total = sum(counts) or 1
    ax.bar(range(1, 11), [c / total for c in counts], color="C0", label="window")
    ax.axhline(0.1, color="k", linestyle="--", linewidth=1, label="test split (10 % each)")
    ax.set_xticks(range(1, 11))
    ax.set_xlabel("decile of the test split's scores")
    ax.set_ylabel("share of the window")
    ax.set_title(f"Scores: PSI {report['score_drift']['value']:.3f}")
    ax.legend()
    return ax


def quality_table(report: dict[str, Any]) -> pd.DataFrame:
    """AUC and accuracy at the cutoff on the untreated customers beside the test split's, with 95 % intervals."""

    def cell(figures, name):
        low, high = figures[f"{name}_interval"]
        return f"{figures[name]:.3f} ({low:.3f}-{high:.3f})"

    rows = [
        {"metric": name, "untreated customers": cell(report["quality"], name), "test split": cell(report["test"], name)}
        for name in ("auc", "accuracy")
    ]
    return pd.DataFrame(rows).set_index("metric")


def plot_calibration(report: dict[str, Any], ax=None):
    """Churn rate against mean score per score band, on the untreated customers."""
    import matplotlib.pyplot as plt

    ax = ax or plt.gca()
    bands = report["quality"]["calibration"]
    ax.plot([0, 1], [0, 1], color="k", linestyle="--", linewidth=1)
    ax.plot([b["mean_score"] for b in bands], [b["churn_rate"] for b in bands], marker="o")
    ax.set_xlabel("mean score")
    ax.set_ylabel("churn rate")
    ax.set_title("Calibration on the untreated customers")
    return ax


def offers_table(report: dict[str, Any]) -> pd.DataFrame:
    """Churn rates of the offered customers and of the control group, and the offers' effect."""
    offers = report["offers"]
    rows = [
        {"group": name, "customers": offers[name]["customers"], "churn rate": _rate(offers[name]["churn_rate"])}
        for name in ("offered", "holdout")
    ]
    if offers["effect"] is not None:
        low, high = offers["interval"]
        rows.append(
            {
                "group": "effect (holdout - offered)",
                "customers": "",
                "churn rate": (f"{offers['effect']:.3f} (95 % interval {low:.3f} to {high:.3f})"),
            }
        )
    return pd.DataFrame(rows).set_index("group")


def _rate(value):
    return "none" if value is None else f"{value:.3f}"
