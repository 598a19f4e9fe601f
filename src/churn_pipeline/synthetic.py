"""Seeded synthetic customers in the raw churn format: the data a run uses when none is named."""

from __future__ import annotations

import collections
import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import decisions
from .data import LABEL, RAW_COLUMNS
from .errors import DataValidationError, PipelineError
from .storage import atomic_file

STATES = [
    "AK",
    "AL",
    "AR",
    "AZ",
    "CA",
    "CO",
    "CT",
    "DC",
    "DE",
    "FL",
    "GA",
    "HI",
    "IA",
    "ID",
    "IL",
    "IN",
    "KS",
    "KY",
    "LA",
    "MA",
    "MD",
    "ME",
    "MI",
    "MN",
    "MO",
    "MS",
    "MT",
    "NC",
    "ND",
    "NE",
    "NH",
    "NJ",
    "NM",
    "NV",
    "NY",
    "OH",
    "OK",
    "OR",
    "PA",
    "RI",
    "SC",
    "SD",
    "TN",
    "TX",
    "UT",
    "VA",
    "VT",
    "WA",
    "WI",
    "WV",
    "WY",
]


#: customers are drawn in blocks of this many, each from its own seeded generator, so a file of any
#: size is written in bounded memory and its content does not depend on how it is written
SYNTHETIC_BLOCK_ROWS = 100_000
#: named shifts of the population (``generate-data --shift``): a drifted window whose truth is known. Each
#: changes only what it names: the other columns keep the same draws, customer by customer.
SHIFTS = {
    "day-mins-up": "day minutes 15 % higher",
    "more-intl-plans": "an international plan for 25 % of customers (9.7 % before)",
    "new-state": "10 % of customers in a state the training data never had (PR)",
}
NEW_STATE = "PR"


def check_shifts(shifts) -> tuple[str, ...]:
    unknown = [shift for shift in shifts if shift not in SHIFTS]
    if unknown:
        raise PipelineError(f"unknown shift {', '.join(unknown)}; the shifts are {', '.join(SHIFTS)}")
    return tuple(shifts)


def _block_generator(seed: int, block: int) -> np.random.Generator:
    """Block 0 draws from ``seed`` itself (a file of up to one block is what one draw gives)."""
    return np.random.default_rng(seed if block == 0 else [seed, block])


def churn_probability(day_mins, eve_mins, intl_plan, intl_mins, intl_calls, custserv, vmail_plan) -> np.ndarray:
    """The simulator's own churn probability of each customer: the truth a model is measured against."""
    total_mins = day_mins + eve_mins
    risk = np.full(len(day_mins), -4.5)
    risk += np.where(day_mins > 264, 6.0, 0.0)
    risk += np.where((day_mins > 225) & (total_mins > 470), 5.0, 0.0)
    risk += np.where(intl_plan & ((intl_mins > 13) | (intl_calls < 3)), 7.0, 0.0)
    risk += np.where(custserv >= 4, np.where(day_mins < 160, 6.5, 1.0), 0.0)
    risk += np.where(vmail_plan, -1.5, 0.0)
    return 1.0 / (1.0 + np.exp(-risk))


def record_probability(frame) -> np.ndarray:
    """``churn_probability`` of raw records (a pandas frame with the raw format's columns)."""
    return churn_probability(
        frame["Day Mins"].to_numpy(dtype=float),
        frame["Eve Mins"].to_numpy(dtype=float),
        frame["Int'l Plan"].astype(str).str.strip().to_numpy() == "yes",
        frame["Intl Mins"].to_numpy(dtype=float),
        frame["Intl Calls"].to_numpy(dtype=float),
        frame["CustServ Calls"].to_numpy(dtype=float),
        frame["VMail Plan"].astype(str).str.strip().to_numpy() == "yes",
    )


