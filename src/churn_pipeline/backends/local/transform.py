"""A local Batch Transform job, run in a process of its own as SageMaker runs one.

The platform's part (contract rows SM-TRANSFORM-JOIN, SM-TRANSFORM-OUTPUT):
each input object is split into records by line, records are sent in
mini-batches of at most ``MaxPayloadInMB``, ``InputFilter`` selects the fields
the model sees, the model must answer one record per record sent, ``JoinSource:
Input`` appends each answer to its whole input row, ``OutputFilter`` selects
from the joined row, and ``<object name>.out`` is written under the output path
only once its whole input succeeded, records in input order. The container's
part (SM-SCRIPT-MODE): with ``SAGEMAKER_PROGRAM`` set, the script's
``model_fn``, ``input_fn``, ``predict_fn`` and ``output_fn`` are called; without
it, the built-in algorithm answers one probability per row.

    python -m churn_pipeline.backends.local.transform <job folder>
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import os
import re
import sys
from pathlib import Path

from ...container import csv_input
from ...errors import PipelineError
from ...storage import atomic_file
from ...training import load_model_dir

JOB_FILE = "job.json"
FAILURE_FILE = "failure"
MODEL_DIR = "model"
CODE_DIR = "code"
OUTPUT_DIR = "output"

_INDEX = r"-?\d+"
_FILTER = re.compile(rf"^\$(\[\s*({_INDEX}|\d*:\d*)(\s*,\s*({_INDEX}|\d*:\d*))*\s*\])?$")


def check_filter(path: str, name: str) -> None:
    """The JSONPath forms Batch Transform applies to CSV rows: ``$``, indexes (``-1`` the last), and at
    most one range; a range with an end is refused here, as the documentation leaves open whether the
    end is included (the pipeline uses open-ended ranges only)."""
    if len(path) > 63 or not _FILTER.match(path.replace(" ", "")):
        raise PipelineError(f"{name} {path!r} is not a JSONPath Batch Transform applies to CSV rows")
    parts = path.replace(" ", "")[2:-1].split(",") if path != "$" else []
    ranges = [p for p in parts if ":" in p]
    if len(ranges) > 1:
        raise PipelineError(f"Invalid JsonPath: {path}: only single range filters of format (eg: [1:5]) are supported")
    if any(p.split(":")[1] for p in ranges):
        raise PipelineError(
            f"{name} {path!r}: a range with an end is ambiguous in Batch Transform's documentation; "
            "use an open-ended range (e.g. $[1:])"
        )


def select(fields: list[str], path: str) -> list[str]:
    """Apply a checked filter to one CSV row's fields; an index out of range fails the record."""
    if path == "$":
        return fields
    picked: list[str] = []
    for part in path.replace(" ", "")[2:-1].split(","):
        if ":" in part:
            start = part.split(":")[0]
            picked += fields[int(start) if start else 0 :]
            continue
        index = int(part)
        if not -len(fields) <= index < len(fields):
            raise PipelineError(f"filter {path} selects index {index} of a record with {len(fields)} fields")
        picked.append(fields[index])
    return picked


def _row(text: str) -> list[str]:
    return next(csv.reader([text]), [])


def _line(fields: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(fields)
    return buffer.getvalue()


class _BuiltIn:
    """The built-in XGBoost algorithm's answer: one probability per CSV row of features."""

    model_fn = staticmethod(load_model_dir)
    input_fn = staticmethod(csv_input)

    @staticmethod
    def predict_fn(matrix, booster):
        if matrix.shape[1] != booster.num_features():
            raise PipelineError(f"rows have {matrix.shape[1]} features, the model takes {booster.num_features()}")
        return booster.inplace_predict(matrix, validate_features=False)

    @staticmethod
    def output_fn(scores, accept):
        return "".join(f"{float(s)}\n" for s in scores), "text/csv"


def _handlers(folder: Path, environment: dict[str, str]):
    program = environment.get("SAGEMAKER_PROGRAM")
    if not program:
        return _BuiltIn
    sys.path.insert(0, str(folder / CODE_DIR))
    module = importlib.import_module(program[:-3] if program.endswith(".py") else program)
    if not hasattr(module, "model_fn"):
        raise PipelineError(f"{program} defines no model_fn")
    return module


def run_job(folder: Path) -> None:
    """Run the job described in ``<folder>/job.json``; on failure, its reason in ``<folder>/failure``."""
    job = json.loads((folder / JOB_FILE).read_text())
    processing = job["DataProcessing"]
    os.environ.update(job["Environment"])
    handlers = _handlers(folder, job["Environment"])
    model = handlers.model_fn(str(folder / MODEL_DIR))
    limit = job["MaxPayloadInMB"] * 2**20

    def answer(batch: list[str], name: str) -> list[str]:
        """One mini-batch through the container; the joined, filtered output lines."""
        body = "\n".join(_line(select(_row(r), processing["InputFilter"])) for r in batch)
        text, _ = handlers.output_fn(
            handlers.predict_fn(handlers.input_fn(body, job["ContentType"]), model), job["Accept"]
        )
        answers = [line for line in (text.decode() if isinstance(text, bytes) else text).splitlines() if line.strip()]
        if len(answers) != len(batch):
            raise PipelineError(f"{name}: the model answered {len(answers)} records for {len(batch)} sent")
        return [
            _line(
                select(
                    _row(record) + _row(out) if processing["JoinSource"] == "Input" else _row(out),
                    processing["OutputFilter"],
                )
            )
            + "\n"
            for record, out in zip(batch, answers)
        ]

    for name, path in job["Inputs"]:
        target = folder / OUTPUT_DIR / f"{name}.out"
        # whole or not at all
        with open(path, encoding="utf-8") as records, atomic_file(target, "w", encoding="utf-8") as out:
            batch, size = [], 0  # one mini-batch in memory at a time
            for line in records:
                record = line.rstrip("\r\n")
                if not record.strip():
                    continue
                if batch and size + len(record) >= limit:
                    out.writelines(answer(batch, name))
                    batch, size = [], 0
                batch.append(record)
                size += len(record) + 1
            if batch:
                out.writelines(answer(batch, name))


def main(argv: list[str]) -> int:
    folder = Path(argv[0])
    try:
        run_job(folder)
    except Exception as exc:  # the job's failure reason, whatever the script raised
        (folder / FAILURE_FILE).write_text(f"{type(exc).__name__}: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
