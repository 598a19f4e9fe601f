"""The ETL job: raw CSV -> every row validated -> encoded -> stratified train/validation/test CSV parts
(label first, no header) + the feature manifest (column order, categories) + the training split's baseline
(Model Monitor's statistics.json and constraints.json); and its record for reuse."""

from __future__ import annotations

import json
from typing import Any

from .. import features
from ..monitoring import constraints_document
from ..names import BASELINE_CONSTRAINTS, BASELINE_STATISTICS, FEATURE_MANIFEST
from ..s3 import s3_storage
from ..storage import Storage
from .baseline import baseline, training_rows
from .encoding import encoded_frame
from .session import changed_settings
from .source import Source
from .split import PART_BYTES, cut_values, plan_segments, rows_per_split, write_splits
from .validation import scan

#: a source of at most this many bytes has its rows' orders kept by the scan (about 16 bytes a row in the
#: driver), which spares the split a pass to fetch the few it needs
KEEP_ORDERS_BYTES = 16 * 2**20

#: session settings for a source of at most one part per split: adaptive execution runs each shuffle's
#: first stage as a job of its own and re-plans after it, and a grouping's few rows need one task, not
#: four, after the shuffle: each costs a small file more than it saves
SMALL_SOURCE_SETTINGS = {"spark.sql.adaptive.enabled": "false", "spark.sql.shuffle.partitions": "1"}


def run_etl(
    spark,
    source: str,
    dest: str,
    train_key: str = "train",
    validation_key: str = "validation",
    test_key: str = "test",
    train_fraction: float = 0.7,
    validation_fraction: float = 0.2,
    seed: int = 42,
    storage: Storage | None = None,
    part_bytes: float = PART_BYTES,
) -> dict[str, Any]:
    """Validate ``source``, encode it and write the three splits and the feature manifest under ``dest``.

    Stratified split: the rows of each class are ordered by a seeded hash of
    their line, and a row's split and part follow from its percent rank in that
    order (``split``). Four passes over the input: check and count, fetch the
    cut buckets (not for a small input: the count keeps every order), write, and
    the training split's baseline.
    """
    storage = storage or s3_storage()
    source_bytes = storage.size(source)
    with changed_settings(spark, SMALL_SOURCE_SETTINGS if source_bytes <= part_bytes else {}):
        lines = Source(spark, source, storage)
        summary, counts, orders = scan(lines, seed, keep_orders=source_bytes <= KEEP_ORDERS_BYTES)
        frame, encoding = encoded_frame(lines, summary, seed)
        bounds = {
            train_key: (0.0, train_fraction),
            validation_key: (train_fraction, train_fraction + validation_fraction),
            test_key: (train_fraction + validation_fraction, 1.0),
        }
        segments, quantiles = plan_segments(bounds, source_bytes, part_bytes)
        # the last segment takes every row left: its upper quantile is no cut
        cuts, below_counts = cut_values(lines, seed, counts, quantiles[:-1], orders)
        base = dest.rstrip("/")
        parts = write_splits(spark, frame, cuts, segments, base, storage)
        train_segments = [number for number, (key, _) in enumerate(segments) if key == train_key]
        statistics = baseline(
            training_rows(lines, seed, cuts, train_segments), *lines.format.monitored_columns(), summary.categories
        )
        storage.write_text(f"{base}/{BASELINE_STATISTICS}", json.dumps(statistics, indent=2))
        storage.write_text(f"{base}/{BASELINE_CONSTRAINTS}", json.dumps(constraints_document(statistics), indent=2))
        manifest = {
            "format": lines.format.name,
            "source": source,
            "label": lines.format.label,
            "features": [step["feature"] for step in encoding],
            features.ENCODING_KEY: encoding,
            "categories": summary.categories,
            "dropped": list(lines.format.dropped),
            "rows": rows_per_split(bounds, segments, counts, below_counts),
            "parts": parts,
            "positives": summary.positives,
            "splits": {"train": train_key, "validation": validation_key, "test": test_key},
            "seed": seed,
            "baseline": {"statistics": BASELINE_STATISTICS, "constraints": BASELINE_CONSTRAINTS},
        }
        storage.write_text(f"{base}/{FEATURE_MANIFEST}", json.dumps(manifest, indent=2))
        return manifest


def write_etl_record(
    record_uri: str, key: str, run_id: str, manifest: dict[str, Any], storage: Storage | None = None
) -> dict[str, Any]:
    """Record a finished ETL output under its key, so a later run with the same inputs reuses it
    (the output is that run's ETL folder)."""
    record = {"etl_key": key, "run_id": run_id, "rows": manifest["rows"]}
    (storage or s3_storage()).write_text(record_uri, json.dumps(record, indent=2, sort_keys=True))
    return record
