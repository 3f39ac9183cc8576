"""Listing and stopping SageMaker jobs, the same way for training and tuning jobs.

Both kinds are listed newest first by a paginated ``List*`` call capped at the caller's limit,
and stopped by a ``Stop*`` call that SageMaker refuses (a ValidationException) when the job
finished between the describe that found it running and the stop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from core.aws import aws_errors
from core.errors import InvalidInputError
from core.types import JobStatus

MAX_PAGE_SIZE = 100
"""The largest MaxResults SageMaker's List* operations accept."""


class _Job(Protocol):
    @property
    def status(self) -> JobStatus: ...


J = TypeVar("J", bound=_Job)


def list_newest(client: Any, operation: str, summaries_key: str, *, limit: int, what: str) -> list[dict[str, Any]]:
    """The summaries of a SageMaker List* operation, newest first, at most limit of them.

    Args:
        client: the sagemaker client.
        operation: the paginated operation, such as ``"list_training_jobs"``.
        summaries_key: where each page holds its summaries, such as ``"TrainingJobSummaries"``.
        limit: how many to return at most; below 1 asks SageMaker nothing.
        what: what is listed, for the error ("listing training jobs").

    Raises:
        ConsoleError: the translated AWS error.
    """
    if limit < 1:
        return []
    summaries: list[dict[str, Any]] = []
    with aws_errors(what):
        pages = client.get_paginator(operation).paginate(
            SortBy="CreationTime",
            SortOrder="Descending",
            PaginationConfig={"MaxItems": limit, "PageSize": min(limit, MAX_PAGE_SIZE)},
        )
        for page in pages:
            summaries.extend(page[summaries_key])
    return summaries


def stop_job(name: str, *, describe: Callable[[str], J], send_stop: Callable[[], object], what: str) -> J:
    """Stops the job called name unless it has finished or is stopping; returns it as described after.

    Args:
        name: the job's name.
        describe: the job of a name, as SageMaker describes it now.
        send_stop: sends the Stop* request for this job.
        what: the job, for the error ("training job x").

    Raises:
        NotFoundError: no job of that name.
        InvalidInputError: SageMaker refused the stop and the job is still running.
        ConsoleError: another translated AWS error.
    """
    job = describe(name)
    if job.status.is_terminal or job.status is JobStatus.STOPPING:
        return job
    try:
        with aws_errors(f"stopping {what}"):
            send_stop()
    except InvalidInputError:
        job = describe(name)  # it finished between describe and stop
        if not job.status.is_terminal:
            raise
        return job
    return describe(name)
