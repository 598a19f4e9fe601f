"""Batch scoring on Spark: every row, in input order, with its identifier, decision and reasons."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from churn_pipeline import container, decisions, explain, features, monitoring, scoring, serving, synthetic, training
from churn_pipeline.errors import DataValidationError, PipelineError
from churn_pipeline.pipeline import scoring as batch_scoring

#: a control group large enough to show in a few thousand rows
CONTROL_GROUP = decisions.Holdout(0.2, "2026-11-29")


def read_scores(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def expected_scores(archive, manifest, lines):
    """The endpoint's own encoding and prediction of raw lines (header first)."""
    served = serving.load_served_model(archive, manifest)
    records = list(csv.DictReader(lines))
    matrix = features.encode_records(features.encoding_of(served.manifest), records)
    return [r["Phone"].strip() for r in records], np.asarray(served.predict(matrix)), matrix, served


def test_score_keeps_every_public_row_with_its_phone_in_input_order(spark, small_model, churn_txt, tmp_path):
    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    out = tmp_path / "scores.csv"
    scored = scoring.score_file(spark, archive, manifest, 0.3, str(churn_txt), out, explain_count=3)
    rows = read_scores(out)
    lines = churn_txt.read_text().splitlines()
    phones, scores, matrix, served = expected_scores(archive, manifest_path, lines)
    assert scored.rows == len(rows) == len(lines) - 1 == 3333
    assert [r["Phone"] for r in rows] == phones
    assert list(rows[0]) == [
        "Phone",
        "score",
        "decision",
        "reason_1",
        "contribution_1",
        "reason_2",
        "contribution_2",
        "reason_3",
        "contribution_3",
    ]
    written = np.array([float(r["score"]) for r in rows])
    np.testing.assert_allclose(written, scores, atol=1e-6)
    assert [r["decision"] for r in rows] == ["1" if s > 0.3 else "0" for s in scores]  # the model's own scores
    assert scored.offers == sum(r["decision"] == "1" for r in rows) > 0
    per_column, _ = explain.contributions(served.booster, matrix, served.manifest)
    for row, expected in zip(rows[:50], explain.top_reasons(per_column, explain.reason_columns(manifest), 3)):
        assert [row[f"reason_{i}"] for i in (1, 2, 3)] == [reason["column"] for reason in expected]
        assert [float(row[f"contribution_{i}"]) for i in (1, 2, 3)] == pytest.approx(
            [reason["contribution"] for reason in expected], abs=2e-6
        )
    assert {row["reason_1"] for row in rows} <= set(explain.reason_columns(manifest))


def test_score_reads_records_without_the_label_and_keeps_order_across_partitions(spark, small_model, tmp_path):
    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    source = synthetic.write_synthetic(tmp_path / "labelled.csv", rows=6000, seed=11)
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
    scored = scoring.score_file(spark, archive, manifest, 0.5, str(channel), tmp_path / "scores.csv", explain_count=1)
    rows = read_scores(scored.path)
    matrix, _ = training.read_channel(channel)
    booster = training.load_model_archive(archive)
    assert [r["row"] for r in rows] == [str(i) for i in range(1, len(matrix) + 1)]
    np.testing.assert_allclose([float(r["score"]) for r in rows], booster.inplace_predict(matrix), atol=1e-6)
    assert {r["reason_1"] for r in rows} <= set(explain.reason_columns(manifest))