def generate_synthetic(
    rows: int, seed: int | np.random.Generator, shifts: tuple[str, ...] = ()
) -> dict[str, np.ndarray]:
    """Draw customers whose marginals and churn drivers resemble the public churn data.

    Churn rises steeply with heavy daytime use, an international plan (with
    many international minutes), and four or more customer-service calls; a
    voice-mail plan lowers it. The rate lands near 14 %. ``shifts`` (``SHIFTS``)
    move the population; churn follows the same drivers.
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = rows
    shifts = check_shifts(shifts)
    intl_plan = rng.random(n) < (0.25 if "more-intl-plans" in shifts else 0.097)
    vmail_plan = rng.random(n) < 0.277
    day_factor = 1.15 if "day-mins-up" in shifts else 1.0
    day_mins = np.clip(rng.normal(179.8, 54.5, n) * day_factor, 0, 351 * day_factor).round(1)
    eve_mins = np.clip(rng.normal(201.0, 50.7, n), 0, 364).round(1)
    night_mins = np.clip(rng.normal(200.9, 50.6, n), 23, 395).round(1)
    intl_mins = np.clip(rng.normal(10.2, 2.8, n), 0, 20).round(1)
    custserv = np.minimum(rng.poisson(1.56, n), 9)
    intl_calls = np.minimum(rng.poisson(4.48, n), 20)
    churn = rng.random(n) < churn_probability(
        day_mins, eve_mins, intl_plan, intl_mins, intl_calls, custserv, vmail_plan
    )
    vmail_msgs = np.where(vmail_plan, np.clip(rng.normal(29.3, 7.6, n), 4, 51), 0).round().astype(int)
    states = rng.choice(STATES, n)
    columns = {
        "State": states,
        "Account Length": np.clip(rng.normal(101, 39.8, n), 1, 243).round().astype(int),
        "Area Code": rng.choice(np.array([408, 415, 510]), n, p=[0.25, 0.50, 0.25]),
        "Phone": np.array([f"{a}-{b:04d}" for a, b in zip(rng.integers(327, 423, n), rng.integers(0, 10000, n))]),
        "Int'l Plan": np.where(intl_plan, "yes", "no"),
        "VMail Plan": np.where(vmail_plan, "yes", "no"),
        "VMail Message": vmail_msgs,
        "Day Mins": day_mins,
        "Day Calls": np.clip(rng.normal(100.4, 20.1, n), 0, 165).round().astype(int),
        "Day Charge": (day_mins * 0.17).round(2),
        "Eve Mins": eve_mins,
        "Eve Calls": np.clip(rng.normal(100.1, 19.9, n), 0, 170).round().astype(int),
        "Eve Charge": (eve_mins * 0.085).round(2),
        "Night Mins": night_mins,
        "Night Calls": np.clip(rng.normal(100.1, 19.6, n), 33, 175).round().astype(int),
        "Night Charge": (night_mins * 0.045).round(2),
        "Intl Mins": intl_mins,
        "Intl Calls": intl_calls,
        "Intl Charge": (intl_mins * 0.27).round(2),
        "CustServ Calls": custserv,
        LABEL: np.where(churn, "True.", "False."),
    }
    if "new-state" in shifts:  # drawn last: every other column keeps its draws
        columns["State"] = np.where(rng.random(n) < 0.10, NEW_STATE, states)
    return columns


@dataclass(frozen=True)
class SyntheticFile:
    path: Path
    rows: int
    churned: int

    @property
    def churn_rate(self) -> float:
        return self.churned / self.rows


def generate_file(path: str | os.PathLike, rows: int, seed: int, shifts: tuple[str, ...] = ()) -> SyntheticFile:
    """Write ``rows`` synthetic customers in the raw format, block by block (memory is one block's,
    whatever ``rows``), atomically; the same ``rows``, ``seed`` and ``shifts`` give the same bytes."""
    shifts = check_shifts(shifts)
    if rows < 1:
        raise DataValidationError(str(path), f"cannot generate {rows} rows; need at least 1")
    path = Path(path)
    churned = 0
    with atomic_file(path, "w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(RAW_COLUMNS)
        for block, start in enumerate(range(0, rows, SYNTHETIC_BLOCK_ROWS)):
            size = min(SYNTHETIC_BLOCK_ROWS, rows - start)
            columns = generate_synthetic(size, _block_generator(seed, block), shifts)
            churned += int(np.count_nonzero(columns[LABEL] == "True."))
            writer.writerows(zip(*(columns[name].tolist() for name in RAW_COLUMNS)))
    return SyntheticFile(path, rows, churned)


def write_synthetic(path: str | os.PathLike, rows: int, seed: int) -> Path:
    """``generate_file``, returning the path."""
    return generate_file(path, rows, seed).path


@dataclass(frozen=True)
class SimulatedOutcomes:
    path: Path
    rows: int
    churned: int
    #: customers above the cutoff (offered or held out) whose identifier no other row of the window shares
    eligible: int
    #: the offers' true effect on the eligible customers' churn rate: the mean of p x effect over them
    true_effect: float


def simulate_outcomes(scores: str | os.PathLike, out: str | os.PathLike, effect: float, seed: int) -> SimulatedOutcomes:
    """Outcomes (identifier, ``churned`` yes/no) of a scored window of synthetic customers: each churns with
    the simulator's probability p, an offered one with p x (1 - ``effect``). Read and written chunk by
    chunk, atomically."""
    import pandas as pd

    if not 0.0 <= effect <= 1.0:
        raise PipelineError(f"--offer-effect must be between 0 and 1; got {effect}")
    window = decisions.read_window(scores)
    identifier = window["identifier"]
    if identifier != "Phone":
        raise PipelineError(f"{scores}: outcomes are simulated for raw customer records, not {identifier} rows")
    rows = churned = 0
    eligible_ids, eligible_effects = [], []
    read = {"chunksize": SYNTHETIC_BLOCK_ROWS, "dtype": {identifier: str, "decision": str}, "skipinitialspace": True}
    with atomic_file(out, "w", newline="") as written:
        written.write(f"{identifier},churned\n")
        inputs = pd.read_csv(window["input_path"], **read)
        scored = pd.read_csv(window["scores_path"], usecols=[identifier, "decision"], **read)
        for block, (customers, answers) in enumerate(zip(inputs, scored)):
            p = record_probability(customers)
            offered = answers["decision"].to_numpy() == decisions.OFFER
            churn = _block_generator(seed, block).random(len(p)) < np.where(offered, p * (1 - effect), p)
            eligible = offered | (answers["decision"].to_numpy() == decisions.HOLDOUT)
            eligible_ids.append(answers[identifier].to_numpy()[eligible])
            eligible_effects.append(p[eligible] * effect)
            pd.DataFrame({identifier: answers[identifier], "churned": np.where(churn, "yes", "no")}).to_csv(
                written, header=False, index=False
            )
            rows, churned = rows + len(p), churned + int(churn.sum())
    ids, effects = np.concatenate(eligible_ids), np.concatenate(eligible_effects)
    shared = _shared_ids(window, identifier, ids)
    unique = np.fromiter((value not in shared for value in ids), dtype=bool, count=len(ids))
    return SimulatedOutcomes(Path(out), rows, churned, int(unique.sum()), float(effects[unique].mean()))


def _shared_ids(window: dict, identifier: str, eligible_ids: np.ndarray) -> set[str]:
    """The eligible identifiers that some row of the window, eligible or not, also has."""
    import pandas as pd

    wanted = set(eligible_ids.tolist())
    seen = collections.Counter()
    for chunk in pd.read_csv(window["scores_path"], usecols=[identifier], dtype=str, chunksize=SYNTHETIC_BLOCK_ROWS):
        seen.update(value for value in chunk[identifier] if value in wanted)
    return {value for value, count in seen.items() if count > 1}


def simulate_decisions(
    rows: int, seed: int, effect: float, holdout, cutoff: float, model_noise: float = 0.0
) -> dict[str, np.ndarray]:
    """A scored window with known truth, in memory: customers drawn as ``generate_synthetic`` draws them,
    scored by a model whose log-odds err from the simulator's own by normal noise of ``model_noise``
    (0: a perfect model), decided at ``cutoff`` with the control group ``holdout`` (a
    ``decisions.Holdout``), and their outcomes under an offer ``effect``. Arrays: p (the truth),
    score, decision, churned."""
    rng = np.random.default_rng([seed, 19])
    columns = generate_synthetic(rows, rng)
    p = churn_probability(
        columns["Day Mins"],
        columns["Eve Mins"],
        columns["Int'l Plan"] == "yes",
        columns["Intl Mins"],
        columns["Intl Calls"],
        columns["CustServ Calls"],
        columns["VMail Plan"] == "yes",
    )
    log_odds = np.log(p / (1 - p)) + model_noise * rng.standard_normal(rows)
    score = 1 / (1 + np.exp(-log_odds))
    decided = decisions.decided_with_holdout(score > cutoff, holdout.held([f"{seed}-{i}" for i in range(rows)]))
    churned = rng.random(rows) < np.where(decided == decisions.OFFER, p * (1 - effect), p)
    return {"p": p, "score": score, "decision": decided, "churned": churned}
