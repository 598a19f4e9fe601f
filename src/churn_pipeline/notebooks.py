"""The three notebooks: executed by papermill, kept as audit pages without volatile paths, and a
failing cell named as a person counts it."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import workspace
from .errors import NotebookFailed
from .storage import write_atomic

NOTEBOOKS = ("01-etl-setup.ipynb", "02-train-workflow.ipynb", "03-register-and-export.ipynb")
WORKFLOW_NOTEBOOK = NOTEBOOKS[1]
#: the fourth notebook, run on its own by ``churn-pipeline monitor`` (after a run, in the committed copies)
MONITOR_NOTEBOOK = "04-monitor.ipynb"


def scrub(text: str, replacements: list[tuple[str, str]]) -> str:
    for old, new in replacements:
        text = text.replace(old, new)
    return text


def path_replacements(root: Path) -> list[tuple[str, str]]:
    """Absolute paths that must not appear in a kept notebook, longest first, with what replaces them."""
    pairs = {str(root): ".", str(Path.home()): "~"}
    for name in (workspace.HOME_ENV, workspace.ARTIFACTS_ENV):
        value = os.environ.get(name)
        if value:
            pairs[str(Path(value).resolve())] = f"${name}"
    return sorted(((k, v) for k, v in pairs.items() if k not in ("", "/")), key=lambda kv: -len(kv[0]))


def sanitise_notebook(path: Path, replacements: list[tuple[str, str]]) -> None:
    """Replace absolute paths in an executed notebook (outputs and metadata), in place."""
    escaped = [(json.dumps(old)[1:-1], json.dumps(new)[1:-1]) for old, new in replacements]
    write_atomic(path, scrub(path.read_text(), escaped))


#: the audit pages' template (``templates/audit``): JupyterLab's, loading nothing from a CDN
AUDIT_TEMPLATE = "audit"


def render_html(notebook: Path) -> Path:
    """The executed notebook as the HTML page a reviewer opens from the build's artifacts: self-contained
    (styles inline, images embedded, no script from a CDN), so it renders offline."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        extra_template_basedirs=[str(Path(__file__).parent / "templates")], template_name=AUDIT_TEMPLATE
    )
    resources = {"metadata": {"name": notebook.stem}}  # the page's title: the notebook's name
    body, _ = exporter.from_notebook_node(nbformat.read(notebook, as_version=4), resources=resources)
    return write_atomic(notebook.with_suffix(".html"), body)


#: the kernel every notebook runs in (one started ahead is the one papermill would start)
KERNEL_NAME = "python3"
#: the kernel's start-up warnings are noise on the run's console
KERNEL_ARGUMENTS = ["--IPKernelApp.log_level=ERROR"]
#: what every notebook's first cell imports (``%matplotlib inline`` imports pyplot, with the inline backend
#: the kernel sets before these run): a kernel started ahead has it imported when its notebook starts
KERNEL_IMPORTS = "import churn_pipeline.config, churn_pipeline.reports, churn_pipeline.workflow, matplotlib.pyplot"


class Background:
    """What a run does beside the notebook that runs: the pages of the notebooks before it rendered (2 s
    a run, most of it importing nbconvert, which starts at once) and the kernel of the notebook after it
    started, its package imported (1-1.5 s a notebook). Leaving the ``with`` block waits for every page,
    raising the first rendering error, and shuts a kernel no notebook took down."""

    def __init__(self, cwd: Path):
        # what a notebook's run imports, imported here first: two threads importing one package's modules
        # at once can each see the other's half-initialised module
        import jupyter_client.manager  # noqa: F401
        import papermill  # noqa: F401

        self.cwd = cwd
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-pages")
        self._pending = [self._pool.submit(_import_exporter)]
        self._kernel = None

    def render(self, notebook: Path) -> None:
        self._pending.append(self._pool.submit(render_html, notebook))

    async def start_kernel(self, **_hook_arguments) -> None:
        """The next notebook's kernel (an nbclient hook: called once the running notebook's kernel is ready,
        so the two do not start at once). One that cannot start is no error of the running notebook's:
        none is kept, and the next notebook starts its own as papermill does, failing there if it must."""
        if self._kernel is not None:
            return
        kernel = _kernel_manager()
        try:
            await kernel.start_kernel(
                extra_arguments=[
                    *KERNEL_ARGUMENTS,
                    "--HistoryManager.hist_file=:memory:",  # as nbclient starts a kernel
                    f"--IPKernelApp.exec_lines={KERNEL_IMPORTS}",
                ],
                cwd=str(self.cwd),
            )
        except Exception:
            if kernel.has_kernel:
                await kernel.shutdown_kernel(now=True)
            return
        self._kernel = kernel

    def start_kernel_now(self) -> None:
        """The next notebook's kernel, started outside nbclient (the run's first notebook's)."""
        from jupyter_core.utils import run_sync

        run_sync(self.start_kernel)()

    def take_kernel(self):
        """The kernel started ahead (None when none was), now the caller's to stop."""
        kernel, self._kernel = self._kernel, None
        return kernel

    def __enter__(self) -> Background:
        return self

    def __exit__(self, error_type, *_exc) -> None:
        try:
            if self._kernel is not None:
                stop_kernel(self.take_kernel())
            if error_type is None:  # an error on its way out (a Ctrl-C) is not hidden by a page's
                for pending in self._pending:
                    pending.result()
        finally:
            self._pool.shutdown(cancel_futures=error_type is not None)


