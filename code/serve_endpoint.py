"""The endpoint's script: the SageMaker XGBoost container runs it in script mode.

The model the state machine's Save Model state creates names this file
(``SAGEMAKER_PROGRAM``) and an ``s3://`` archive holding it and the
``churn_pipeline`` package (``SAGEMAKER_SUBMIT_DIRECTORY``); its environment
says where the feature manifest and the run's decision are. The local endpoint
runs this same file the way the container does.
"""

# the container looks the four functions up on this module by name
from churn_pipeline.inference import input_fn, model_fn, output_fn, predict_fn

__all__ = ["model_fn", "input_fn", "predict_fn", "output_fn"]
