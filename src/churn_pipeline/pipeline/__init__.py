"""The pipeline's use cases, on either backend: a run and its staging (``run``, ``staging``), the
shared resources it creates or updates (``deploy``), ETL reuse (``etl_reuse``), the state machine's
execution (``execution``), the model's evaluation (``evaluation``) and batch scoring (``scoring``)."""
