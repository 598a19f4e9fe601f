"""Data capture in SageMaker's format: what an endpoint was asked and answered, for a monitor to read.

One JSON line per captured request (row SM-DATA-CAPTURE): ``captureData.endpointInput`` and
``endpointOutput`` (``observedContentType``, ``mode``, ``data``, ``encoding``), ``eventMetadata``
(``eventId``, ``inferenceTime``, and ``inferenceId`` when the caller gave one) and ``eventVersion``, in
files under ``<folder>/<endpoint>/<variant>/yyyy/mm/dd/hh/``: the layout SageMaker writes to its
``DestinationS3Uri``, so a reader of one reads the other.
"""

from __future__ import annotations

import base64
import json
import os
import random
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import PipelineError
from .inference import media_type

#: InvokeEndpoint's ``InferenceId``, as the runtime passes it to the container
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
VARIANT = "AllTraffic"


def captured_data(content_type: str, body: bytes, mode: str) -> dict[str, str]:
    """One side of a request: CSV and JSON as text, anything else base64, as SageMaker encodes them."""
    kind, _ = media_type(content_type)
    encoding = (
        "CSV" if kind == "text/csv" else "JSON" if kind in ("application/json", "application/jsonlines") else None
    )
    if encoding:
        try:
            return {"observedContentType": content_type, "mode": mode, "data": body.decode(), "encoding": encoding}
        except UnicodeDecodeError:
            pass
    data = base64.b64encode(body).decode()
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": "BASE64"}


def capture_record(request: tuple[str, bytes], answer: tuple[str, bytes], when: datetime, inference_id: str | None):
    """The capture line of one request: (content type, body) asked and answered."""
    metadata: dict[str, Any] = {
        "eventId": str(uuid.uuid4()),
        "inferenceTime": when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if inference_id:
        metadata["inferenceId"] = inference_id
    return {
        "captureData": {
            "endpointInput": captured_data(*request, "INPUT"),
            "endpointOutput": captured_data(*answer, "OUTPUT"),
        },
        "eventMetadata": metadata,
        "eventVersion": "0",
    }


class CaptureWriter:
    """Writes a sample (``percent`` of requests) of one endpoint variant's traffic; each process to files of
    its own, a line at a time, so concurrent workers never interleave."""

    def __init__(self, folder: str | os.PathLike, endpoint: str, percent: float, variant: str = VARIANT):
        if not 0 <= percent <= 100:
            raise PipelineError(f"capture percentage {percent} is not between 0 and 100")
        self.folder, self.endpoint, self.variant, self.percent = Path(folder), endpoint, variant, percent
        self.name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"

    def sampled(self) -> bool:
        return self.percent >= 100 or random.random() * 100 < self.percent

    def path(self, when: datetime) -> Path:
        hour = when.astimezone(timezone.utc).strftime("%Y/%m/%d/%H")
        return self.folder / self.endpoint / self.variant / hour / self.name

    def write(self, request: tuple[str, bytes], answer: tuple[str, bytes], inference_id: str | None = None) -> None:
        when = datetime.now(timezone.utc)
        path = self.path(when)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(capture_record(request, answer, when, inference_id)) + "\n")
