"""The scoring Batch Transform's script: the SageMaker XGBoost container runs it in script mode.

The scoring model's environment names this file (``SAGEMAKER_PROGRAM``) and an
``s3://`` archive holding it, the ``churn_pipeline`` package and the model's
feature manifest (``SAGEMAKER_SUBMIT_DIRECTORY``); the container calls the four
functions below. The local backend's transform jobs call them the same way.
"""

import os

from churn_pipeline import container

# the container looks the four functions up on this module by name
from churn_pipeline.container import csv_input as input_fn
from churn_pipeline.container import transform_output as output_fn
from churn_pipeline.container import transform_predict as predict_fn

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn"]

HERE = os.path.dirname(os.path.abspath(__file__))


def model_fn(model_dir):
    return container.transform_model(model_dir, HERE)
