"""Lambda: read a training job's final metrics, by metric name, for the accuracy gate.

Event: ``{"TrainingJobName": "..."}``. Returns the job status and its metrics
keyed by name (``train:error``, ``validation:auc``, ... plus
``<channel>:accuracy`` derived from ``error``), so the state machine's Choice
reads ``metrics['validation:accuracy']`` and never depends on list order.
"""

from churn_pipeline import backends
from churn_pipeline.training import metrics_by_name


def handler(event, context):
    name = event.get("TrainingJobName")
    if not name:
        raise ValueError("event must name the TrainingJobName")
    job = backends.client("sagemaker").describe_training_job(TrainingJobName=name)
    metrics = metrics_by_name(job.get("FinalMetricDataList", []))
    if "validation:accuracy" not in metrics:
        raise ValueError(
            f"training job {name} reported no validation:error metric; keep 'error' in the eval_metric hyper-parameter"
        )
    return {
        "TrainingJobName": name,
        "TrainingJobStatus": job["TrainingJobStatus"],
        "ModelDataUrl": job.get("ModelArtifacts", {}).get("S3ModelArtifacts"),
        "metrics": metrics,
    }
