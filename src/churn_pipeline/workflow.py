"""The pipeline's steps as the three notebooks call them, on either backend (the ``pipeline`` package
holds them; this facade keeps the notebooks short).

01 ``start_run`` -> ``stage_data`` -> ``deploy_etl_job`` -> ``deploy_functions``
02 ``resume_run`` -> ``plan_etl`` -> ``build_state_machine`` -> ``deploy_state_machine`` -> ``execute``
   -> ``search_jobs`` -> ``raise_if_failed``
03 ``resume_run`` -> ``registry_record`` -> ``evaluate_model`` -> ``record_decision``
   -> ``export.write_parameters``
04 ``monitor_folder`` -> ``current_model`` -> ``monitor_spark`` -> [``demonstration_window``]
   -> ``monitor_windows``
"""

from __future__ import annotations

from . import quality
from .etl.spark_worker import local_session
from .pipeline.deploy import deploy_etl_job, deploy_functions, deploy_state_machine
from .pipeline.etl_reuse import plan_etl
from .pipeline.evaluation import evaluate_model, record_decision, registry_record
from .pipeline.execution import build_state_machine, execute, raise_if_failed
from .pipeline.monitor import current_model, demonstration_window, monitor_folder, monitor_windows
from .pipeline.monitor_job import in_s3
from .pipeline.run import resume_run, start_run
from .pipeline.search import search_jobs
from .pipeline.staging import stage_data

#: notebook 04's thresholds, by name
MONITOR_THRESHOLDS = tuple(quality.THRESHOLDS)


def monitor_spark(params, windows):
    """The Spark session the monitor counts on: none for windows in S3, which the ETL job counts where
    they lie; else local Spark (a demonstration window is made and counted here too)."""
    return None if windows and in_s3(windows) else local_session(params["spark_master"])


__all__ = [
    "MONITOR_THRESHOLDS",
    "current_model",
    "demonstration_window",
    "monitor_folder",
    "monitor_spark",
    "monitor_windows",
    "build_state_machine",
    "deploy_etl_job",
    "deploy_functions",
    "deploy_state_machine",
    "evaluate_model",
    "execute",
    "plan_etl",
    "raise_if_failed",
    "record_decision",
    "registry_record",
    "resume_run",
    "search_jobs",
    "stage_data",
    "start_run",
]
