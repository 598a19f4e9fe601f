"""The router of a local environment: one port per environment, forwarding to its active model server.

It also answers SageMaker Runtime's ``POST /endpoints/<environment>/invocations``,
so application code using boto3's ``sagemaker-runtime`` client works against a
local deploy. The active server is read from ``active.json``, which a deploy or
rollback replaces atomically.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import workspace
from .backends.local.common import ACCOUNT

#: SageMaker Runtime's InvokeEndpoint path; the endpoint's name is the environment's
RUNTIME_PATH = re.compile(r"^/endpoints/([^/?]+)/invocations$")


#: what the runtime passes from the request to the container, and back from it
RUNTIME_REQUEST_HEADERS = ("Content-Type", "Accept", "X-Amzn-SageMaker-Custom-Attributes")


VARIANT = "AllTraffic"


def runtime_error(kind: str, status: int, message: str, **members: Any) -> tuple[int, dict[str, str], bytes]:
    """An error in the runtime API's shape (rest-json: the code in ``x-amzn-ErrorType``, members in the body)."""
    return (
        status,
        {"x-amzn-ErrorType": kind, "Content-Type": "application/json"},
        json.dumps({"message": message, **members}).encode(),
    )


class ActiveServer:
    """The port of an environment's active model server, re-read when ``active.json`` changes."""

    def __init__(self, active_file: Path):
        self.active_file, self.mtime, self.port = active_file, None, None

    def __call__(self) -> int | None:
        try:
            mtime = self.active_file.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime != self.mtime:
            self.mtime, self.port = mtime, json.loads(self.active_file.read_text())["port"]
        return self.port


class RouterHandler(BaseHTTPRequestHandler):
    """Requests of one environment (``environment``), sent to its active server (``upstream()``)."""

    protocol_version = "HTTP/1.1"
    environment: str
    upstream: ActiveServer

    def _forward(self):
        target = self.upstream()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        if target is None:
            if self.path == "/ping":  # the router itself is up; nothing is deployed yet
                return self._reply(200, b"", "text/plain")
            return self._reply(503, b"no model is deployed to this environment\n", "text/plain")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
        connection = http.client.HTTPConnection("127.0.0.1", target, timeout=60)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            self._reply(response.status, response.read(), response.getheader("Content-Type", "text/plain"))
        except OSError as exc:
            self._reply(502, f"the active model server is unreachable: {exc}\n".encode(), "text/plain")
        finally:
            connection.close()

    def _reply(self, status: int, body: bytes, kind: str, headers: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", kind)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _runtime_error(self, kind: str, status: int, message: str, **members: Any):
        status, headers, text = runtime_error(kind, status, message, **members)
        return self._reply(status, text, headers.pop("Content-Type"), headers)

    def _invoke(self, name: str):
        """InvokeEndpoint as the runtime does it: the container's answer passed through, or its
        failure as ModelError (424, with the original status and message)."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.upstream()
        if name != self.environment or target is None:
            return self._runtime_error("ValidationError", 400, f"Endpoint {name} of account {ACCOUNT} not found.")
        forwarded = {k: self.headers[k] for k in RUNTIME_REQUEST_HEADERS if self.headers.get(k) is not None}
        connection = http.client.HTTPConnection("127.0.0.1", target, timeout=60)
        try:
            connection.request("POST", "/invocations", body=body, headers=forwarded)
            response = connection.getresponse()
            answer = response.read()
        except OSError as exc:
            return self._runtime_error("ServiceUnavailable", 503, f"the model server of {name} is unreachable: {exc}")
        finally:
            connection.close()
        if response.status >= 300:
            original = answer.decode(errors="replace").strip()
            kind = "client" if response.status < 500 else "server"
            return self._runtime_error(
                "ModelError",
                424,
                f'Received {kind} error ({response.status}) from primary with message "{original}".',
                OriginalStatusCode=response.status,
                OriginalMessage=original,
            )
        passed = {"x-Amzn-Invoked-Production-Variant": VARIANT}
        if response.getheader("X-Amzn-SageMaker-Custom-Attributes"):
            passed["X-Amzn-SageMaker-Custom-Attributes"] = response.getheader("X-Amzn-SageMaker-Custom-Attributes")
        self._reply(200, answer, response.getheader("Content-Type", "application/octet-stream"), passed)

    def do_POST(self):
        runtime = RUNTIME_PATH.match(self.path)
        if runtime:
            return self._invoke(runtime.group(1))
        return self._forward()

    def do_GET(self):
        return self._forward()

    def log_message(self, *args):  # no access log
        return


def route(environment: str, port: int, home: Path | None = None) -> None:
    """Serve ``environment``'s router on ``port`` until SIGTERM."""
    active_file = Path(home or workspace.home()) / "endpoints" / environment / "active.json"
    handler = type("Router", (RouterHandler,), {"environment": environment, "upstream": ActiveServer(active_file)})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()
