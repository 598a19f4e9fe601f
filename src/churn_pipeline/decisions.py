"""What a model's scores become: a decision at a cutoff and the largest reasons, as the columns batch
scoring writes (on Spark and in the Batch Transform container alike)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import explain
from .errors import PipelineError

#: decimals of the written score
SCORE_DECIMALS = 6
#: the column of a score file (and of the score baseline, ``names.EVALUATION``) that holds the model's score
SCORE = "score"
#: the decisions a score file holds: an offer, none, or scored and eligible but held out of the offers
OFFER, NO_OFFER, HOLDOUT = "1", "0", "holdout"
DECISIONS = (OFFER, NO_OFFER, HOLDOUT)
#: how a window's description and the monitor's report name each decision's count
DECISION_NAMES = {OFFER: "offer", NO_OFFER: "no_offer", HOLDOUT: "holdout"}


def named_counts(tally: dict[str, int]) -> dict[str, int]:
    """Counts per decision value as a description names them."""
    return {DECISION_NAMES[decision]: int(tally.get(decision, 0)) for decision in DECISIONS}


@dataclass(frozen=True)
class Holdout:
    """The control group of one scoring: a ``fraction`` of the customers above the cutoff, drawn per
    customer from a hash of the scoring date and the customer's identifier, so the same customer on the
    same date is always in it or always out (a re-run scores the same group), and a new date draws anew.

    The draw is the first 8 bytes of SHA-256(``date`` + 0x1F + identifier) as an unsigned integer: a
    customer is held out below ``threshold``. Spark computes the same with its own ``sha2``
    (``scoring.held_column``); a test holds the two together."""

    fraction: float
    date: str

    def __post_init__(self):
        if not 0.0 <= self.fraction < 1.0:
            raise PipelineError(f"holdout_fraction must be at least 0 and below 1; got {self.fraction}")

    @property
    def salt(self) -> str:
        return f"{self.date}\x1f"

    @property
    def threshold(self) -> int:
        """A draw below this is held out: ``fraction`` of the 2^64 draws."""
        return int(self.fraction * 2**64)

    def held(self, identifiers) -> Any:
        """Whether each customer is in the control group if eligible (in Python, for the simulator)."""
        import numpy as np

        salt = self.salt.encode()
        return np.fromiter(
            (
                int.from_bytes(hashlib.sha256(salt + str(i).encode()).digest()[:8], "big") < self.threshold
                for i in identifiers
            ),
            dtype=bool,
            count=len(identifiers),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"fraction": self.fraction, "date": self.date}


def decided_with_holdout(offered, held) -> Any:
    """``offered`` (1 above the cutoff) as the score file's decisions: the ``held`` ones among them held out."""
    import numpy as np

    offered = np.asarray(offered, dtype=bool)
    held = offered & np.asarray(held, dtype=bool)
    return np.where(held, HOLDOUT, np.where(offered, OFFER, NO_OFFER)).astype(object)


def output_columns(identifier: str, explain_count: int) -> list[str]:
    reasons = [name for i in range(1, explain_count + 1) for name in (f"reason_{i}", f"contribution_{i}")]
    return [identifier, SCORE, "decision", *reasons]


def _decimals(values):
    import numpy as np

    return np.char.mod(f"%.{SCORE_DECIMALS}f", values.astype(np.float64))


def decided(
    booster, matrix, manifest: dict[str, Any], cutoff: float, explain_count: int, per_column=None
) -> dict[str, Any]:
    """The output columns after the identifier, for a matrix of encoded rows: ``score`` (fixed
    decimals), ``decision`` (1 above ``cutoff``) and the reasons (from ``per_column``, the rows'
    contributions per raw column, when the caller has them already)."""
    import numpy as np

    scores = booster.inplace_predict(matrix, validate_features=False) if len(matrix) else np.zeros(0)
    scores = scores.astype(np.float64)  # compared as the endpoint and the evaluation compare them
    columns = {"score": _decimals(scores), "decision": (scores > cutoff).astype(np.int32)}
    if explain_count and len(matrix):
        names = np.asarray(explain.reason_columns(manifest), dtype=object)
        if per_column is None:
            per_column = explain.contributions(booster, matrix, manifest)[0]
        order, values = explain.top_columns(per_column, explain_count)
        for i in range(explain_count):
            columns[f"reason_{i + 1}"] = names[order[:, i]]
            columns[f"contribution_{i + 1}"] = _decimals(values[:, i])
    return columns


def check_explain_count(explain_count: int, manifest: dict[str, Any]) -> int:
    """``--explain K``: 0 (no reasons) up to the model's number of raw columns."""
    columns = len(explain.reason_columns(manifest))
    if not 0 <= explain_count <= columns:
        raise PipelineError(f"--explain must be between 0 and {columns} (the model's columns); got {explain_count}")
    return explain_count


def window_files(scores: Path) -> tuple[Path, Path]:
    """(description, captured input) of the score file ``scores``: a scoring is a window the monitor reads."""
    scores = Path(scores)
    return scores.with_name(f"{scores.stem}.json"), scores.with_name(f"{scores.stem}.input{scores.suffix or '.csv'}")


def read_window(scores: str | Path) -> dict[str, Any]:
    """The description of a score file (its ``.json`` beside it), with the paths of the scores and the
    captured input; a clear error for a file that is not a scoring's."""
    scores = Path(scores)
    description, captured = window_files(scores)
    if not scores.is_file():
        raise PipelineError(f"{scores}: no such score file")
    if not description.is_file() or not captured.is_file():
        raise PipelineError(
            f"{scores}: no description ({description.name}) or captured input ({captured.name}) beside it; "
            "a window is the output of `churn-pipeline score`"
        )
    try:
        document = json.loads(description.read_text())
        document["identifier"], document["holdout"]["fraction"], document["cutoff"]  # noqa: B018
    except (ValueError, KeyError, TypeError) as exc:
        raise PipelineError(f"{description}: not a scoring's description ({exc})") from None
    return {**document, "scores_path": str(scores), "input_path": str(captured)}
