"""A SageMaker training job followed from this machine by an analyser: whether it still runs, and StopTraining."""

from __future__ import annotations

import logging
from typing import Any

LOG = logging.getLogger(__name__)

MAX_FAILED_DESCRIBES = 20
"""DescribeTrainingJob failures in a row before an analyser gives up following the job."""


class SageMakerJob:
    """A SageMaker training job watched from outside: whether it still runs, and StopTraining.

    Credentials and region come from the environment (the console passes its profile and
    region), as for any boto3 client. A failed DescribeTrainingJob counts as still running and
    is retried at the next poll, up to ``MAX_FAILED_DESCRIBES`` in a row.

    Attributes:
        status: the job's last described ``TrainingJobStatus`` ("" before the first answer).
    """

    RUNNING = ("InProgress", "Stopping")

    def __init__(self, job_name: str, client: Any = None) -> None:
        import boto3

        self.job_name = job_name
        self.client = client if client is not None else boto3.client("sagemaker")
        self.status = ""
        self.failures = 0

    def running(self) -> bool:
        """Whether the job may still write its trial.

        Raises:
            botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError: the last of
                ``MAX_FAILED_DESCRIBES`` failed calls in a row.
        """
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.status = self.client.describe_training_job(TrainingJobName=self.job_name)["TrainingJobStatus"]
        except (BotoCoreError, ClientError) as exc:
            self.failures += 1
            if self.failures >= MAX_FAILED_DESCRIBES:
                raise
            LOG.warning("DescribeTrainingJob %s failed (%d in a row; retrying): %s", self.job_name, self.failures, exc)
            return True
        self.failures = 0
        return self.status in self.RUNNING

    def stop(self) -> str | None:
        """Asks SageMaker to stop the job; returns None, or why it could not."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.stop_training_job(TrainingJobName=self.job_name)
        except (BotoCoreError, ClientError) as exc:
            return f"SageMaker did not stop the job: {exc}"
        return None
