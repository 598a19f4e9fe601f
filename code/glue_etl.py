"""ETL job: raw churn CSV -> encoded train/validation/test CSV and a feature manifest; or, with
``--ETL_MODE score``, customers to score -> ``<identifier>,<held>,<features>`` parts for a Batch Transform;
or, with ``--ETL_MODE monitor`` / ``retrain``, a monitor's request over windows in S3.

AWS Glue runs this file as it is (Glue 5.0, Spark 3.5, Python 3.11), with the
``churn_pipeline`` package as a zip in ``--extra-py-files`` (Glue puts it on the
import path); the local backend runs the very same file, with the same zip on
its import path, on a local SparkSession (a new session of the warm local Spark worker, when the
local Glue names one). Arguments are Glue-style and come from
the state machine's StartJobRun for each run: ``--S3_SOURCE``, ``--S3_DEST``,
``--TRAIN_KEY``, ``--VAL_KEY``, ``--TEST_KEY`` and optionally
``--TRAIN_FRACTION``, ``--VALIDATION_FRACTION``, ``--SPLIT_SEED``,
``--ETL_RECORD``, ``--ETL_KEY``, ``--RUN_ID`` (where to record this output, once
written, for later runs with the same inputs to reuse) and ``--SPARK_MASTER``
(local only). The scoring mode reads ``--S3_SOURCE``, ``--S3_DEST`` and
``--MANIFEST`` (the model's feature manifest) and checks every row by the same
rules. The monitor and retrain modes read ``request.json`` in ``--S3_DEST``, whose locations are
relative to ``--S3_SOURCE`` (the environment's folder), and write their answer beside it
(``churn_pipeline.etl.monitor_pass``).
"""

import argparse
import json
import sys

REQUIRED = ["S3_SOURCE", "S3_DEST"]
MODES = ("etl", "score", "monitor", "retrain")
OPTIONAL = {
    "ETL_MODE": "etl",
    "MANIFEST": "",
    "TRAIN_KEY": "train",
    "VAL_KEY": "validation",
    "TEST_KEY": "test",
    "TRAIN_FRACTION": "0.7",
    "VALIDATION_FRACTION": "0.2",
    "SPLIT_SEED": "42",
    "ETL_RECORD": "",
    "ETL_KEY": "",
    "RUN_ID": "",
    "SPARK_MASTER": "local[*]",
    # scoring mode: the control group's share and the scoring date that draws it
    "HOLDOUT_FRACTION": "0",
    "SCORING_DATE": "",
}


def _in_glue() -> bool:
    try:
        import awsglue  # noqa: F401  (present only inside AWS Glue)
    except ImportError:
        return False
    return True


def parse_arguments(argv):
    """Glue passes ``--NAME value`` pairs (plus arguments of its own, which are ignored)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in REQUIRED:
        parser.add_argument(f"--{name}", required=True)
    for name, default in OPTIONAL.items():
        parser.add_argument(f"--{name}", default=default)
    arguments, _ = parser.parse_known_args(argv)
    if arguments.ETL_MODE not in MODES:
        parser.error(f"--ETL_MODE must be one of {', '.join(MODES)}; got {arguments.ETL_MODE!r}")
    if arguments.ETL_MODE == "score" and not arguments.MANIFEST:
        parser.error("--ETL_MODE score needs --MANIFEST, the model's feature manifest")
    return vars(arguments)


def main(argv=None):
    from churn_pipeline.etl import job, spark_worker

    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    if _in_glue():
        from awsglue.context import GlueContext
        from pyspark.context import SparkContext

        spark = GlueContext(SparkContext.getOrCreate()).spark_session
    else:
        spark = spark_worker.local_session(arguments["SPARK_MASTER"])
    if arguments["ETL_MODE"] in ("monitor", "retrain"):
        from churn_pipeline.etl import monitor_pass

        answer = monitor_pass.run_request(spark, arguments["ETL_MODE"], arguments["S3_SOURCE"], arguments["S3_DEST"])
        print(json.dumps({"mode": arguments["ETL_MODE"], "windows": len(answer.get("windows", []))}))
        return answer
    if arguments["ETL_MODE"] == "score":
        from churn_pipeline import decisions, scoring
        from churn_pipeline.s3 import s3_storage

        manifest = json.loads(s3_storage().read_text(arguments["MANIFEST"]) or "null")
        if manifest is None:
            raise SystemExit(f"no feature manifest at {arguments['MANIFEST']}")
        holdout = decisions.Holdout(float(arguments["HOLDOUT_FRACTION"]), arguments["SCORING_DATE"])
        encoded = scoring.encode_for_transform(spark, arguments["S3_SOURCE"], manifest, arguments["S3_DEST"], holdout)
        print(json.dumps(encoded))
        return encoded
    settings = {
        "source": arguments["S3_SOURCE"],
        "train_key": arguments["TRAIN_KEY"],
        "validation_key": arguments["VAL_KEY"],
        "test_key": arguments["TEST_KEY"],
        "train_fraction": float(arguments["TRAIN_FRACTION"]),
        "validation_fraction": float(arguments["VALIDATION_FRACTION"]),
        "seed": int(arguments["SPLIT_SEED"]),
    }
    manifest = job.run_etl(spark, dest=arguments["S3_DEST"], **settings)
    if arguments["ETL_RECORD"]:  # last: a record names only output that is complete
        job.write_etl_record(
            arguments["ETL_RECORD"], key=arguments["ETL_KEY"], run_id=arguments["RUN_ID"], manifest=manifest
        )
    spark_worker.remember_etl(settings)  # locally, the warm worker's next warm-ups read this input again
    print(json.dumps({"rows": manifest["rows"], "features": len(manifest["features"])}))
    return manifest


if __name__ == "__main__":
    main()
