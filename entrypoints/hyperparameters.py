"""The training script's hyperparameters, each declared once: name, parser, default, choices, help, tunable.

Standard library only, and it imports no module beside it: ``train.py`` builds its command line
from it as ``hyperparameters`` (``entrypoints/`` is the job's script folder), the app imports it as
``entrypoints.hyperparameters``, so the models the forms offer, the defaults the console sends and
the names a tuning job may search are the script's own. The job's folders (``--data-dir`` and the
other ``SM_*`` paths) are where SageMaker puts things, not hyperparameters: ``train.py`` keeps them.

SageMaker passes every hyperparameter as a string, booleans included: ``parse_bool`` reads them,
for this script's options and its siblings'.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

MODELS: tuple[str, ...] = ("efficientnet_lite0", "resnet18", "resnet50")
OPTIMIZERS: tuple[str, ...] = ("adamw", "sgd")
AUGMENTATIONS: tuple[str, ...] = ("none", "light", "heavy")


def parse_bool(value: str) -> bool:
    """Parse a boolean hyperparameter as SageMaker passes it: true/false, 1/0, yes/no, any case.

    Raises:
        argparse.ArgumentTypeError: anything else.
    """
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false (or 1/0), got {value!r}")


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        number = int(value)
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return number

    parse.__name__ = "int"  # argparse names the type in "invalid int value"
    return parse


def _fraction(value: str) -> float:
    number = float(value)
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return number


@dataclass(frozen=True)
class Hyperparameter:
    """One ``--name value`` option of the training script.

    Attributes:
        name: the option without its dashes, as SageMaker and the app spell it (``batch-size``).
        default: the value when the option is not given.
        help: the ``--help`` text.
        parse: turns the string into the value (argparse's ``type``).
        choices: the values allowed; None allows any the parser takes.
        tunable: a tuning job may search it.
    """

    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    tunable: bool = False


HYPERPARAMETERS: Mapping[str, Hyperparameter] = MappingProxyType({h.name: h for h in (
    Hyperparameter("model", "efficientnet_lite0", "architecture", choices=MODELS, tunable=True),
    Hyperparameter("epochs", 2, "number of epochs", _int_at_least(1), tunable=True),
    Hyperparameter("batch-size", 32, "images per training step", _int_at_least(1), tunable=True),
    Hyperparameter("lr", 2e-3, "peak learning rate, cosine-decayed per step", float, tunable=True),
    Hyperparameter("weight-decay", 1e-4, "weight decay", float, tunable=True),
    Hyperparameter("optimizer", "adamw", "sgd: Nesterov, 0.9", choices=OPTIMIZERS, tunable=True),
    Hyperparameter("image-size", 64, "side of the square input", _int_at_least(8), tunable=True),
    Hyperparameter("seed", 42, "seeds python, numpy, torch and the data order", int, tunable=True),
    Hyperparameter("num-workers", 2, "DataLoader worker processes", _int_at_least(0)),
    Hyperparameter("augment", "light", "light: small affine, no flips; heavy: crops, flips, colour, erasing",
                   choices=AUGMENTATIONS, tunable=True),
    Hyperparameter("pretrained", True, "start from ImageNet weights", parse_bool),
    Hyperparameter("weights-path", None, "weights file; unset: the packaged or hub-cached one", Path),
    Hyperparameter("freeze-backbone", False, "train only the classifier", parse_bool, tunable=True),
    Hyperparameter("max-steps-per-epoch", 0, "step cap; 0 = all", _int_at_least(0), tunable=True),
    Hyperparameter("amp", False, "mixed precision: bfloat16 where the device has it, else float16 with a "
                   "gradient scaler", parse_bool),
    Hyperparameter("channels-last", False, "channels-last memory format (tensor-core convolutions)", parse_bool),
    Hyperparameter("compile", False, "torch.compile the training steps: minutes of compiling first, faster "
                   "steps after (long GPU runs)", parse_bool),
    Hyperparameter("max-bad-fraction", 0.01,
                   "unreadable image files are skipped; fail when more than this share of a split is unreadable",
                   _fraction),
)})
"""Every hyperparameter of ``train.py``, by name, in the order ``--help`` lists them."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds every declared hyperparameter to the training script's parser."""
    for h in HYPERPARAMETERS.values():
        parser.add_argument(f"--{h.name}", type=h.parse, choices=h.choices, default=h.default, help=h.help)
