"""The one error hierarchy of the pipeline: every failure a user can cause is a PipelineError."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a failure with a message meant for the person running the pipeline."""


class ConfigError(PipelineError):
    """A parameter is unknown, of the wrong type, or out of range; names the key."""


class EnvironmentProblem(PipelineError):
    """The machine lacks something the pipeline needs (Java, a package, a folder)."""


class SparkWorkerLostError(EnvironmentProblem):
    """The warm local Spark worker a job run used died under it (as a Glue job whose executors were lost)."""


class DataValidationError(PipelineError):
    """The input data is unusable; names the file and, where known, the line and column.

    ``line`` is the 1-based line of the file (the header, when there is one, is line 1).
    """

    def __init__(self, source: str, problem: str, line: int | None = None, column: str | None = None):
        self.source, self.problem, self.line, self.column = source, problem, line, column
        where = [source]
        if line is not None:
            where.append(f"line {line}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {problem}")


class StorageError(PipelineError):
    """The object store refused or failed an operation (access denied, throttling, no credentials);
    names the URI. A missing input is a DataValidationError instead: the data's problem, not the store's."""

    def __init__(self, uri: str, problem: str):
        self.uri, self.problem = uri, problem
        super().__init__(f"{uri}: {problem}")


class MissingColumns(DataValidationError):
    """A header lacks columns the format or the model's encoding needs (the request is well formed: the
    endpoint answers 400, as for rows of the wrong width)."""

    def __init__(self, source: str, missing: list[str]):
        self.missing = missing
        super().__init__(source, f"missing columns: {', '.join(missing)}", line=1)


class RegistryError(PipelineError):
    """The model registry refused or failed an operation."""


class DuplicateRunError(RegistryError):
    """A registry record for this run id exists already; nothing was changed."""


class RecordNotFound(RegistryError):
    """No registry record has this run id."""


class DecisionExists(RegistryError):
    """The run's decision (cutoff and costs) is recorded already, with other values; nothing was changed."""


class StateMachineError(PipelineError):
    """The state-machine definition is invalid or uses something the local executor does not run."""


class ExecutionFailed(PipelineError):
    """A state-machine execution ended in a Fail state or an uncaught task error."""

    def __init__(self, state: str, error: str, cause: str):
        self.state, self.error, self.cause = state, error, cause
        super().__init__(f"execution failed in state {state!r}: {error}: {cause}")


class TaskFailed(PipelineError):
    """A task runner failed; ``error`` is the States error name Retry/Catch match against."""

    def __init__(self, error: str, cause: str):
        self.error, self.cause = error, cause
        super().__init__(f"{error}: {cause}")


class NotebookFailed(PipelineError):
    """A notebook cell raised: the notebook, the cell (1-based, as a person counts it; None when the
    kernel died), its source, and the error's name and value."""

    def __init__(self, notebook: str, cell: int | None, source: str, ename: str, evalue: str):
        self.notebook, self.cell, self.source, self.ename, self.evalue = notebook, cell, source, ename, evalue
        super().__init__(f"notebook {notebook} failed in {self.where}")

    @property
    def where(self) -> str:
        first_line = next((line.strip() for line in self.source.splitlines() if line.strip()), "")
        cell = f"cell {self.cell} (`{first_line[:60]}`): " if self.cell is not None else ""
        return f"{cell}{self.ename}: {self.evalue}"
