import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BAD_ENCODED, BAD_RAW, ROOT, write_lines

from churn_pipeline import data, profiling, synthetic, training
from churn_pipeline.errors import DataValidationError, EnvironmentProblem
from churn_pipeline.etl import job as etl_job
from churn_pipeline.etl import validation as etl_validation
from churn_pipeline.etl.encoding import encoded_frame
from churn_pipeline.etl.session import require_java
from churn_pipeline.etl.source import Source
from churn_pipeline.etl.split import _rows_below
from churn_pipeline.names import BASELINE_CONSTRAINTS, BASELINE_STATISTICS, FEATURE_MANIFEST
from churn_pipeline.s3 import S3Objects


def _split_bytes(dest: Path) -> dict[str, bytes]:
    return {
        key: b"".join(f.read_bytes() for f in training.channel_files(dest / key))
        for key in ("train", "validation", "test")
    }


def test_transform_encodes_splits_and_writes_manifest(spark, synthetic_csv, tmp_path):
    manifest = etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "out"), seed=11)
    assert sum(manifest["rows"].values()) == 1500
    assert abs(manifest["rows"]["train"] - 1050) <= 2 and abs(manifest["rows"]["validation"] - 300) <= 2
    assert "Phone" not in manifest["features"]
    assert not set(data.CHARGES) & set(manifest["features"])  # the tariff's copies of the minutes
    assert manifest["features"][: len(data.NUMERIC) + len(data.TOTALS)] == data.NUMERIC + list(data.TOTALS)
    assert "State_KS" in manifest["features"] and "Int'l Plan_yes" in manifest["features"]
    on_disk = json.loads((tmp_path / "out" / FEATURE_MANIFEST).read_text())
    assert on_disk["features"] == manifest["features"]
    features, labels = training.read_channel(tmp_path / "out" / "train")
    assert features.shape[1] == len(manifest["features"])
    assert set(labels) == {0.0, 1.0}
    # one-hot: exactly one state column is set per row
    state_columns = [i for i, f in enumerate(manifest["features"]) if f.startswith("State_")]
    assert (features[:, state_columns].sum(axis=1) == 1).all()
    # a total is the sum of its columns (the charges are not features: checked against the minutes)
    place = {name: i for i, name in enumerate(manifest["features"])}
    minutes = features[:, [place[name] for name in data.TOTALS["Total Mins"]]].sum(axis=1)
    assert abs(features[:, place["Total Mins"]] - minutes).max() < 1e-3


def test_split_is_stratified(spark, synthetic_csv, tmp_path):
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "out"), seed=11)
    rates = {key: training.read_channel(tmp_path / "out" / key)[1].mean() for key in ("train", "validation", "test")}
    overall = profiling.validate_file(str(synthetic_csv)).churn_rate
    for key, rate in rates.items():
        assert abs(rate - overall) < 0.015, (key, rate, overall)


def test_split_is_deterministic_for_a_seed(spark, synthetic_csv, tmp_path):
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "a"), seed=5)
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "b"), seed=5)
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "c"), seed=6)
    assert _split_bytes(tmp_path / "a") == _split_bytes(tmp_path / "b")
    assert _split_bytes(tmp_path / "a") != _split_bytes(tmp_path / "c")


def test_a_small_source_runs_with_its_own_settings_and_puts_the_sessions_back(
    spark, synthetic_csv, tmp_path, monkeypatch
):
    """A small file runs with settings of its own (one task after each grouping) and its orders kept by the
    scan, and writes the same bytes as with the session's settings and the split's own pass; the session's
    settings are left as they were."""
    before = {name: spark.conf.get(name, None) for name in etl_job.SMALL_SOURCE_SETTINGS}
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "small"))
    assert {name: spark.conf.get(name, None) for name in etl_job.SMALL_SOURCE_SETTINGS} == before
    # just large enough for the session's own settings and the split's pass, one part per split: the same output
    size = synthetic_csv.stat().st_size
    monkeypatch.setattr(etl_job, "KEEP_ORDERS_BYTES", size * 0.99)
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "as_large"), part_bytes=size * 0.99)
    documents = (FEATURE_MANIFEST, BASELINE_STATISTICS, BASELINE_CONSTRAINTS)
    outputs = [
        (_split_bytes(tmp_path / d), [(tmp_path / d / name).read_bytes() for name in documents])
        for d in ("small", "as_large")
    ]
    assert outputs[0] == outputs[1]


