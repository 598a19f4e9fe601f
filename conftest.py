"""Test session set-up shared by tests/ and the nbval run of notebooks/.

Every test session gets a fresh local-backend home and artifacts root, so the
committed notebooks re-run by nbval start from nothing, as on a new machine.
"""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_session_dir = tempfile.mkdtemp(prefix="churn-pipeline-tests-")
atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)  # the session's home goes with it
os.environ.setdefault("CHURN_PIPELINE_HOME", os.path.join(_session_dir, "home"))
os.environ.setdefault("CHURN_PIPELINE_ARTIFACTS", os.path.join(_session_dir, "artifacts"))
os.environ.setdefault("CHURN_PIPELINE_PROJECT", os.path.dirname(os.path.abspath(__file__)))
# SDK-built values are keyed by content: one cache serves every test's home
os.environ.setdefault("CHURN_PIPELINE_CACHE", os.path.join(_session_dir, "cache"))

# One warm Spark worker for the whole session, owned by the process that started the session: each
# test's fresh home would otherwise start its own, and the worker exits with the session however it
# ends. xdist's workers and every process a test starts inherit these.
os.environ.setdefault("CHURN_PIPELINE_SPARK_WORKER_DIR", os.path.join(_session_dir, "spark-worker"))
os.environ.setdefault("CHURN_PIPELINE_SPARK_WORKER_OWNER", str(os.getpid()))


def _stop_the_shared_spark_worker():
    if os.environ["CHURN_PIPELINE_SPARK_WORKER_OWNER"] == str(os.getpid()):
        from churn_pipeline.etl import spark_worker

        spark_worker.stop(Path(os.environ["CHURN_PIPELINE_SPARK_WORKER_DIR"]))


atexit.register(_stop_the_shared_spark_worker)  # registered after the folder's removal: runs before it
