"""The Tuning page's launch form: its rows of ranges parsed into a spec's ranges, and the
hyperparameters of the fixed fields and of a full training run of the best trial.

Form values arrive as strings, numbers, lists, None or NaN (an empty data-editor cell); all
of them blank counts as not given.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from core.errors import InvalidInputError
from core.tuning.spec import CategoricalRange, ContinuousRange, IntegerRange, ParameterRange, Scaling, check_range

RANGE_TYPES = ("Continuous", "Integer", "Categorical")
"""The range types the form offers (SageMaker's ContinuousParameterRanges and so on)."""

DEFAULT_RANGE_ROWS: tuple[Mapping[str, str], ...] = (
    {"name": "lr", "type": "Continuous", "min": "0.0001", "max": "0.01", "values": "", "scaling": "Logarithmic"},
    {"name": "batch-size", "type": "Categorical", "min": "", "max": "", "values": "16, 32, 64", "scaling": "Auto"},
    {"name": "epochs", "type": "Integer", "min": "1", "max": "3", "values": "", "scaling": "Linear"},
)
"""The form's starting ranges: learning rate on a log scale, batch size categorical, epochs."""

FULL_TRAINING_DROPS = ("max-steps-per-epoch",)
"""Budget caps of the trials that a full training run leaves out."""


def _blank(raw: object) -> bool:
    return raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw).strip() == ""


def _number(raw: object, name: str, which: str, *, integer: bool) -> float | int:
    if _blank(raw):
        raise InvalidInputError(f"parameter {name}: give a {which} value")
    try:
        number = float(str(raw).strip())
    except ValueError:
        raise InvalidInputError(f"parameter {name}: {which} {str(raw).strip()!r} is not a number") from None
    if not integer:
        return number
    if not number.is_integer():
        raise InvalidInputError(f"parameter {name}: {which} {str(raw).strip()!r} is not a whole number")
    return int(number)


def _values(raw: object) -> tuple[str, ...]:
    if _blank(raw):
        return ()
    items = str(raw).split(",") if isinstance(raw, str) else [str(v) for v in raw]  # type: ignore[attr-defined]
    return tuple(v.strip() for v in items if v.strip())


def build_ranges(rows: Iterable[Mapping[str, object]]) -> list[ParameterRange]:
    """Ranges from the form's rows; a row with no name is unused and skipped.

    Each row has ``name``, ``type`` (one of :data:`RANGE_TYPES`), ``min`` and ``max`` (numeric
    types; strings or numbers), ``values`` (categorical; comma-separated or a list) and
    ``scaling`` (Auto, Linear or Logarithmic; empty means Auto).

    Raises:
        InvalidInputError: a row that does not make a valid range; the message names it.
    """
    ranges: list[ParameterRange] = []
    for row in rows:
        if _blank(row.get("name")):
            continue
        name = str(row["name"]).strip()
        kind = "" if _blank(row.get("type")) else str(row["type"]).strip().capitalize()
        if kind not in RANGE_TYPES:
            choices = ", ".join(RANGE_TYPES)
            raise InvalidInputError(f"parameter {name}: type {kind or 'missing'}, choose one of {choices}")
        r: ParameterRange
        if kind == "Categorical":
            r = CategoricalRange(name, _values(row.get("values")))
        else:
            scaling_text = "Auto" if _blank(row.get("scaling")) else str(row["scaling"]).strip()
            try:
                scaling = Scaling(scaling_text)
            except ValueError:
                valid = ", ".join(s.value for s in Scaling)
                raise InvalidInputError(f"parameter {name}: scaling {scaling_text!r} is not one of {valid}") from None
            integer = kind == "Integer"
            low = _number(row.get("min"), name, "min", integer=integer)
            high = _number(row.get("max"), name, "max", integer=integer)
            r = (IntegerRange(name, int(low), int(high), scaling) if integer
                 else ContinuousRange(name, float(low), float(high), scaling))
        check_range(r)
        ranges.append(r)
    return ranges


def fixed_hyperparameters(
    ranges: Sequence[ParameterRange], values: Mapping[str, str | int | float | None]
) -> dict[str, str | int | float]:
    """The static hyperparameters of the form: those given, less any that are tuned."""
    tuned = {r.name for r in ranges}
    return {k: v for k, v in values.items() if k not in tuned and not _blank(v)}  # type: ignore[misc]


def longest_trial(ranges: Sequence[ParameterRange],
                  static: Mapping[str, str | int | float]) -> dict[str, str | int | float]:
    """The hyperparameters of the trial that trains longest, for the tuning job's estimate: the
    static ones, with ``epochs`` at the top of its range where it is searched."""
    trial = dict(static)
    for r in ranges:
        if r.name != "epochs":
            continue
        if isinstance(r, CategoricalRange):
            trial["epochs"] = max(int(float(v)) for v in r.values)
        else:
            trial["epochs"] = int(r.max_value)
    return trial


def full_training_hyperparameters(best: Mapping[str, str], epochs: int) -> dict[str, str | int | float]:
    """The best trial's hyperparameters for a full run: ``epochs`` epochs, no trial budget caps.

    Raises:
        InvalidInputError: epochs below 1.
    """
    if epochs < 1:
        raise InvalidInputError("epochs: at least 1")
    hyperparameters: dict[str, str | int | float] = {k: v for k, v in best.items() if k not in FULL_TRAINING_DROPS}
    hyperparameters["epochs"] = epochs
    return hyperparameters
