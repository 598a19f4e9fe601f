"""The scoring Batch Transform's script: the SageMaker XGBoost container runs it in script mode.

The scoring model's environment names this file (``SAGEMAKER_PROGRAM``) and an
``s3://`` archive holding it, the ``churn_pipeline`` package and the model's
feature manifest (``SAGEMAKER_SUBMIT_DIRECTORY``); the container calls the four
functions below. The local backend's transform jobs call them the same way.
"""

import os

from churn_pipeline import container

HERE = os.path.dirname(os.path.abspath(__file__))


def model_fn(model_dir):
    return container.transform_model(model_dir, HERE)


def input_fn(input_data, content_type):
    return container.csv_input(input_data, content_type)


def predict_fn(input_data, model):
    return container.transform_predict(input_data, model)


def output_fn(prediction, accept):
    return container.transform_output(prediction, accept)
