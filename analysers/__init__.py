"""The console's analysers of training jobs: the Debugger's rule evaluator and the Profiler's analysis.

Each is a process run with the job environment's interpreter (smdebug, numpy), as
``python -m analysers.<module>`` with the repository on ``PYTHONPATH``: beside a local job
(the training supervisor starts them, ``core.training._supervisor.ANALYSERS``), or on this
machine for a SageMaker job, following what the job uploads to S3 (``core.debugger.evaluator``,
``core.profiler.evaluator``). SageMaker runs rule jobs beside a training job in the same way.

They stand between the two other folders and may import both: ``core`` (the job store and the
profiler's aggregation) and the standard-library leaf modules of ``entrypoints/`` as
``entrypoints.<module>`` (``debug_config``, ``s3_sync``), which the training script imports
flat from its own folder. Nothing here is shipped with a job: ``entrypoints/`` is packed into
``sourcedir.tar.gz`` without them.
"""

import sys


def run_without_torch() -> None:
    """Makes ``import torch`` fail in this process: call it first in an analyser run as ``__main__``.

    An analyser reads what a job wrote; it needs no torch. smdebug imports ``torch.distributed``
    all the same, only to learn the rank of a process that writes a trial (and does without it
    when the import fails), which costs each analyser about 2.5 s of CPU and 600 MB of memory at
    start-up, beside every local job. ``None`` in ``sys.modules`` is Python's way to stop an import.
    """
    sys.modules.setdefault("torch", None)  # type: ignore[arg-type]
