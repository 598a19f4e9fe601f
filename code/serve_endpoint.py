"""The endpoint's script: the SageMaker XGBoost container runs it in script mode.

The model the state machine's Save Model state creates names this file
(``SAGEMAKER_PROGRAM``) and an ``s3://`` archive holding it and the
``churn_pipeline`` package (``SAGEMAKER_SUBMIT_DIRECTORY``); its environment
says where the feature manifest and the run's decision are. The local endpoint
runs this same file the way the container does.
"""

from churn_pipeline import inference


def model_fn(model_dir):
    return inference.model_fn(model_dir)


def input_fn(input_data, content_type):
    return inference.input_fn(input_data, content_type)


def predict_fn(input_data, model):
    return inference.predict_fn(input_data, model)


def output_fn(prediction, accept):
    return inference.output_fn(prediction, accept)