def test_encoded_input_passes_through(spark, tmp_path):
    lines = [f'"{i % 2},{i * 0.5},{i % 7}"' if i % 3 == 0 else f"{i % 2},{i * 0.5},{i % 7}" for i in range(200)]
    source = write_lines(tmp_path / "enc.csv", lines)
    manifest = etl_job.run_etl(spark, source, str(tmp_path / "out"))
    assert manifest["format"] == "encoded" and manifest["features"] == ["f1", "f2"]
    features, labels = training.read_channel(tmp_path / "out" / "train")
    assert features.shape[1] == 2 and set(labels) == {0.0, 1.0}


def test_bad_input_stops_before_anything_is_written(spark, tmp_path):
    source = write_lines(tmp_path / "bad.csv", [",".join(data.RAW_COLUMNS), "x" * 3])
    with pytest.raises(DataValidationError, match="line 2"):
        etl_job.run_etl(spark, source, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_missing_java_says_how_to_install(monkeypatch):
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem, match="apt-get install openjdk-17"):
        require_java()


@pytest.mark.spark  # the script starts its own Spark
def test_glue_script_runs_with_glue_style_arguments(synthetic_csv, tmp_path):
    """The very file Glue runs, as a process, with Glue's argument convention (and an unknown Glue argument)."""
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "code" / "glue_etl.py"),
            "--S3_SOURCE",
            str(synthetic_csv),
            "--S3_DEST",
            str(tmp_path / "out"),
            "--TRAIN_KEY",
            "tr",
            "--VAL_KEY",
            "va",
            "--TEST_KEY",
            "te",
            "--SPARK_MASTER",
            "local[1]",
            "--job-bookmark-option",
            "job-bookmark-disable",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"tr", "va", "te", "manifest.json", "baseline"}
    assert json.loads(result.stdout.strip().splitlines()[-1])["rows"]["tr"] > 0


def test_python_and_spark_apply_the_same_manifest_transform(spark, synthetic_csv, tmp_path):
    import csv

    import numpy as np

    from churn_pipeline import features

    manifest = etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "out"), seed=2)
    with open(synthetic_csv, newline="") as handle:
        in_python = features.encode_records(features.encoding_of(manifest), csv.DictReader(handle))
    from_spark = np.vstack(
        [training.read_channel(tmp_path / "out" / key)[0] for key in ("train", "validation", "test")]
    )
    assert in_python.shape == from_spark.shape
    assert sorted(map(tuple, in_python.tolist())) == sorted(map(tuple, from_spark.tolist()))


def test_split_folders_hold_only_the_csv_parts(spark, synthetic_csv, tmp_path):
    """SM-CHANNEL-FILES: No _SUCCESS, no checksum files, no empty parts: a training channel is
    every file of its folder."""
    etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "out"), seed=11)
    for key in ("train", "validation", "test"):
        files = list((tmp_path / "out" / key).iterdir())
        assert files and all(
            f.name.startswith("part-") and f.name.endswith(".csv") and f.stat().st_size for f in files
        ), [f.name for f in files]


