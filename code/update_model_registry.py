"""Lambda: record a model that passed the accuracy gate in the model registry.

The registry comes from the environment: ``MODEL_REGISTRY_TABLE`` (DynamoDB on
AWS) or ``MODEL_REGISTRY_URL`` (``sqlite:///...`` locally). A second write for
the same run id fails and changes nothing.
"""

from datetime import datetime, timezone

from churn_pipeline.registry import RegistryRecord, registry_from_environment


def handler(event, context):
    values = dict(event)
    values.setdefault("created_at", datetime.now(timezone.utc).isoformat(timespec="seconds"))
    values.setdefault("status", "approved")
    record = RegistryRecord.from_mapping(values)
    registry_from_environment().register(record)
    return {"run_id": record.run_id, "model_name": record.model_name, "status": record.status}
