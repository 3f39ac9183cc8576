"""The unreadable images of a run, split by split: each logged once, counted, and capped.

The loaders skip a file that cannot be decoded and list it in ``Batch.skipped`` (see
``imagedata``), in whichever process decoded it; the training script hands every batch's list to
the tally of its split here, in the main process. A split may hold up to ``--max-bad-fraction``
of unreadable files (counted over the whole split, distinct files); one more ends the job with
``TooManyUnreadable``. The log has one line per file, the first time it is met::

    skipped unreadable image train/b/x.jpg: UnidentifiedImageError: cannot identify image file ...

and ``summary()`` gives the counts as ``train=2/300 valid=1/60``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping

from imagedata import DataError, Unreadable

LOG = logging.getLogger("train.data")
EXAMPLES_IN_ERROR = 3
DEFAULT_MAX_FRACTION = 0.01


class TooManyUnreadable(DataError):
    """More of a split's files are unreadable than ``--max-bad-fraction`` allows."""


class UnreadableImages:
    """The unreadable files met so far in one split of ``total`` files.

    Args:
        split: the split's folder name (``train``, ``valid``, ``test``).
        total: how many files the split holds (readable or not).
        max_fraction: the share of ``total`` that may be unreadable (0 to 1).
    """

    def __init__(self, split: str, total: int, max_fraction: float = DEFAULT_MAX_FRACTION) -> None:
        self.split = split
        self.total = total
        self.max_fraction = max_fraction
        self.reasons: dict[str, str] = {}  # path -> reason, in the order met

    @property
    def count(self) -> int:
        return len(self.reasons)

    @property
    def limit(self) -> int:
        """The most unreadable files the split may hold."""
        return math.floor(self.max_fraction * self.total + 1e-9)

    def add(self, skipped: Iterable[Unreadable]) -> None:
        """Counts and logs the files not met before.

        Raises:
            TooManyUnreadable: the split now holds more unreadable files than allowed.
        """
        for item in skipped:
            if item.path not in self.reasons:
                self.reasons[item.path] = item.reason
                LOG.warning("skipped unreadable image %s: %s", item.path, item.reason)
        self.check()

    def check(self) -> None:
        """Raises TooManyUnreadable when the split holds more unreadable files than allowed."""
        if self.count > self.limit:
            raise TooManyUnreadable(self.failure())

    def failure(self) -> str:
        """Why the job stops: counts, the cap, the first files, what to do."""
        examples = ", ".join(list(self.reasons)[:EXAMPLES_IN_ERROR])
        more = f" and {self.count - EXAMPLES_IN_ERROR} more" if self.count > EXAMPLES_IN_ERROR else ""
        return (
            f"too many unreadable images in {self.split}/: {self.count} of {self.total} files "
            f"({self.count / max(self.total, 1):.1%}) is more than --max-bad-fraction {self.max_fraction:g} "
            f"allows (at most {self.limit}); {examples}{more}: fix or remove them, or raise --max-bad-fraction"
        )

    def state(self) -> dict[str, str]:
        """For the checkpoint: the files met so far and why."""
        return dict(self.reasons)

    def restore(self, reasons: Mapping[str, str]) -> None:
        """Takes back the files of a checkpoint (without logging them again)."""
        self.reasons.update(reasons)


def summary(tallies: Iterable[UnreadableImages]) -> str:
    """``train=2/300 valid=1/60``: unreadable files / files, per split."""
    return " ".join(f"{t.split}={t.count}/{t.total}" for t in tallies)
