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
it, the built-in algorithm answers one probability per row. As the container's
model server (row SM-TRANSFORM-SPEED), mini-batches are answered by worker
processes, at most ``MaxConcurrentTransforms`` at once, each within
``SAGEMAKER_MODEL_SERVER_TIMEOUT``.

    python -m churn_pipeline.backends.local.transform <job folder>
"""

from __future__ import annotations

import collections
import contextlib
import csv
import importlib
import io
import json
import multiprocessing
import os
import re
import sys
import threading
import time
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


def check_payload(max_concurrent: int | None, max_payload_mb: int | None) -> None:
    """CreateTransformJob's bound: ``MaxConcurrentTransforms`` x ``MaxPayloadInMB`` at most 100 MB, and
    ``MaxPayloadInMB`` itself at most 100 (row SM-TRANSFORM-SPEED)."""
    payload = 6 if max_payload_mb is None else max_payload_mb
    if payload > 100 or (max_concurrent or 0) * payload > 100:
        raise PipelineError(
            f"MaxConcurrentTransforms ({max_concurrent}) x MaxPayloadInMB ({payload}) must not exceed 100 MB"
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


WORKERS_START_SECONDS = 600
#: one model-server worker's script and model (each worker process loads its own, as the container's do)
_WORKER: dict = {}


def _start_worker(folder: str, environment: dict[str, str], ready=None) -> None:
    """Load the script and model; then wait at ``ready`` until every worker has (the server answers its
    ping, and the platform sends mini-batches, only once the model is loaded)."""
    handlers = _handlers(Path(folder), environment)
    _WORKER.update(handlers=handlers, model=handlers.model_fn(str(Path(folder) / MODEL_DIR)))
    if ready is not None:  # a worker started again after the job began finds the barrier passed: go on
        with contextlib.suppress(threading.BrokenBarrierError):
            ready.wait(WORKERS_START_SECONDS)


def _invoke(body: str, content_type: str, accept: str) -> str:
    """One ``/invocations`` request in a worker: the script's answer as text."""
    handlers = _WORKER["handlers"]
    text, _ = handlers.output_fn(handlers.predict_fn(handlers.input_fn(body, content_type), _WORKER["model"]), accept)
    return text.decode() if isinstance(text, bytes) else text


def server_settings(job: dict) -> tuple[int, float]:
    """(mini-batches in flight, seconds one may take): ``MaxConcurrentTransforms`` (1 without it: the
    script-mode server has no ``/execution-parameters``) bounded by the model server's workers (one per
    CPU unless ``SAGEMAKER_MODEL_SERVER_WORKERS``) and this machine's cores, and
    ``SAGEMAKER_MODEL_SERVER_TIMEOUT`` (60 s)."""
    environment = job["Environment"]
    workers = int(environment.get("SAGEMAKER_MODEL_SERVER_WORKERS") or os.cpu_count() or 1)
    # the instance's vCPUs bound the workers on AWS; this machine's cores bound them here
    in_flight = min(job.get("MaxConcurrentTransforms") or 1, workers, os.cpu_count() or 1)
    return in_flight, float(environment.get("SAGEMAKER_MODEL_SERVER_TIMEOUT") or 60)


def mini_batches(path: str, limit: int):
    """The records of one input object, in mini-batches of at most ``limit`` bytes (one in memory)."""
    batch, size = [], 0
    with open(path, encoding="utf-8") as records:
        for line in records:
            record = line.rstrip("\r\n")
            if not record.strip():
                continue
            if batch and size + len(record) >= limit:
                yield batch
                batch, size = [], 0
            batch.append(record)
            size += len(record) + 1
    if batch:
        yield batch


def _answer_of_oldest(in_flight: collections.deque, timeout: float, pool, name: str) -> tuple[list[str], str]:
    """(records, answer) of the oldest mini-batch in flight; past the timeout the workers are stopped and
    the job fails, as the container's model server ends the request."""
    batch, pending, sent = in_flight.popleft()
    try:
        return batch, pending.get(max(0.0, timeout - (time.monotonic() - sent)))
    except multiprocessing.TimeoutError:
        pool.terminate()
        raise PipelineError(
            f"{name}: a mini-batch of {len(batch)} records was not answered within the model server's "
            f"timeout of {timeout:g} s (SAGEMAKER_MODEL_SERVER_TIMEOUT); lower MaxPayloadInMB or raise the timeout"
        ) from None


def run_job(folder: Path) -> None:
    """Run the job described in ``<folder>/job.json``; on failure, its reason in ``<folder>/failure``.

    Mini-batches go to a pool of worker processes, at most ``MaxConcurrentTransforms`` at a time, and one
    that takes longer than the model server's timeout fails the job, as the container's server ends it."""
    job = json.loads((folder / JOB_FILE).read_text())
    processing = job["DataProcessing"]
    os.environ.update(job["Environment"])
    _start_worker(str(folder), job["Environment"])  # a script or model that cannot load fails here, clearly
    in_flight_limit, timeout = server_settings(job)

    def joined(batch: list[str], text: str, name: str) -> list[str]:
        answers = [line for line in text.splitlines() if line.strip()]
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

    context = multiprocessing.get_context("spawn")  # XGBoost's OpenMP does not survive a fork
    ready = context.Barrier(in_flight_limit + 1)
    with context.Pool(in_flight_limit, _start_worker, (str(folder), job["Environment"], ready)) as pool:
        try:
            ready.wait(WORKERS_START_SECONDS)
        except threading.BrokenBarrierError:
            raise PipelineError(f"the model server's workers did not start within {WORKERS_START_SECONDS} s") from None
        for name, path in job["Inputs"]:
            in_flight: collections.deque = collections.deque()

            # whole or not at all, records in input order
            with atomic_file(folder / OUTPUT_DIR / f"{name}.out", "w", encoding="utf-8") as out:
                for batch in mini_batches(path, job["MaxPayloadInMB"] * 2**20):
                    body = "\n".join(_line(select(_row(r), processing["InputFilter"])) for r in batch)
                    arguments = (body, job["ContentType"], job["Accept"])
                    in_flight.append((batch, pool.apply_async(_invoke, arguments), time.monotonic()))
                    if len(in_flight) >= in_flight_limit:
                        out.writelines(joined(*_answer_of_oldest(in_flight, timeout, pool, name), name))
                while in_flight:
                    out.writelines(joined(*_answer_of_oldest(in_flight, timeout, pool, name), name))


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
