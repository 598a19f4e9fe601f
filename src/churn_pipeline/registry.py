"""The model registry: one record per run, written exactly once.

One interface, one implementation per backend, looked up by URL scheme:
``sqlite:///path/registry.db`` locally (``dynamodb://table`` on AWS).

The gate writes a record; notebook 03 then adds the run's decision (the
cost-chosen cutoff and the costs it was chosen for) once, by a conditional
update: a decision is never replaced, so the cutoff an endpoint used stays
on record.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from .aws_errors import ConditionalCheckFailed, error_code
from .errors import ConfigError, DecisionExists, DuplicateRunError, RecordNotFound, RegistryError

TABLE_ENV = "MODEL_REGISTRY_TABLE"
URL_ENV = "MODEL_REGISTRY_URL"


@dataclass(frozen=True)
class RegistryRecord:
    run_id: str
    created_at: str
    environment: str
    algorithm: str
    model_name: str
    model_data_url: str
    training_job_name: str
    metrics: dict[str, float]
    hyperparameters: dict[str, str]
    data_uri: str
    data_sha256: str
    threshold: float
    status: str
    image: str = ""
    git_commit: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: the cost-chosen cutoff and its costs (``evaluation.ScoreTally.cost_cutoff``), once notebook 03 chose it
    decision: dict[str, float] | None = None

    @property
    def cutoff(self) -> float | None:
        """The probability above which this model's customers get an offer; None until it is decided."""
        return None if self.decision is None else float(self.decision["cutoff"])

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> RegistryRecord:
        names = {f.name for f in fields(cls)}
        missing = sorted(n for n in names if n not in values and n not in OPTIONAL_FIELDS)
        if missing:
            raise RegistryError(f"registry record is missing {', '.join(missing)}")
        unknown = sorted(set(values) - names)
        if unknown:
            raise RegistryError(f"registry record has unknown fields {', '.join(unknown)}")
        if not values["run_id"]:
            raise RegistryError("registry record has an empty run_id")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class ModelRegistry(ABC):
    """Where models that passed the gate are recorded."""

    @abstractmethod
    def register(self, record: RegistryRecord) -> None:
        """Write the record; raise DuplicateRunError (changing nothing) if the run id exists."""

    @abstractmethod
    def record_decision(self, run_id: str, decision: dict[str, float]) -> RegistryRecord:
        """Add the run's decision once. The same decision again changes nothing; another one raises
        DecisionExists, a missing record RecordNotFound (and nothing is written)."""

    @abstractmethod
    def get(self, run_id: str) -> RegistryRecord:
        """The record of ``run_id``; RecordNotFound if there is none."""

    @abstractmethod
    def list(self) -> list[RegistryRecord]:
        """All records, newest first."""


OPTIONAL_FIELDS = ("image", "git_commit", "extra", "decision")
_JSON_FIELDS = ("metrics", "hyperparameters", "extra", "decision")
_COLUMNS = [f.name for f in fields(RegistryRecord)]


#: what makes two decisions the same (the other values are derived from these and the test split)
DECISION_KEYS = ("cutoff", "retention_offer_cost", "churn_loss")


def check_decision(record: RegistryRecord, decision: dict[str, float], where: str) -> RegistryRecord:
    """After a conditional write was refused: the record, if it holds this decision (the same cutoff
    for the same costs)."""
    if record.decision is None:
        raise RegistryError(
            f"the decision of run {record.run_id!r} was refused in {where}, yet its record holds "
            "none; nothing was changed"
        )
    if any(record.decision.get(k) != decision.get(k) for k in DECISION_KEYS):
        raise DecisionExists(
            f"run {record.run_id!r} already decided at cutoff {record.cutoff} (retention_offer_cost "
            f"{record.decision['retention_offer_cost']}, churn_loss {record.decision['churn_loss']}) in {where}; "
            "a decision is recorded once: start a new run to decide with other costs"
        )
    return record