def test_markers_beside_the_parts_are_removed_on_s3(monkeypatch):
    """S3-PREFIX-LIST: On S3 (Glue, EMRFS) Spark can leave ``<folder>_$folder$`` and ``<folder>/_SUCCESS``."""
    import boto3
    from helpers import fake_aws_credentials
    from moto import mock_aws

    fake_aws_credentials(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="bucket-1", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
        for key, body in {
            "etl/train/part-00000-a.csv": b"1,2\n",
            "etl/train/part-00001-a.csv": b"",
            "etl/train/_SUCCESS": b"",
            "etl/train_$folder$": b"",
            "etl/training-notes/part-0.csv": b"x",
            "etl/train/sub/part-0.csv": b"1",
        }.items():
            s3.put_object(Bucket="bucket-1", Key=key, Body=body)
        removed = S3Objects(s3).keep_only_csv_parts("s3://bucket-1/etl/train")
        left = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="bucket-1")["Contents"])
    assert sorted(removed) == [
        f"s3://bucket-1/{key}" for key in ("etl/train/_SUCCESS", "etl/train/part-00001-a.csv", "etl/train_$folder$")
    ]
    assert left == ["etl/train/part-00000-a.csv", "etl/train/sub/part-0.csv", "etl/training-notes/part-0.csv"]


def test_large_splits_are_written_as_several_parts_the_same_for_the_same_data_and_seed(spark, synthetic_csv, tmp_path):
    """Parts sized from the data, written in parallel (no single writer); a row's part follows from its rank and
    its place from its hash, so two runs write the same parts; a channel is read whole from all of them."""
    from churn_pipeline import training

    part_bytes = synthetic_csv.stat().st_size / 10  # as if the file were ten parts' worth
    first = etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "a"), seed=5, part_bytes=part_bytes)
    second = etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "b"), seed=5, part_bytes=part_bytes)
    assert first["parts"]["train"] >= 7 and first["parts"]["validation"] >= 2  # about 0.7 and 0.2 of ten
    for split, parts in first["parts"].items():
        a = sorted((tmp_path / "a" / split).iterdir())
        b = sorted((tmp_path / "b" / split).iterdir())
        assert len(a) == len(b) == parts and all(p.name.startswith("part-") for p in a)
        assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
        features, labels = training.read_channel(tmp_path / "a" / split)
        assert len(labels) == first["rows"][split] == second["rows"][split]
    one = etl_job.run_etl(spark, str(synthetic_csv), str(tmp_path / "one"), seed=5)
    assert one["parts"] == {"train": 1, "validation": 1, "test": 1} and one["rows"] == first["rows"]
    merged = sorted(line for p in (tmp_path / "a" / "train").iterdir() for line in p.read_text().splitlines())
    assert merged == sorted(next((tmp_path / "one" / "train").iterdir()).read_text().splitlines())


@pytest.mark.parametrize("lines, where, problem", BAD_RAW + BAD_ENCODED)
def test_spark_validation_refuses_what_the_python_checks_refuse_in_the_same_words(
    spark, tmp_path, lines, where, problem
):
    path = write_lines(tmp_path / "bad.csv", lines)
    with pytest.raises(DataValidationError) as in_python:
        profiling.validate_file(path)
    with pytest.raises(DataValidationError) as on_spark:
        etl_validation.validate(spark, path)
    assert str(on_spark.value) == str(in_python.value)


def test_spark_validation_counts_what_the_python_checks_count(spark, synthetic_csv, churn_txt):
    for path in (str(synthetic_csv), str(churn_txt)):
        assert etl_validation.validate(spark, path) == profiling.validate_file(path)


def test_spark_validation_names_the_lines_of_the_first_bad_rows_across_partitions(spark, tmp_path):
    """Every row is checked in parallel; the error names the first bad row's line and column, how many
    rows are bad, and where the next ones are (line numbers counted across the file's partitions)."""
    path = synthetic.write_synthetic(tmp_path / "big.csv", 20000, 9)
    lines = path.read_bytes().split(b"\n")
    for line in (19001, 15002, 16003):
        fields = lines[line - 1].split(b",")
        fields[7] = b"n/a"  # Day Mins
        lines[line - 1] = b",".join(fields)
    lines[17003] = lines[17003].replace(b"no", b"n\xe9", 1)  # line 17004: not UTF-8
    path.write_bytes(b"\n".join(lines))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(256 * 1024))
    try:
        assert spark.read.text(str(path)).rdd.getNumPartitions() >= 4
        with pytest.raises(DataValidationError) as caught:
            etl_validation.validate(spark, str(path))
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert str(caught.value) == (
        f"{path}, line 15002, column 'Day Mins': value 'n/a' is not a number "
        "(4 bad rows in all; the next at lines 16003, 17004, 19001)"
    )


