"""Local SageMaker: a training job trains in process to completion; models are documents."""

from __future__ import annotations

import time

import os
import shutil
from pathlib import Path

from ... import training
from ...aws_errors import SageMakerResourceInUse, SageMakerValidation
from ...errors import PipelineError
from ...storage import split_s3_uri
from .common import JsonStore, arn, now


class LocalSageMaker:
    def __init__(self, backend):
        self.backend = backend
        self.jobs = JsonStore(backend.home / "sagemaker" / "training-jobs")
        self.models = JsonStore(backend.home / "sagemaker" / "models")

    def create_training_job(self, TrainingJobName: str, AlgorithmSpecification: dict, RoleArn: str,
                            InputDataConfig: list, OutputDataConfig: dict, HyperParameters: dict | None = None,
                            **settings) -> dict:
        """Train in process, to completion, and record the job as DescribeTrainingJob shows it.

        Each channel is read as the SageMaker XGBoost container reads it: every
        object under the ``S3Uri`` prefix, and a file it could not read fails the
        job with the container's error.
        """
        if self.jobs.exists(TrainingJobName):
            raise SageMakerResourceInUse.error(f"Training job names must be unique within an AWS account and "
                                               f"region, and a training job with this name already exists "
                                               f"({TrainingJobName})", "CreateTrainingJob")
        channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in InputDataConfig}
        output_uri = f"{OutputDataConfig['S3OutputPath'].rstrip('/')}/{TrainingJobName}/output/model.tar.gz"
        job = {"TrainingJobName": TrainingJobName,
               "TrainingJobArn": arn("sagemaker", "training-job/", TrainingJobName.lower()),
               "AlgorithmSpecification": AlgorithmSpecification, "RoleArn": RoleArn,
               "InputDataConfig": InputDataConfig, "OutputDataConfig": OutputDataConfig,
               "HyperParameters": HyperParameters or {}, **settings,
               "CreationTime": now(), "TrainingStartTime": now()}
        started = time.perf_counter()
        try:
            missing = {"train", "validation"} - set(channels)
            if missing:
                raise PipelineError(f"channels {', '.join(sorted(missing))} are missing")
            paths = {name: self._channel(TrainingJobName, name, uri) for name, uri in channels.items()}
            booster, final = training.train(paths["train"], paths["validation"], job["HyperParameters"])
            training.save_model_archive(booster, self.backend.store.localize(output_uri))
            job.update(TrainingJobStatus="Completed", SecondaryStatus="Completed",
                       ModelArtifacts={"S3ModelArtifacts": output_uri},
                       FinalMetricDataList=training.final_metric_data_list(final, now()))
        except PipelineError as exc:
            job.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=str(exc))
        job.update(TrainingEndTime=now(), TrainingTimeInSeconds=round(time.perf_counter() - started, 3))
        self.jobs.write(TrainingJobName, job)
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def _channel(self, job_name: str, channel: str, uri: str) -> Path:
        """The channel folder as the container sees it (``/opt/ml/input/data/<channel>``): every object
        whose key starts with the S3Uri prefix, at its key relative to the prefix."""
        _, prefix = split_s3_uri(uri)
        objects = self.backend.objects_under(uri)
        if not objects:
            raise PipelineError(f"channel {channel}: no S3 objects found under {uri}")
        folder = self.backend.home / "sagemaker" / "input" / job_name / channel
        shutil.rmtree(folder, ignore_errors=True)
        for key, path in objects:
            target = folder / (key[len(prefix):].lstrip("/") or os.path.basename(key))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path)
        return folder

    def describe_training_job(self, TrainingJobName: str) -> dict:
        if not self.jobs.exists(TrainingJobName):
            raise SageMakerValidation.error(f"Requested resource not found: {TrainingJobName}",
                                            "DescribeTrainingJob")
        return self.jobs.read(TrainingJobName)

    def create_model(self, ModelName: str, PrimaryContainer: dict, ExecutionRoleArn: str, **settings) -> dict:
        if self.models.exists(ModelName):
            raise SageMakerValidation.error(
                f"Cannot create already existing model \"{arn('sagemaker', 'model/', ModelName.lower())}\".",
                "CreateModel")
        model_arn = arn("sagemaker", "model/", ModelName.lower())
        self.models.write(ModelName, {"ModelName": ModelName, "ModelArn": model_arn,
                                      "PrimaryContainer": PrimaryContainer, "ExecutionRoleArn": ExecutionRoleArn,
                                      **settings, "CreationTime": now()})
        return {"ModelArn": model_arn}

    def describe_model(self, ModelName: str) -> dict:
        if not self.models.exists(ModelName):
            raise SageMakerValidation.error(f"Could not find model \"{ModelName}\".", "DescribeModel")
        return self.models.read(ModelName)
