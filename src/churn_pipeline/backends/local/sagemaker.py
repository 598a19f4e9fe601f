"""Local SageMaker: a training job trains, and a transform job scores, in a process of its own, as in a
container; models are documents."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from ... import training
from ...aws_errors import SageMakerResourceInUse, SageMakerValidation
from ...errors import PipelineError
from ...storage import split_s3_uri
from ...workspace import TRAINING_THREADS_ENV
from . import transform
from .common import JsonStore, arn, now
from .tuning_jobs import TuningJobs


def _run_job_process(
    module: str, folder: Path, log: Path, failure: Path, kind: str, environment: dict[str, str] | None = None
) -> None:
    """Run a job's process (``python -m <module> <folder>``) as its container; its failure file, or how
    it ended, becomes a PipelineError (the job's FailureReason)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module, str(folder)]
    with open(log, "wb") as out:
        env = {**os.environ, **environment} if environment else None
        finished = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if failure.exists():
        raise PipelineError(failure.read_text())
    if finished.returncode != 0:
        ended = (
            f"was ended by signal {signal.Signals(-finished.returncode).name}"
            if finished.returncode < 0
            else f"exited with status {finished.returncode}"
        )
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
        raise PipelineError(f"the {kind} process {ended} (log: {log}) {tail[0]}".rstrip())


def _extract(archive: Path, target: Path) -> None:
    """A ``.tar.gz`` unpacked as the container unpacks the model and the source directory."""
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise PipelineError(f"{archive} is not a .tar.gz archive: {exc}") from exc


class LocalSageMaker(TuningJobs):
    def __init__(self, backend):
        self.backend = backend
        self.jobs = JsonStore(backend.home / "sagemaker" / "training-jobs")
        self.models = JsonStore(backend.home / "sagemaker" / "models")
        self.transform_jobs = JsonStore(backend.home / "sagemaker" / "transform-jobs")
        self.tuning_jobs = JsonStore(backend.home / "sagemaker" / "tuning-jobs")

    def create_training_job(self, **request) -> dict:
        return self._train(None, **request)

    def _train(
        self,
        threads: int | None,
        TrainingJobName: str,
        AlgorithmSpecification: dict,
        RoleArn: str,
        InputDataConfig: list,
        OutputDataConfig: dict,
        HyperParameters: dict | None = None,
        **settings,
    ) -> dict:
        """Train to completion in a process of its own and record the job as DescribeTrainingJob shows it.

        The process sees the container's folders (``training.run_job``); each
        channel holds every object under its ``S3Uri`` prefix, and a file the
        container could not read fails the job with the container's error. The
        model folder is uploaded as ``model.tar.gz``, as SageMaker does.
        """
        if self.jobs.exists(TrainingJobName):
            raise SageMakerResourceInUse.error(
                f"Training job names must be unique within an AWS account and "
                f"region, and a training job with this name already exists "
                f"({TrainingJobName})",
                "CreateTrainingJob",
            )
        channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in InputDataConfig}
        output_uri = f"{OutputDataConfig['S3OutputPath'].rstrip('/')}/{TrainingJobName}/output/model.tar.gz"
        job = {
            "TrainingJobName": TrainingJobName,
            "TrainingJobArn": arn("sagemaker", "training-job/", TrainingJobName.lower()),
            "AlgorithmSpecification": AlgorithmSpecification,
            "RoleArn": RoleArn,
            "InputDataConfig": InputDataConfig,
            "OutputDataConfig": OutputDataConfig,
            "HyperParameters": HyperParameters or {},
            **settings,
            "CreationTime": now(),
            "TrainingStartTime": now(),
        }
        started = time.perf_counter()
        try:
            missing = {"train", "validation"} - set(channels)
            if missing:
                raise PipelineError(f"channels {', '.join(sorted(missing))} are missing")
            folder = self._job_folder(TrainingJobName, channels, job["HyperParameters"])
            final = self._run_container(folder, threads)
            training.archive_model_dir(folder / training.MODEL_DIR, self.backend.mirror.localize(output_uri))
            job.update(
                TrainingJobStatus="Completed",
                SecondaryStatus="Completed",
                ModelArtifacts={"S3ModelArtifacts": output_uri},
                FinalMetricDataList=training.final_metric_data_list(final, now()),
            )
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

    def _run_container(self, folder: Path, threads: int | None = None) -> dict[str, float]:
        """Run the training process (on ``threads`` cores, when it shares the machine with other jobs: each
        of AWS's has an instance of its own); its final metrics, or its failure as the job's FailureReason."""
        log = folder / "output" / "training.log"
        environment = {TRAINING_THREADS_ENV: str(threads)} if threads else None
        _run_job_process(training.__name__, folder, log, folder / training.FAILURE_FILE, "training", environment)
        metrics = folder / training.METRICS_FILE
        if not metrics.exists():
            raise PipelineError(f"the training process ended without its metrics (log: {log})")
        return json.loads(metrics.read_text())

    def _channel(self, folder: Path, channel: str, uri: str) -> Path:
        """The channel folder as the container sees it (``/opt/ml/input/data/<channel>``): every object
        whose key starts with the S3Uri prefix, at its key relative to the prefix."""
        _, prefix = split_s3_uri(uri)
        objects = self.backend.mirror.objects_under(uri)
        if not objects:
            raise PipelineError(f"channel {channel}: no S3 objects found under {uri}")
        for found in objects:
            _, key = split_s3_uri(found)
            target = folder / (key[len(prefix) :].lstrip("/") or os.path.basename(key))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(self.backend.mirror.path(found))
        return folder

    def describe_training_job(self, TrainingJobName: str) -> dict:
        if not self.jobs.exists(TrainingJobName):
            raise SageMakerValidation.error(f"Requested resource not found: {TrainingJobName}", "DescribeTrainingJob")
        return self.jobs.read(TrainingJobName)

    def create_model(self, ModelName: str, PrimaryContainer: dict, ExecutionRoleArn: str, **settings) -> dict:
        if self.models.exists(ModelName):
            raise SageMakerValidation.error(
                f'Cannot create already existing model "{arn("sagemaker", "model/", ModelName.lower())}".',
                "CreateModel",
            )
        model_arn = arn("sagemaker", "model/", ModelName.lower())
        self.models.write(
            ModelName,
            {
                "ModelName": ModelName,
                "ModelArn": model_arn,
                "PrimaryContainer": PrimaryContainer,
                "ExecutionRoleArn": ExecutionRoleArn,
                **settings,
                "CreationTime": now(),
            },
        )
        return {"ModelArn": model_arn}

    def create_transform_job(
        self,
        TransformJobName: str,
        ModelName: str,
        TransformInput: dict,
        TransformOutput: dict,
        TransformResources: dict,
        DataProcessing: dict | None = None,
        MaxPayloadInMB: int = 6,
        Environment: dict | None = None,
        **settings,
    ) -> dict:
        """Score every object under the input prefix in a process of its own (``local/transform.py``) and
        record the job as DescribeTransformJob shows it; a failure becomes its FailureReason."""
        if self.transform_jobs.exists(TransformJobName):
            raise SageMakerResourceInUse.error(
                f"Job name must be unique within an AWS account and region, and a "
                f"job with this name already exists ({TransformJobName})",
                "CreateTransformJob",
            )
        model = self.describe_model(ModelName)
        processing = {"InputFilter": "$", "JoinSource": "None", "OutputFilter": "$", **(DataProcessing or {})}
        job = {
            "TransformJobName": TransformJobName,
            "TransformJobArn": arn("sagemaker", "transform-job/", TransformJobName.lower()),
            "ModelName": ModelName,
            "TransformInput": TransformInput,
            "TransformOutput": TransformOutput,
            "TransformResources": TransformResources,
            "DataProcessing": processing,
            "MaxPayloadInMB": MaxPayloadInMB,
            "Environment": Environment or {},
            **settings,
            "CreationTime": now(),
            "TransformStartTime": now(),
        }
        try:
            for name in ("InputFilter", "OutputFilter"):
                transform.check_filter(processing[name], name)
            transform.check_payload(settings.get("MaxConcurrentTransforms"), MaxPayloadInMB)
            source = TransformInput["DataSource"]["S3DataSource"]
            if source.get("S3DataType", "S3Prefix") != "S3Prefix" or TransformInput.get("SplitType") != "Line":
                raise PipelineError("the local transform job reads S3Prefix inputs split by line")
            folder = self._transform_folder(job, model, source["S3Uri"])
            self._run_transform(folder, TransformOutput["S3OutputPath"])
            job["TransformJobStatus"] = "Completed"
        except PipelineError as exc:
            job.update(TransformJobStatus="Failed", FailureReason=str(exc))
        job["TransformEndTime"] = now()
        self.transform_jobs.write(TransformJobName, job)
        return {"TransformJobArn": job["TransformJobArn"]}

    def _transform_folder(self, job: dict, model: dict, input_uri: str) -> Path:
        """The job's folder: the model and the script's source directory extracted as the container
        sees them, and every input object (its name relative to the prefix)."""
        folder = self.backend.home / "sagemaker" / "transform" / job["TransformJobName"]
        shutil.rmtree(folder, ignore_errors=True)
        container = model["PrimaryContainer"]
        environment = {**container.get("Environment", {}), **job["Environment"]}
        _extract(self.backend.store.local_path(container["ModelDataUrl"]), folder / transform.MODEL_DIR)
        if environment.get("SAGEMAKER_SUBMIT_DIRECTORY", "").startswith("s3://"):
            _extract(
                self.backend.store.local_path(environment["SAGEMAKER_SUBMIT_DIRECTORY"]), folder / transform.CODE_DIR
            )
        _, prefix = split_s3_uri(input_uri)
        inputs = [
            (split_s3_uri(found)[1][len(prefix) :].lstrip("/"), str(self.backend.mirror.path(found)))
            for found in self.backend.mirror.objects_under(input_uri)
        ]
        if not inputs:
            raise PipelineError(f"no S3 objects found under {input_uri}")
        (folder / transform.JOB_FILE).write_text(
            json.dumps(
                {
                    "DataProcessing": job["DataProcessing"],
                    "Environment": environment,
                    "Inputs": inputs,
                    "MaxPayloadInMB": job["MaxPayloadInMB"],
                    "MaxConcurrentTransforms": job.get("MaxConcurrentTransforms"),
                    "ContentType": job["TransformInput"].get("ContentType", ""),
                    "Accept": job["TransformOutput"].get("Accept", "text/csv"),
                }
            )
        )
        return folder

    def _run_transform(self, folder: Path, output_uri: str) -> None:
        _run_job_process(
            transform.__name__, folder, folder / "transform.log", folder / transform.FAILURE_FILE, "transform"
        )
        for result in sorted((folder / transform.OUTPUT_DIR).glob("*.out")):
            self.backend.store.stage(f"{output_uri.rstrip('/')}/{result.name}", str(result))

    def describe_transform_job(self, TransformJobName: str) -> dict:
        if not self.transform_jobs.exists(TransformJobName):
            raise SageMakerValidation.error(
                f"Could not find requested job with name {TransformJobName}", "DescribeTransformJob"
            )
        return self.transform_jobs.read(TransformJobName)

    def describe_model(self, ModelName: str) -> dict:
        if not self.models.exists(ModelName):
            raise SageMakerValidation.error(f'Could not find model "{ModelName}".', "DescribeModel")
        return self.models.read(ModelName)