class SqliteRegistry(ModelRegistry):
    """A SQLite file; ``run_id`` is the primary key, so a second write fails atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS models ("
                + ", ".join(f"{c} TEXT" if c != "run_id" else "run_id TEXT PRIMARY KEY" for c in _COLUMNS)
                + ")"
            )
            known = {row[1] for row in db.execute("PRAGMA table_info(models)")}
            for column in _COLUMNS:
                if column not in known:  # a registry written before the column existed
                    db.execute(f"ALTER TABLE models ADD COLUMN {column} TEXT")

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot open registry {self.path}: {exc}") from exc
        return db

    def register(self, record: RegistryRecord) -> None:
        values = record.to_dict()
        row = [
            None
            if values[c] is None
            else json.dumps(values[c], sort_keys=True)
            if c in _JSON_FIELDS or c == "threshold"
            else values[c]
            for c in _COLUMNS
        ]
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute(f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})", row)
            db.execute("COMMIT")
        except sqlite3.IntegrityError as exc:
            db.execute("ROLLBACK")
            raise DuplicateRunError(
                f"run {record.run_id!r} is already registered in {self.path}; nothing was changed"
            ) from exc
        except sqlite3.Error as exc:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise RegistryError(f"cannot write run {record.run_id!r} to {self.path}: {exc}") from exc
        finally:
            db.close()

    def record_decision(self, run_id: str, decision: dict[str, float]) -> RegistryRecord:
        db = self._connect()
        try:
            changed = db.execute(
                "UPDATE models SET decision = ? WHERE run_id = ? AND decision IS NULL",
                (json.dumps(decision, sort_keys=True), run_id),
            ).rowcount
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot write the decision of run {run_id!r} to {self.path}: {exc}") from exc
        finally:
            db.close()
        record = self.get(run_id)
        return record if changed else check_decision(record, decision, self.path)

    def _record(self, row: sqlite3.Row) -> RegistryRecord:
        values = dict(zip(_COLUMNS, row))
        for name in (*_JSON_FIELDS, "threshold"):
            if values[name] is not None:
                values[name] = json.loads(values[name])
        if values["extra"] is None:
            values["extra"] = {}
        return RegistryRecord(**values)

    def get(self, run_id: str) -> RegistryRecord:
        db = self._connect()
        try:
            row = db.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE run_id = ?", (run_id,)).fetchone()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot read registry {self.path}: {exc}") from exc
        finally:
            db.close()
        if row is None:
            raise RecordNotFound(f"no registry record for run {run_id!r} in {self.path}")
        return self._record(row)

    def list(self) -> list[RegistryRecord]:
        db = self._connect()
        try:
            rows = db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM models ORDER BY created_at DESC, run_id DESC"
            ).fetchall()
        except sqlite3.Error as exc:
            raise RegistryError(f"cannot read registry {self.path}: {exc}") from exc
        finally:
            db.close()
        return [self._record(r) for r in rows]


class DynamoDbRegistry(ModelRegistry):
    """A DynamoDB table keyed by ``run_id``; the write is conditional, so a run is recorded once."""

    def __init__(self, table: str, client=None):
        self.table = table
        if client is None:
            import boto3

            client = boto3.client("dynamodb")
        self.client = client

    @staticmethod
    def _item(record: RegistryRecord) -> dict[str, dict[str, str]]:
        item = {}
        for name, value in record.to_dict().items():
            if name == "decision" and value is None:
                continue  # absent until decided: the decision's write is conditional on its absence
            if name in _JSON_FIELDS:
                item[name] = {"S": json.dumps(value, sort_keys=True)}
            elif name == "threshold":
                item[name] = {"N": repr(float(value))}
            elif value is None:
                item[name] = {"NULL": True}
            else:
                item[name] = {"S": str(value)}
        return item

    @staticmethod
    def _record(item: dict[str, dict[str, Any]]) -> RegistryRecord:
        values: dict[str, Any] = {}
        for name, typed in item.items():
            kind, value = next(iter(typed.items()))
            if kind == "NULL":
                values[name] = None
            elif name in _JSON_FIELDS:
                values[name] = json.loads(value)
            elif kind == "N":
                values[name] = float(value)
            else:
                values[name] = value
        return RegistryRecord.from_mapping(values)

    def _call(self, operation: str, run_id: str | None, refused: Callable[[], RegistryRecord] | None = None, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, operation)(TableName=self.table, **kwargs)
        except ClientError as exc:
            code = error_code(exc)
            if ConditionalCheckFailed.matches(exc):
                if refused is not None:
                    return refused()
                raise DuplicateRunError(
                    f"run {run_id!r} is already registered in table {self.table}; nothing was changed"
                ) from exc
            raise RegistryError(
                f"registry table {self.table}: {operation} failed: {code}: {exc.response['Error'].get('Message', '')}"
            ) from exc
        except BotoCoreError as exc:
            raise RegistryError(f"registry table {self.table}: {operation} failed: {exc}") from exc

    def register(self, record: RegistryRecord) -> None:
        self._call(
            "put_item", record.run_id, Item=self._item(record), ConditionExpression="attribute_not_exists(run_id)"
        )

    def record_decision(self, run_id: str, decision: dict[str, float]) -> RegistryRecord:
        where = f"table {self.table}"
        self._call(
            "update_item",
            run_id,
            refused=lambda: check_decision(self.get(run_id), decision, where),
            Key={"run_id": {"S": run_id}},
            UpdateExpression="SET decision = :decision",
            ConditionExpression="attribute_exists(run_id) AND attribute_not_exists(decision)",
            ExpressionAttributeValues={":decision": {"S": json.dumps(decision, sort_keys=True)}},
        )
        return self.get(run_id)

    def get(self, run_id: str) -> RegistryRecord:
        item = self._call("get_item", run_id, Key={"run_id": {"S": run_id}}, ConsistentRead=True).get("Item")
        if item is None:
            raise RecordNotFound(f"no registry record for run {run_id!r} in table {self.table}")
        return self._record(item)

    def list(self) -> list[RegistryRecord]:
        records, start = [], None
        while True:
            page = self._call("scan", None, **({"ExclusiveStartKey": start} if start else {}))
            records += [self._record(item) for item in page.get("Items", [])]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        return sorted(records, key=lambda r: (r.created_at, r.run_id), reverse=True)


def migrate_registry(legacy: str | os.PathLike, target: str | os.PathLike, environment: str) -> int:
    """Copy ``environment``'s records of a registry file every environment shared into ``target`` (a
    new file, whole or not at all); how many were copied. The shared file is left as it was."""
    SqliteRegistry(legacy)  # brings an older file's columns up to date
    staged = f"{os.fspath(target)}.partial"
    with contextlib.suppress(FileNotFoundError):
        os.remove(staged)
    os.makedirs(os.path.dirname(os.path.abspath(staged)), exist_ok=True)
    with contextlib.closing(sqlite3.connect(legacy)) as source, contextlib.closing(sqlite3.connect(staged)) as out:
        source.backup(out)
        out.execute("PRAGMA journal_mode=DELETE")  # one file, nothing left in a write-ahead log
        out.execute("DELETE FROM models WHERE environment IS NOT ?", (environment,))
        others = out.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name != 'models'").fetchall()
        for (table,) in others:
            out.execute(f'DROP TABLE "{table}"')
        out.commit()
        copied = out.execute("SELECT COUNT(*) FROM models").fetchone()[0]
    os.replace(staged, target)
    return copied


REGISTRIES: dict[str, Callable[[str], ModelRegistry]] = {
    "sqlite": lambda location: SqliteRegistry(location),
    "dynamodb": lambda location: DynamoDbRegistry(location),
}


def open_registry(url: str) -> ModelRegistry:
    """A registry by URL: ``sqlite:///abs/path.db``, ``sqlite://relative/path.db`` or ``dynamodb://TABLE``."""
    scheme, sep, location = url.partition("://")
    if not sep or scheme not in REGISTRIES:
        raise ConfigError(f"registry URL {url!r} must start with one of: " + ", ".join(f"{s}://" for s in REGISTRIES))
    return REGISTRIES[scheme](location)


def registry_from_environment() -> ModelRegistry:
    """The registry a Lambda handler writes to: ``MODEL_REGISTRY_URL``, else the DynamoDB table."""
    url = os.environ.get(URL_ENV)
    if url:
        return open_registry(url)
    table = os.environ.get(TABLE_ENV, "").strip()
    if not table:
        raise ConfigError(f"set {TABLE_ENV} (the registry table name) or {URL_ENV}")
    return open_registry(f"dynamodb://{table}")
