"""Local SageMaker: a training job trains in its own process, as in a container; models are documents."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
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
        """Train to completion in a process of its own and record the job as DescribeTrainingJob shows it.

        The process sees the container's folders (``training.run_job``); each
        channel holds every object under its ``S3Uri`` prefix, and a file the
        container could not read fails the job with the container's error. The
        model folder is uploaded as ``model.tar.gz``, as SageMaker does.
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
            folder = self._job_folder(TrainingJobName, channels, job["HyperParameters"])
            final = self._run_container(folder)
            training.archive_model_dir(folder / training.MODEL_DIR, self.backend.store.localize(output_uri))
            job.update(TrainingJobStatus="Completed", SecondaryStatus="Completed",
                       ModelArtifacts={"S3ModelArtifacts": output_uri},
                       FinalMetricDataList=training.final_metric_data_list(final, now()))
        except PipelineError as exc:
            job.update(TrainingJobStatus="Failed", SecondaryStatus="Failed", FailureReason=str(exc))
        job.update(TrainingEndTime=now(), TrainingTimeInSeconds=round(time.perf_counter() - started, 3))
        self.jobs.write(TrainingJobName, job)
        return {"TrainingJobArn": job["TrainingJobArn"]}

    def _job_folder(self, job_name: str, channels: dict[str, str], hyperparameters: dict) -> Path:
        """The job's ``/opt/ml``: hyper-parameters and channels in; model and output come back."""
        folder = self.backend.home / "sagemaker" / "jobs" / job_name
        shutil.rmtree(folder, ignore_errors=True)
        config = folder / training.HYPERPARAMETERS_FILE
        config.parent.mkdir(parents=True)
        config.write_text(json.dumps(hyperparameters))
        for name, uri in channels.items():
            self._channel(folder / training.DATA_DIR / name, name, uri)
        return folder

    def _run_container(self, folder: Path) -> dict[str, float]:
        """Run the training process; its final metrics, or its failure as the job's FailureReason."""
        log = folder / "output" / "training.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "wb") as out:
            finished = subprocess.run([sys.executable, "-m", training.__name__, str(folder)],
                                      stdout=out, stderr=subprocess.STDOUT)
        failure = folder / training.FAILURE_FILE
        if failure.exists():
            raise PipelineError(failure.read_text())
        if finished.returncode != 0:
            ended = (f"was ended by signal {signal.Signals(-finished.returncode).name}"
                     if finished.returncode < 0 else f"exited with status {finished.returncode}")
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise PipelineError(f"the training process {ended} (log: {log}) {tail[0]}".rstrip())
        metrics = folder / training.METRICS_FILE
        if not metrics.exists():
            raise PipelineError(f"the training process ended without its metrics (log: {log})")
        return json.loads(metrics.read_text())

    def _channel(self, folder: Path, channel: str, uri: str) -> Path:
        """The channel folder as the container sees it (``/opt/ml/input/data/<channel>``): every object
        whose key starts with the S3Uri prefix, at its key relative to the prefix."""
        _, prefix = split_s3_uri(uri)
        objects = self.backend.objects_under(uri)
        if not objects:
            raise PipelineError(f"channel {channel}: no S3 objects found under {uri}")
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
