"""Class names: how a dataset's class folders are matched to the labels an endpoint's model knows
(exactly, else ignoring case, separators and a numbered prefix such as ``001.``)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from core.errors import InvalidInputError
from core.evaluation.metrics import label_order

_NUMBERED_PREFIX = re.compile(r"^\d+[._\-\s]+(?=\D)")
_SEPARATORS = re.compile(r"[\s_\-.]+")


def _loose_name(name: str) -> str:
    """``"001.Affenpinscher"`` and ``"affenpinscher"`` give the same key."""
    return _SEPARATORS.sub("_", _NUMBERED_PREFIX.sub("", name.strip()).casefold()).strip("_")


def _preview(names: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(names[:most])
    return shown + (f", … ({len(names) - most} more)" if len(names) > most else "")


@dataclass(frozen=True)
class ClassMatch:
    """How a dataset's class folders map onto an endpoint's labels.

    Attributes:
        mapping: class folder -> endpoint label, for each folder that matched.
        unmatched: class folders matching no label (their images are left out).
        unused_labels: endpoint labels no class folder matched (they can still be answered).
        loose: folders that matched only ignoring case, separators or a numbered prefix.
    """

    mapping: Mapping[str, str]
    unmatched: tuple[str, ...] = ()
    unused_labels: tuple[str, ...] = ()
    loose: tuple[str, ...] = ()

    @property
    def notes(self) -> list[str]:
        """What a user should know about the match, one sentence each."""
        notes = []
        if self.unmatched:
            notes.append(f"{len(self.unmatched)} of {len(self.mapping) + len(self.unmatched)} class folders match no "
                         f"label of the endpoint and were left out ({_preview(self.unmatched)}): the model was "
                         "not trained on them, or they are named differently")
        if self.loose:
            examples = [f"{folder} → {self.mapping[folder]}" for folder in self.loose]
            notes.append(f"{len(self.loose)} class folders matched a label only ignoring case, separators or a "
                         f"numbered prefix ({_preview(examples, 3)})")
        if self.unused_labels:
            notes.append(f"the endpoint knows {len(self.unused_labels)} labels that no class folder has "
                         f"({_preview(self.unused_labels)}): it may still answer them")
        return notes


def match_classes(folders: Sequence[str], labels: Sequence[str], *, endpoint: str) -> ClassMatch:
    """Maps class folders onto an endpoint's labels by name: exactly, else by :func:`_loose_name`
    when exactly one label has that loose name.

    Raises:
        InvalidInputError: no folder matches any label.
    """
    exact = set(labels)
    loose_keys = Counter(_loose_name(label) for label in labels)
    by_loose = {_loose_name(label): label for label in labels if loose_keys[_loose_name(label)] == 1}
    mapping: dict[str, str] = {}
    loose: list[str] = []
    for folder in folders:
        if folder in exact:
            mapping[folder] = folder
        elif _loose_name(folder) in by_loose:
            mapping[folder] = by_loose[_loose_name(folder)]
            loose.append(folder)
    if not mapping:
        raise InvalidInputError(
            f"none of the {len(folders)} class folders ({_preview(list(folders))}) is a label of endpoint "
            f"{endpoint!r}, whose model knows {len(labels)} labels ({_preview(list(labels))}): it was trained on "
            "other classes, or the folders are named differently"
        )
    used = set(mapping.values())
    return ClassMatch(
        mapping=mapping,
        unmatched=tuple(folder for folder in folders if folder not in mapping),
        unused_labels=tuple(sorted((label for label in labels if label not in used), key=label_order)),
        loose=tuple(loose),
    )
