"""Notebook-first build-and-deploy pipeline for an XGBoost customer-churn model.

Submodules are imported on demand: importing the package starts no JVM, creates
no cloud client and touches no file.
"""

__version__ = "0.1.0"