def test_identifiers_are_quoted_as_csv_and_a_blank_one_or_label_is_handled(spark, small_model, synthetic_csv, tmp_path):
    """A Phone holding a comma or a quote comes back as written (RFC 4180 quoting), its decision counted; a
    blank label column is not read when scoring; a blank Phone is refused with its line."""
    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    with open(synthetic_csv, newline="") as handle:
        records = list(csv.reader(handle))
    header = records[0]
    phone, label = header.index("Phone"), header.index("Churn?")
    records = records[:6]
    records[1][phone], records[2][phone] = "415,382-4657", 'ext "7"'
    for record in records[1:]:
        record[label] = ""
    customers = tmp_path / "customers.csv"
    with open(customers, "w", newline="") as out:
        csv.writer(out).writerows(records)
    lines = customers.read_text().splitlines()
    _, scores, _, _ = expected_scores(archive, manifest_path, lines)
    cutoff = float(np.median(scores))
    scored = scoring.score_file(
        spark, archive, manifest, cutoff, str(customers), tmp_path / "scores.csv", explain_count=2
    )
    rows = read_scores(scored.path)
    assert [r["Phone"] for r in rows] == [record[phone] for record in records[1:]]
    assert [r["decision"] for r in rows] == ["1" if s > cutoff else "0" for s in scores]
    assert scored.offers == sum(s > cutoff for s in scores) == 2  # the two above the median of five
    records[3][phone] = " \t"
    with open(customers, "w", newline="") as out:
        csv.writer(out).writerows(records)
    with pytest.raises(DataValidationError, match=r"customers.csv, line 4, column 'Phone': empty value"):
        scoring.score_file(spark, archive, manifest, 0.5, str(customers), tmp_path / "other.csv")
    with pytest.raises(PipelineError, match=r"--explain must be between 0 and \d+ \(the model's columns\); got 99"):
        scoring.score_file(spark, archive, manifest, 0.5, str(synthetic_csv), tmp_path / "other.csv", 99)
    with pytest.raises(PipelineError, match="--batch-transform"):
        scoring.score_file(spark, archive, manifest, 0.5, str(synthetic_csv), "s3://bucket/scores.csv")


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


def test_a_batch_transform_gives_the_same_columns_as_the_local_score(spark, small_model, churn_txt, isolated, tmp_path):
    """SM-TRANSFORM-JOIN, SM-TRANSFORM-OUTPUT, SM-SCRIPT-MODE on the local backend: the ETL's scoring mode
    writes identifier + features in input order; the scoring model runs code/score_transform.py; the
    joined, filtered answers equal `score`'s rows, identifier first."""
    from churn_pipeline import archives
    from churn_pipeline.backends import open_backend
    from churn_pipeline.config import DEFAULTS

    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    backend = open_backend(DEFAULTS)
    bucket = "s3://churn-pipeline-local/scoring"
    backend.store.stage(f"{bucket}/model.tar.gz", str(archive))
    backend.store.put(f"{bucket}/code/sourcedir.tar.gz", archives.source_dir(manifest))
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(128 * 1024))
    try:
        encoded = scoring.encode_for_transform(
            spark, str(churn_txt), manifest, str(backend.mirror.path(f"{bucket}/customers")), CONTROL_GROUP
        )
    finally:
        spark.conf.unset("spark.sql.files.maxPartitionBytes")
    assert encoded == {"identifier": "Phone", "features": len(manifest["features"])}
    sagemaker = backend.client("sagemaker")
    sagemaker.create_model(
        ModelName="scoring",
        ExecutionRoleArn=DEFAULTS["sagemaker_execution_role"],
        PrimaryContainer={
            "Image": "xgboost:3.0-5",
            "ModelDataUrl": f"{bucket}/model.tar.gz",
            "Environment": container.transform_environment(f"{bucket}/code/sourcedir.tar.gz", "0.3", "2", "eu-west-1"),
        },
    )
    sagemaker.create_transform_job(
        TransformJobName="scoring-1",
        ModelName="scoring",
        MaxPayloadInMB=1,
        BatchStrategy="MultiRecord",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{bucket}/customers/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"{bucket}/scores/", "Accept": "text/csv", "AssembleWith": "Line"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        DataProcessing=container.transform_data_processing(encoded["features"]),
    )
    job = sagemaker.describe_transform_job(TransformJobName="scoring-1")
    assert job["TransformJobStatus"] == "Completed", job.get("FailureReason")
    outputs = sorted(backend.mirror.path(f"{bucket}/scores").glob("*.out"))
    parts = sorted(p.name for p in backend.mirror.path(f"{bucket}/customers").glob("part-*.csv"))
    assert [p.name for p in outputs] == [f"{name}.out" for name in parts] and len(parts) > 1
    transformed = [line for path in outputs for line in path.read_text().splitlines()]
    local = scoring.score_file(
        spark, archive, manifest, 0.3, str(churn_txt), tmp_path / "scores.csv", 2, holdout=CONTROL_GROUP
    )
    assert transformed == local.path.read_text().splitlines()[1:]
    assert len(transformed) == 3333 and local.holdouts > 0


def booster_width(archive):
    return training.load_model_archive(archive).num_features()


