"""The Spark ETL that AWS Glue runs and local Spark runs: one implementation.

``session``: the local SparkSession; ``source``: an input's lines as every pass
reads them; ``validation``: every row checked; ``encoding``: the features;
``split``: the stratified, seeded split written as CSV parts; ``job``: the
whole ETL (raw CSV -> validated -> encoded -> train/validation/test parts + the
feature manifest) and its record for reuse.
"""
