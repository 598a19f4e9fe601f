"""The local SparkSession: one per process, its JVM's own output kept out of notebooks."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import contextmanager

from ..errors import EnvironmentProblem
from ..workspace import HOME_ENV


def require_java() -> str:
    """Return the java executable Spark will use, or say how to install one."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java or not os.path.exists(java):
        raise EnvironmentProblem(
            "Java 17 is needed by Spark and was not found (no `java` on PATH, no JAVA_HOME). "
            "Install it: `sudo apt-get install openjdk-17-jre-headless` (Debian/Ubuntu), "
            "`brew install openjdk@17` (macOS) or `conda install -c conda-forge openjdk=17`."
        )
    return java


#: settings a session's own SQL configuration holds (every session gets them, a worker's new ones too)
SESSION_SETTINGS = {"spark.sql.shuffle.partitions": "4", "spark.sql.session.timeZone": "UTC"}


def settings() -> dict[str, str]:
    """What a local Spark is started with (a warm worker's key names them: other settings, another worker)."""
    return {
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": os.environ.get("CHURN_SPARK_DRIVER_MEMORY", "2g"),
        **SESSION_SETTINGS,
    }


def spark_session(master: str = "local[*]", app_name: str = "churn-etl", log_path: str | None = None):
    """The shared local SparkSession (created once per process, reused after).

    The JVM writes its own log lines straight to file descriptor 2, where a
    Jupyter kernel would show them in a cell; it is started with that
    descriptor pointed at ``log_path`` (default: ``$CHURN_PIPELINE_HOME/spark.log``
    or the temp folder) instead.
    """
    require_java()
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # Python workers (batch scoring's mapInPandas) run this interpreter, which has the package
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if log_path is None:
        log_path = os.path.join(os.environ.get(HOME_ENV) or tempfile.gettempdir(), "spark.log")
    os.makedirs(os.path.dirname(log_path) or ".", exist_ok=True)
    saved_stderr = os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 2)
        try:
            builder = SparkSession.builder.master(master).appName(app_name)
            for name, value in settings().items():
                builder = builder.config(name, value)
            session = builder.getOrCreate()
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    session.sparkContext.setLogLevel("ERROR")
    return session


@contextmanager
def changed_settings(spark, changed: dict[str, str]):
    """The session's SQL settings ``changed`` for a block, put back as they were afterwards."""
    before = {name: spark.conf.get(name, None) for name in changed}
    for name, value in changed.items():
        spark.conf.set(name, value)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                spark.conf.unset(name)
            else:
                spark.conf.set(name, value)