def _import_exporter() -> None:
    from nbconvert import HTMLExporter  # noqa: F401


def _kernel_manager():
    """A kernel manager that remembers its clients: nbclient leaves the channels of a kernel it was
    given open, and ``stop_kernel`` closes them."""
    from jupyter_client.manager import AsyncKernelManager

    class KernelWithClients(AsyncKernelManager):
        def client(self, **kwargs):
            client = super().client(**kwargs)
            self.clients.append(client)
            return client

    kernel = KernelWithClients(kernel_name=KERNEL_NAME)
    kernel.clients = []
    return kernel


def stop_kernel(kernel) -> None:
    """Its clients' channels closed and the kernel shut down, unless nbclient did (it shuts down a kernel
    it was given that died before its notebook started)."""
    from jupyter_core.utils import run_sync

    for client in kernel.clients:
        if client.channels_running:
            client.stop_channels()
    if kernel.context.closed:  # nbclient cleaned it up
        return
    if run_sync(kernel.is_alive)():
        run_sync(kernel.shutdown_kernel)()
    else:
        run_sync(kernel.cleanup_resources)()


def notebook_failure(executed: Path, error: Exception) -> NotebookFailed:
    """The failing cell (1-based, as a person counts in the executed notebook), its source and error."""
    if executed.exists():
        import nbformat

        notebook = nbformat.read(executed, as_version=4)
        for number, cell in enumerate(notebook.cells, start=1):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    return NotebookFailed(executed.name, number, cell.source, output.get("ename"), output.get("evalue"))
    # papermill's own error names the cell it stopped in; a kernel that died names none
    return NotebookFailed(
        executed.name,
        getattr(error, "cell_index", None),
        getattr(error, "source", ""),
        getattr(error, "ename", type(error).__name__),
        getattr(error, "evalue", str(error)),
    )


def execute_notebook(
    name: str,
    params: dict[str, Any],
    out: Path,
    progress: bool,
    background: Background | None = None,
    next_kernel: bool = False,
) -> tuple[dict[str, Any], NotebookFailed | None]:
    """Run notebook ``name`` with ``params`` into ``out`` and keep it (sanitised, with its HTML); its
    entry for the run's summary, and its failure if a cell raised. ``progress``: papermill's cell bar,
    in a terminal only. With ``background``: in the kernel it started, its page rendered there, and
    (``next_kernel``) the next notebook's kernel started there once this one's is ready."""
    import papermill

    root = workspace.project_root()
    started = time.perf_counter()
    entry: dict[str, Any] = {"notebook": name, "status": "succeeded"}
    failure = None
    kernel = background.take_kernel() if background else None
    hooks = {"on_notebook_start": background.start_kernel} if background and next_kernel else {}
    try:
        papermill.execute_notebook(
            str(root / "notebooks" / name),
            str(out / name),
            parameters=params,
            cwd=str(root / "notebooks"),
            kernel_name=KERNEL_NAME,
            progress_bar=progress and sys.stderr.isatty(),  # a bar in a log is a line of carriage returns
            log_output=False,
            extra_arguments=KERNEL_ARGUMENTS,
            km=kernel,
            **hooks,
        )
    except Exception as exc:  # papermill raises its own errors and kernel failures alike
        failure = notebook_failure(out / name, exc)
        entry.update(status="failed", error=failure.where)
    finally:
        if kernel is not None:
            stop_kernel(kernel)
        entry["seconds"] = round(time.perf_counter() - started, 2)
        if (out / name).exists():
            sanitise_notebook(out / name, path_replacements(root))
            if background is None:
                render_html(out / name)
            else:
                background.render(out / name)
    return entry, failure


def kernel_environment(root: Path) -> None:
    """Kernels are started by name: make ``python3`` this interpreter, finding this checkout."""
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ[workspace.PROJECT_ENV] = str(root)


def refresh_committed_notebooks(names: tuple[str, ...] = (*NOTEBOOKS, MONITOR_NOTEBOOK)) -> None:
    """Re-execute the committed notebooks in place with their default parameters, in a fresh home.

    These outputs are what nbval compares every later run against.
    """
    import nbformat
    from nbclient import NotebookClient

    root = workspace.project_root()
    with tempfile.TemporaryDirectory(prefix="churn-notebooks-") as scratch:
        os.environ[workspace.HOME_ENV] = os.path.join(scratch, "home")
        os.environ[workspace.ARTIFACTS_ENV] = os.path.join(scratch, "artifacts")
        kernel_environment(root)
        replacements = path_replacements(root)
        for name in names:
            path = root / "notebooks" / name
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(
                notebook,
                timeout=900,
                kernel_name=KERNEL_NAME,
                record_timing=False,
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
            nbformat.write(notebook, path)
            sanitise_notebook(path, replacements)