def test_a_bad_row_stops_the_etl_before_anything_is_written(spark, tmp_path):
    lines = (ROOT / "tests" / "data" / "tiny_raw.csv").read_text().splitlines()
    lines[5] = lines[5].replace("False.", "Nope.").replace("True.", "Nope.")
    path = write_lines(tmp_path / "bad.csv", lines)
    with pytest.raises(DataValidationError, match="line 6, column 'Churn\\?'"):
        etl_job.run_etl(spark, path, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("orders", ["kept by the scan", "fetched"])
def test_the_split_cuts_are_the_percent_ranks_of_each_class_ties_included(
    spark, synthetic_csv, tmp_path, monkeypatch, orders
):
    """Cut values found from bucket counts put every row where its percent rank (rank / (rows - 1) in its
    class, by the seeded hash; equal rows share a rank) puts it: checked against Spark's own percent_rank,
    with buckets small enough that cuts fall inside buckets and on their edges, and with duplicated rows;
    whether the scan kept every order (a small input) or the split fetched those it needs."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    lines = synthetic_csv.read_text().splitlines()
    path = Path(write_lines(tmp_path / "dups.csv", lines[:700] + lines[1:120] * 5))  # tied hashes
    monkeypatch.setattr(etl_validation, "ORDER_BUCKETS", 8)
    if orders == "fetched":
        monkeypatch.setattr(etl_job, "KEEP_ORDERS_BYTES", 0)
    part_bytes = path.stat().st_size / 6
    manifest = etl_job.run_etl(spark, str(path), str(tmp_path / "out"), seed=3, part_bytes=part_bytes)
    summary = etl_validation.validate(spark, str(path))
    frame, _ = encoded_frame(Source(spark, str(path)), summary, 3)
    ranked = frame.withColumn("pr", F.percent_rank().over(Window.partitionBy("label").orderBy("_order")))
    split = F.when(F.col("pr") < 0.7, "train").when(F.col("pr") < 0.9, "validation").otherwise("test")
    expected = {
        (r["split"], r["label"]): r["count"] for r in ranked.groupBy(split.alias("split"), "label").count().collect()
    }
    written = {}
    for key in ("train", "validation", "test"):
        _, labels = training.read_channel(tmp_path / "out" / key)
        written.update({(key, 1): int(labels.sum()), (key, 0): int(len(labels) - labels.sum())})
        assert manifest["rows"][key] == len(labels)
    assert written == expected
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "baseline",
        "manifest.json",
        "test",
        "train",
        "validation",
    ]


def test_rows_below_a_quantile_are_those_whose_percent_rank_is_below_it():
    for rows in (1, 2, 3, 10, 101, 1000):
        for quantile in [i / 100 for i in range(0, 101)] + [0.7 + 0.15, 0.07, 0.14]:
            expected = sum(1 for r in range(rows) if (r / (rows - 1) if rows > 1 else 0.0) < quantile)
            assert _rows_below(quantile, rows) == expected, (rows, quantile)


def test_the_etl_writes_the_training_splits_baseline_in_model_monitors_formats(spark, synthetic_csv, tmp_path):
    """MONITOR-FORMATS: statistics.json and constraints.json of exactly the rows of the training split,
    with Model Monitor's fields: counts, mean, sum, std_dev, min, max, 10 buckets and a percentile sketch
    per numeric column, the values and their counts per categorical one; the manifest names them."""
    from churn_pipeline import monitoring
    from churn_pipeline.names import BASELINE_CONSTRAINTS, BASELINE_STATISTICS

    out = tmp_path / "out"
    manifest = etl_job.run_etl(spark, str(synthetic_csv), str(out), seed=11)
    assert manifest["baseline"] == {"statistics": BASELINE_STATISTICS, "constraints": BASELINE_CONSTRAINTS}
    statistics = monitoring.check_statistics(json.loads((out / BASELINE_STATISTICS).read_text()), "statistics")
    constraints = json.loads((out / BASELINE_CONSTRAINTS).read_text())
    train, labels = training.read_channel(out / "train")  # the raw numeric columns come first, one-hot after
    assert statistics["dataset"]["item_count"] == len(labels) == manifest["rows"]["train"]
    by_name = {feature["name"]: feature for feature in statistics["features"]}
    assert list(by_name) == data.NUMERIC + data.CHARGES + data.CATEGORICAL  # the charges: the model adds them up
    for i, name in enumerate(data.NUMERIC):
        column, numbers = train[:, i].astype("float64"), by_name[name]["numerical_statistics"]
        assert numbers["common"] == {"num_present": len(column), "num_missing": 0}
        expected = {"min": column.min(), "max": column.max(), "sum": column.sum(), "mean": column.mean()}
        assert {k: numbers[k] for k in expected} == pytest.approx(expected, rel=1e-5)
        assert numbers["std_dev"] == pytest.approx(column.std(), rel=1e-4)
        buckets = numbers["distribution"]["kll"]["buckets"]
        assert len(buckets) == 10 and sum(b["count"] for b in buckets) == pytest.approx(len(column))
        sketch = numbers["distribution"]["kll"]["sketch"]["data"][0]
        assert len(sketch) == 101 and sketch[0] == numbers["min"] and sketch[-1] == numbers["max"]
        whole = bool((column == column.round()).all())
        assert by_name[name]["inferred_type"] == ("Integral" if whole else "Fractional")
    assert (
        by_name["Account Length"]["inferred_type"] == "Integral"
        and by_name["Day Mins"]["inferred_type"] == "Fractional"
    )
    for name in data.CATEGORICAL:
        strings = by_name[name]["string_statistics"]
        counts = {b["value"]: b["count"] for b in strings["distribution"]["categorical"]["buckets"]}
        assert sum(counts.values()) == strings["common"]["num_present"] == len(labels)
        for value, count in counts.items():
            position = (
                manifest["features"].index(f"{name}_{value}") if f"{name}_{value}" in manifest["features"] else None
            )
            if position is not None:
                assert train[:, position].sum() == count
    limits = {feature["name"]: feature for feature in constraints["features"]}
    assert (
        limits["Day Mins"]["num_constraints"] == {"is_non_negative": True} and limits["Day Mins"]["completeness"] == 1.0
    )
    assert limits["State"]["string_constraints"]["domains"] == sorted(manifest["categories"]["State"])
    assert constraints["monitoring_config"]["distribution_constraints"]["comparison_method"] == "Robust"


def test_the_baseline_adds_each_columns_values_in_row_order_however_many_columns(spark):
    """Every column's figures come from one sequence of its rows, as from a column aggregated alone: with
    more columns than Spark's hash grouping holds before it sorts (128), a sum would otherwise be split
    and added in another order (0.1 + (0.2 + 0.3) is not (0.1 + 0.2) + 0.3)."""
    from churn_pipeline.etl.baseline import baseline

    names = [f"c{i}" for i in range(140)]
    rows = spark.createDataFrame([[str(v)] * len(names) + ["a"] for v in (0.1, 0.2, 0.3)], [*names, "kind"])
    statistics = baseline(rows.coalesce(1), names, ["kind"])
    sums = {f["name"]: f["numerical_statistics"]["sum"] for f in statistics["features"] if f["name"] in names}
    assert set(sums.values()) == {(0.1 + 0.2) + 0.3}
