"""Test session set-up shared by tests/ and the nbval run of notebooks/.

Every test session gets a fresh local-backend home and artifacts root, so the
committed notebooks re-run by nbval start from nothing, as on a new machine.
"""

import atexit
import os
import shutil
import tempfile

_session_dir = tempfile.mkdtemp(prefix="churn-pipeline-tests-")
atexit.register(shutil.rmtree, _session_dir, ignore_errors=True)  # the session's home goes with it
os.environ.setdefault("CHURN_PIPELINE_HOME", os.path.join(_session_dir, "home"))
os.environ.setdefault("CHURN_PIPELINE_ARTIFACTS", os.path.join(_session_dir, "artifacts"))
os.environ.setdefault("CHURN_PIPELINE_PROJECT", os.path.dirname(os.path.abspath(__file__)))
# SDK-built values are keyed by content: one cache serves every test's home
os.environ.setdefault("CHURN_PIPELINE_CACHE", os.path.join(_session_dir, "cache"))
