"""Batch scoring on Spark: every row, in input order, with its identifier, decision and reasons."""

import csv
import json

import numpy as np
import pytest

from churn_pipeline import data, explain, features, scoring, serving, training
from churn_pipeline.errors import DataValidationError, PipelineError


def read_scores(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def expected_scores(archive, manifest, lines):
    """The endpoint's own encoding and prediction of raw lines (header first)."""
    bundle = serving.load_bundle(archive, manifest)
    records = list(csv.DictReader(lines))
    matrix = features.encode_records(bundle.manifest["transform"], records)
    return [r["Phone"].strip() for r in records], np.asarray(bundle.predict(matrix)), matrix, bundle


def test_score_keeps_every_public_row_with_its_phone_in_input_order(spark, small_model, churn_txt, tmp_path):
    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    out = tmp_path / "scores.csv"
    scored = scoring.score_file(spark, archive, manifest, 0.3, str(churn_txt), out, explain_count=3)
    rows = read_scores(out)
    lines = churn_txt.read_text().splitlines()
    phones, scores, matrix, bundle = expected_scores(archive, manifest_path, lines)
    assert scored.rows == len(rows) == len(lines) - 1 == 3333
    assert [r["Phone"] for r in rows] == phones
    assert list(rows[0]) == ["Phone", "score", "decision", "reason_1", "contribution_1", "reason_2",
                             "contribution_2", "reason_3", "contribution_3"]
    written = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(written, scores, atol=1e-6)
    assert [r["decision"] for r in rows] == ["1" if s > 0.3 else "0" for s in written]
    assert scored.offers == sum(r["decision"] == "1" for r in rows) > 0
    per_column, _ = explain.contributions(bundle.booster, matrix, bundle.manifest)
    for row, expected in zip(rows[:50], explain.top_reasons(per_column, explain.reason_columns(manifest), 3)):
        assert [row[f"reason_{i}"] for i in (1, 2, 3)] == [reason["column"] for reason in expected]
        assert [float(row[f"contribution_{i}"]) for i in (1, 2, 3)] == pytest.approx(
            [reason["contribution"] for reason in expected], abs=2e-6)
    assert {row["reason_1"] for row in rows} <= set(explain.reason_columns(manifest))


def test_score_reads_records_without_the_label_and_keeps_order_across_partitions(spark, small_model, tmp_path):
    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    source = data.write_synthetic(tmp_path / "labelled.csv", rows=6000, seed=11)
    unlabelled = tmp_path / "customers.csv"
    with open(source, newline="") as handle, open(unlabelled, "w", newline="") as out:
        writer = csv.writer(out)
        for record in csv.reader(handle):
            writer.writerow(record[:-1])  # the label is the last raw column
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(128 * 1024))
    try:
        scored = scoring.score_file(spark, archive, manifest, 0.5, str(unlabelled), tmp_path / "scores.csv")
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    rows = read_scores(scored.path)
    phones, scores, _, _ = expected_scores(archive, manifest_path, source.read_text().splitlines())
    assert [r["Phone"] for r in rows] == phones
    np.testing.assert_allclose([float(r["score"]) for r in rows], scores, atol=1e-6)
    assert list(rows[0]) == ["Phone", "score", "decision"]


def test_pre_encoded_rows_are_named_by_their_line(spark, small_model, tmp_path):
    archive, manifest_path, etl_dir = small_model
    manifest = json.loads(manifest_path.read_text())
    channel = sorted((etl_dir / "test").glob("part-*.csv"))[0]
    scored = scoring.score_file(spark, archive, manifest, 0.5, str(channel), tmp_path / "scores.csv",
                                explain_count=1)
    rows = read_scores(scored.path)
    matrix, _ = training.read_channel(channel)
    booster = training.load_model_archive(archive)
    assert [r["row"] for r in rows] == [str(i) for i in range(1, len(matrix) + 1)]
    np.testing.assert_allclose([float(r["score"]) for r in rows], booster.inplace_predict(matrix), atol=1e-6)
    assert {r["reason_1"] for r in rows} <= set(explain.reason_columns(manifest))


def test_a_bad_row_is_named_as_in_a_run_and_nothing_is_written(spark, small_model, synthetic_csv, tmp_path):
    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    lines = synthetic_csv.read_text().splitlines()
    header = next(csv.reader([lines[0]]))
    fields = next(csv.reader([lines[42]]))
    fields[header.index("Day Mins")] = "n/a"
    lines[42] = ",".join(fields)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores.csv"
    with pytest.raises(DataValidationError, match=r"bad.csv, line 43, column 'Day Mins': value 'n/a' is not a number"):
        scoring.score_file(spark, archive, manifest, 0.5, str(bad), out)
    assert list(tmp_path.iterdir()) == [bad]  # no scores, no staging left behind
    out.write_text("earlier scores\n")
    with pytest.raises(PipelineError, match="scores.csv exists"):
        scoring.score_file(spark, archive, manifest, 0.5, str(synthetic_csv), out)
    assert out.read_text() == "earlier scores\n"
    narrow = tmp_path / "narrow.csv"
    narrow.write_text("0,1.5,2.5\n1,0.5,3.0\n")
    with pytest.raises(DataValidationError, match="pre-encoded rows have 2 features after the label, the model takes"):
        scoring.score_file(spark, archive, manifest, 0.5, str(narrow), tmp_path / "other.csv")