def test_a_failing_transform_job_says_why_and_writes_nothing(small_model, isolated, tmp_path):
    from churn_pipeline.backends import open_backend
    from churn_pipeline.config import DEFAULTS

    archive, _, _ = small_model
    backend = open_backend(DEFAULTS)
    bucket = "s3://churn-pipeline-local/scoring"
    backend.store.stage(f"{bucket}/model.tar.gz", str(archive))
    backend.store.put(f"{bucket}/customers/part-00000.csv", b"555-0101,1.0,2.0\n")
    sagemaker = backend.client("sagemaker")
    sagemaker.create_model(
        ModelName="built-in",
        ExecutionRoleArn=DEFAULTS["sagemaker_execution_role"],
        PrimaryContainer={"Image": "xgboost:3.0-5", "ModelDataUrl": f"{bucket}/model.tar.gz"},
    )
    request = dict(
        ModelName="built-in",
        TransformInput={
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": f"{bucket}/customers/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        TransformOutput={"S3OutputPath": f"{bucket}/scores/", "Accept": "text/csv"},
        TransformResources={"InstanceType": "ml.m5.large", "InstanceCount": 1},
    )
    sagemaker.create_transform_job(
        TransformJobName="narrow", **request, DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"}
    )
    job = sagemaker.describe_transform_job(TransformJobName="narrow")
    assert job["TransformJobStatus"] == "Failed"
    assert job["FailureReason"] == f"PipelineError: rows have 2 features, the model takes {booster_width(archive)}"
    sagemaker.create_transform_job(
        TransformJobName="two-ranges", **request, DataProcessing={"InputFilter": "$[0:1,2:]"}
    )
    assert (
        "only single range filters" in sagemaker.describe_transform_job(TransformJobName="two-ranges")["FailureReason"]
    )
    assert not backend.mirror.path(f"{bucket}/scores").exists()


def test_score_as_on_aws_runs_the_etl_job_and_a_batch_transform_from_a_state_machine(
    spark, small_model, churn_txt, isolated, tmp_path
):
    """The aws code path on the local backend: the scoring state machine (the SDK's TransformStep)
    checks and encodes the customers in the ETL job, creates the script-mode model and runs the
    transform; the joined answers equal the local `score`'s rows."""
    from churn_pipeline import config
    from churn_pipeline.backends import open_backend

    archive, manifest_path, _ = small_model
    params = config.load(None, {"execution_timeout_minutes": 10})
    backend = open_backend(params)
    model_uri = "s3://churn-pipeline-local/churn/trained/models/job/output/model.tar.gz"
    backend.store.stage(model_uri, str(archive))
    backend.store.stage("s3://churn-pipeline-local/churn/trained/etl/manifest.json", str(manifest_path))
    scores_uri = "s3://churn-pipeline-local/churn/local/scores/today/"
    for outside in (
        "s3://churn-pipeline-local/scores/",
        "s3://churn-pipeline-local/churn/",
        "s3://churn-pipeline-local/churn/local/scores/",
        "s3://churn-pipeline-local/churn/trained/",
    ):
        with pytest.raises(
            PipelineError,
            match="scores go to a folder of their own under s3://churn-pipeline-local/churn/local/scores/",
        ):
            batch_scoring.batch_transform(params, model_uri, str(churn_txt), outside, overwrite=True)
    assert backend.store.exists(model_uri)  # nothing was removed
    result = batch_scoring.batch_transform(
        params, model_uri, str(churn_txt), scores_uri, explain_count=3, cutoff=0.3, progress=lambda line: None
    )
    assert result["columns"] == decisions.output_columns("Phone", 3) and result["cutoff"] == 0.3
    outputs = sorted(backend.mirror.path(scores_uri).glob("*.csv.out"))
    described = json.loads(backend.mirror.path(scores_uri + batch_scoring.SCORES_DESCRIPTION).read_text())
    assert described["columns"] == result["columns"] and described["input"] == "input/churn.txt"
    assert backend.mirror.path(scores_uri + described["input"]).read_bytes() == churn_txt.read_bytes()
    assert not backend.mirror.path("s3://churn-pipeline-local/churn/local/scoring").exists() or not any(
        backend.mirror.path("s3://churn-pipeline-local/churn/local/scoring").rglob("*.csv")
    )  # encoded rows removed
    with pytest.raises(PipelineError, match="holds earlier scores"):
        batch_scoring.batch_transform(params, model_uri, str(churn_txt), scores_uri)
    transformed = [line for path in outputs for line in path.read_text().splitlines()]
    local = scoring.score_file(
        spark,
        archive,
        json.loads(manifest_path.read_text()),
        0.3,
        str(churn_txt),
        tmp_path / "scores.csv",
        explain_count=3,
    )
    assert transformed == local.path.read_text().splitlines()[1:]
    job = backend.client("sagemaker").describe_transform_job(TransformJobName=result["transform_job"])
    environment = backend.client("sagemaker").describe_model(ModelName=job["ModelName"])["PrimaryContainer"][
        "Environment"
    ]
    assert environment["SAGEMAKER_PROGRAM"] == "score_transform.py" and environment["CHURN_EXPLAIN"] == "3"


ECHO_SCRIPT = """
import os
import time


def model_fn(model_dir):
    return float(os.environ.get("ECHO_SLEEP", "0"))


def input_fn(body, content_type):
    return [line.split(",")[0] for line in body.splitlines()]


def predict_fn(identifiers, sleep):
    time.sleep(sleep)
    return identifiers


def output_fn(identifiers, accept):
    return "".join(f"{i},{os.getpid()}\\n" for i in identifiers), "text/csv"
"""


def _transform_folder(tmp_path, rows: int, **job):
    from churn_pipeline.backends.local import transform

    folder = tmp_path / "job"
    (folder / transform.CODE_DIR).mkdir(parents=True)
    (folder / transform.MODEL_DIR).mkdir()
    (folder / transform.CODE_DIR / "echo.py").write_text(ECHO_SCRIPT)
    source = tmp_path / "part-00000.csv"
    source.write_text("".join(f"{i},{'x' * 90}\n" for i in range(rows)))  # about 100 bytes a row
    settings = {"MaxPayloadInMB": 1, "MaxConcurrentTransforms": 2, **job}
    environment = {"SAGEMAKER_PROGRAM": "echo.py", "SAGEMAKER_MODEL_SERVER_WORKERS": "2", **job.pop("Environment", {})}
    settings.pop("Environment", None)
    (folder / transform.JOB_FILE).write_text(
        json.dumps(
            {
                "DataProcessing": {"InputFilter": "$", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
                "Environment": environment,
                "Inputs": [["part-00000.csv", str(source)]],
                "ContentType": "text/csv",
                "Accept": "text/csv",
                **settings,
            }
        )
    )
    return folder


def test_a_local_transform_answers_mini_batches_concurrently_in_input_order(tmp_path):
    """SM-TRANSFORM-SPEED: with MaxConcurrentTransforms 2 and two model-server workers, 1 MB mini-batches
    of one object are answered by both workers, and the output keeps the input's order."""
    from churn_pipeline.backends.local import transform

    folder = _transform_folder(tmp_path, 40_000)
    assert transform.main([str(folder)]) == 0, (folder / transform.FAILURE_FILE).read_text()
    lines = [
        line.split(",") for line in (folder / transform.OUTPUT_DIR / "part-00000.csv.out").read_text().splitlines()
    ]
    assert [int(identifier) for identifier, _ in lines] == list(range(40_000))
    assert len({worker for _, worker in lines}) == 2  # four mini-batches, two workers


def test_a_mini_batch_past_the_model_server_timeout_fails_the_job(tmp_path):
    """SM-TRANSFORM-SPEED: a mini-batch that takes longer than SAGEMAKER_MODEL_SERVER_TIMEOUT fails the job,
    as the container's server ends the request; nothing is written."""
    from churn_pipeline.backends.local import transform

    environment = {"SAGEMAKER_MODEL_SERVER_TIMEOUT": "1", "ECHO_SLEEP": "30"}
    folder = _transform_folder(tmp_path, 100, Environment=environment)
    assert transform.main([str(folder)]) == 1
    assert "not answered within the model server's timeout of 1 s" in (folder / transform.FAILURE_FILE).read_text()
    assert not (folder / transform.OUTPUT_DIR / "part-00000.csv.out").exists()


def test_transform_settings_follow_the_instances_vcpus():
    """SM-TRANSFORM-SPEED: one mini-batch in flight and one worker per vCPU, a set timeout, and at most
    100 MB of mini-batches in flight; an instance type whose vCPUs are not known is refused by name."""
    from churn_pipeline.backends.local.transform import check_payload
    from churn_pipeline.errors import PipelineError

    large = container.transform_settings("ml.m5.large")
    assert (large["MaxConcurrentTransforms"], large["MaxPayloadInMB"]) == (2, 6)
    assert large["Environment"] == {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SAGEMAKER_MODEL_SERVER_TIMEOUT": "300"}
    assert large["ModelClientConfig"]["InvocationsTimeoutInSeconds"] == 300
    assert container.transform_settings("ml.m6i.2xlarge")["MaxConcurrentTransforms"] == 8
    for widest in ("ml.m5.24xlarge", "ml.c7i.48xlarge"):  # 96 and 192 vCPUs
        settings = container.transform_settings(widest)
        assert settings["MaxConcurrentTransforms"] * settings["MaxPayloadInMB"] <= 100
        check_payload(settings["MaxConcurrentTransforms"], settings["MaxPayloadInMB"])
    for unknown in ("ml.t2.medium", "m5.large", "ml.m5.bigxlarge"):
        with pytest.raises(PipelineError, match=f"endpoint_instance_type '{unknown}'"):
            container.transform_settings(unknown)
    with pytest.raises(PipelineError, match="must not exceed 100 MB"):
        check_payload(20, 6)


def test_score_holds_out_a_control_group_and_leaves_a_window_the_monitor_reads(spark, small_model, tmp_path):
    """The control group is stable for a date, the description and the captured input lie beside the scores,
    and bad outcomes are refused naming their line (nothing is counted)."""
    from churn_pipeline.etl import window as window_counts

    archive, manifest_path, _ = small_model
    manifest = json.loads(manifest_path.read_text())
    customers = synthetic.write_synthetic(tmp_path / "customers.csv", 3_000, 11)
    holdout = decisions.Holdout(0.2, "2026-11-29")
    first = scoring.score_file(spark, archive, manifest, 0.3, str(customers), tmp_path / "a.csv", holdout=holdout)
    again = scoring.score_file(spark, archive, manifest, 0.3, str(customers), tmp_path / "b.csv", holdout=holdout)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    rows = read_scores(tmp_path / "a.csv")
    held = sum(r["decision"] == decisions.HOLDOUT for r in rows)
    assert first.holdouts == held == again.holdouts and 0.1 < held / (held + first.offers) < 0.3
    assert all(float(r["score"]) > 0.3 for r in rows if r["decision"] == decisions.HOLDOUT)
    window = decisions.read_window(tmp_path / "a.csv")
    assert window["decisions"] == {"offer": first.offers, "no_offer": 3_000 - first.offers - held, "holdout": held}
    assert Path(window["input_path"]).read_bytes() == customers.read_bytes()
    with pytest.raises(PipelineError, match="exists; scores are not written over"):
        scoring.score_file(spark, archive, manifest, 0.3, str(customers), tmp_path / "a.csv", holdout=holdout)

    simulated = synthetic.simulate_outcomes(tmp_path / "a.csv", tmp_path / "outcomes.csv", 0.5, 1)
    scores = {"score": np.array([float(r["score"]) for r in rows])}
    score_statistics = monitoring.statistics_of(scores, ["score"], [])
    counted = window_counts.outcome_counts(spark, window, str(tmp_path / "outcomes.csv"), score_statistics)
    assert sum(int(c.sum()) for c in counted["counts"].values()) + counted["shared_identifier"] == simulated.rows
    # the score counts come from the same pass as the outcomes, equal to a pass of their own
    assert counted["scores"] == window_counts.score_counts(spark, window, score_statistics)
    assert sum(counted["scores"]["deciles"]) == 3_000 and counted["scores"]["decisions"][decisions.HOLDOUT] == held
    lines = (tmp_path / "outcomes.csv").read_text().splitlines()
    for line_number, bad, message in [
        (3, "382-0000,maybe", "line 3: not <identifier>,<yes|no>"),
        (4, "000-0000,yes", "line 4: a customer this window did not score"),
    ]:
        broken = tmp_path / f"bad-{line_number}.csv"
        broken.write_text("\n".join([*lines[: line_number - 1], bad, *lines[line_number:]]) + "\n")
        with pytest.raises(DataValidationError, match=message):
            window_counts.outcome_counts(spark, window, str(broken))
    statistics = json.loads((small_model[2] / "baseline" / "statistics.json").read_text())
    drift = window_counts.input_counts(spark, window["input_path"], statistics)
    assert drift["items"] == 3_000 and sum(drift["columns"]["Day Mins"]["deciles"]) == 3_000
    shifted = synthetic.generate_file(tmp_path / "shifted.csv", 2_000, 12, ("new-state",)).path
    counted = window_counts.input_counts(spark, str(shifted), statistics)
    in_memory = monitoring.window_counts(statistics, synthetic.generate_synthetic(2_000, 12, ("new-state",)))
    assert counted == in_memory and counted["columns"]["State"]["values"][synthetic.NEW_STATE] > 100


def test_spark_draws_the_same_control_group_as_python(spark):
    """``scoring.held_column`` (Spark's sha2) and ``decisions.Holdout.held`` (hashlib) agree on every
    customer, at a fraction where about half are held, including identifiers with spaces and accents."""
    from pyspark.sql import functions as F

    holdout = decisions.Holdout(0.5, "2026-11-29")
    identifiers = [f"{i:03d}-{i * 7919 % 10000:04d}" for i in range(2000)] + ["Zoë 1", "a b", ""]
    frame = spark.createDataFrame([(i,) for i in identifiers], "id string")
    held = [row["held"] for row in frame.select(scoring.held_column(holdout, F.col("id")).alias("held")).collect()]
    assert held == holdout.held(identifiers).astype(int).tolist() and 800 < sum(held) < 1200


def test_an_endpoints_capture_is_a_window_and_a_bad_line_is_named(spark, small_model, tmp_path):
    """SM-DATA-CAPTURE: captured requests of raw records (CSV answers, JSON answers) give the same counts as
    the same customers in memory; a request of encoded rows is counted, not compared; a line that is not a
    capture record stops the monitor, naming its file and line."""
    import csv as csv_module
    import io
    from datetime import datetime, timezone

    from churn_pipeline import capture, data, monitoring
    from churn_pipeline.etl import captures

    statistics = json.loads((small_model[2] / "baseline" / "statistics.json").read_text())
    customers = synthetic.generate_synthetic(300, 21)
    folder = tmp_path / "capture" / "local" / "AllTraffic" / "2026" / "11" / "29" / "10"
    folder.mkdir(parents=True)
    lines = []
    for start in range(0, 300, 100):
        text = io.StringIO()
        writer = csv_module.writer(text)
        writer.writerow(data.RAW_COLUMNS)
        writer.writerows(zip(*(customers[name][start : start + 100].tolist() for name in data.RAW_COLUMNS)))
        scores = [0.001 * (start + i) for i in range(100)]
        answer = ("text/csv", "".join(f"{s!r}\n" for s in scores).encode())
        if start == 100:
            answer = ("application/json", json.dumps({"predictions": [{"score": s} for s in scores]}).encode())
        record = capture.capture_record(
            ("text/csv; header=present", text.getvalue().encode()), answer, datetime.now(timezone.utc), None
        )
        lines.append(json.dumps(record))
    encoded = capture.capture_record(("text/csv", b"1,2,3\n"), ("text/csv", b"0.5\n"), datetime.now(timezone.utc), None)
    lines.append(json.dumps(encoded))
    (folder / "worker-1.jsonl").write_text("\n".join(lines) + "\n")
    counted, scored, read = captures.capture_counts(spark, str(tmp_path / "capture"), statistics, None)
    assert counted == monitoring.window_counts(statistics, customers)
    assert read == {"requests": 4, "raw_requests": 3} and scored["items"] == 300
    rows, _ = captures.capture_rows(spark, str(tmp_path / "capture"), ["Day Mins"])
    assert sorted(round(r["score"], 3) for r in rows.collect()) == [round(0.001 * i, 3) for i in range(300)]
    (folder / "worker-2.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DataValidationError, match=r"worker-2.jsonl, line 2: not a data capture record"):
        captures.capture_counts(spark, str(tmp_path / "capture"), statistics, None)
