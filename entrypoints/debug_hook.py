"""Tensor capture for the training script: an smdebug hook configured by the ``--debug-*`` hyperparameters.

SageMaker Debugger closed to new customers, so the script registers its own hook and writes
its own trial (smdebug's format), which the rule evaluator reads beside the job. The hook
runs in train and eval modes (a forward pre-hook follows ``model.training``), so the curves
separate. What is saved:

- ``losses`` (full value), ``labels`` and ``predictions`` (the loss module's two inputs, for
  ClassImbalance): every step, in both modes; tiny.
- ``weights``, ``biases`` (train mode) and ``gradients``: every ``--debug-save-interval``
  steps as reductions only (l2 norm, mean, mean of absolute values, std, min, max and the
  fraction of zeros; for weights also ``update_ratio``, the norm of the change since the
  last saved step over the norm of the weights), since full tensors cost about 27 MB per saved
  step for EfficientNet-Lite0 (``--debug-full-tensors true`` adds them).
- with ``--debug-activations true``: ReLU-family outputs and inputs, tanh and sigmoid inputs
  (full values plus reductions) for DeadRelu, SaturatedActivation and PoorWeightInitialization.

The test-split evaluation after training runs in smdebug's PREDICT mode (``start_test``),
so only validation passes count as EVAL. The options and where the trial goes are
``debug_config.py``.

Known smdebug 1.0.34 traps handled here: a hook on a parameter that does not require a
gradient (frozen layers; sagemaker-python-sdk #1401) is never registered; its tensor writer's
``ndarray.tostring`` (gone in numpy 2) is replaced by ``tobytes``; with protobuf >= 4 the
pure-Python protobuf is forced before smdebug is imported. A capture that cannot start
never stops training: the log says why and ``capture.json`` in the out dir records it.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import math
import os
import struct
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from debug_config import (
    CAPTURE_FILE,
    REDUCED_COLLECTIONS,
    STEP_COLLECTIONS,
    DebugConfigError,
    default_rules,
    format_rules,
    prepare_smdebug_import,
    resolve_out_dir,
)

if TYPE_CHECKING:
    from torch import nn

LOG = logging.getLogger("train.debugger")

REDUCTIONS: tuple[str, ...] = ("l2", "mean", "abs_mean", "std", "min", "max", "zero_fraction")
RELU_TYPES = ("ReLU", "ReLU6", "LeakyReLU", "PReLU", "RReLU", "ELU", "CELU", "SELU")
ACTIVATION_KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "relu": (RELU_TYPES, ("relu_output", "relu_input")),
    "tanh": (("Tanh", "Hardtanh"), ("tanh_input",)),
    "sigmoid": (("Sigmoid", "Hardsigmoid"), ("sigmoid_input",)),
}  # kind -> (module class names, collections)


@dataclass
class CaptureInfo:
    """What ``capture.json`` records for the evaluator and the console."""

    out_dir: str
    collections: list[str]
    save_interval: int
    reductions: list[str]
    activations: bool
    full_tensors: bool
    loss_name: str = ""
    activation_layers: dict[str, int] = field(default_factory=dict)
    tensor_order: list[str] = field(default_factory=list)  # parameters, then modules, in model order
    started_at: float = field(default_factory=time.time)
    error: str | None = None



_MODE_STEP_PLUGIN, _MODE_PLUGIN = "mode_step", "mode"  # smdebug.core.modes' plugin names


_SMALL_VARINTS = [bytes((n,)) for n in range(0x80)]


def _varint(number: int) -> bytes:
    if number < 0x80:
        return _SMALL_VARINTS[number]
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | 0x80 if number else low)
        if not number:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field (field numbers below 16)."""
    size = len(payload)
    if size < 0x80:
        return bytes((number << 3 | 2, size)) + payload
    return _SMALL_VARINTS[number << 3 | 2] + _varint(size) + payload


@functools.lru_cache(maxsize=16)
def _mode_plugins(mode_step: int, mode_value: int) -> bytes:
    return (_field(1, _field(1, _MODE_STEP_PLUGIN.encode()) + _field(2, str(mode_step).encode()))
            + _field(1, _field(1, _MODE_PLUGIN.encode()) + _field(2, str(mode_value).encode())))


def encode_tensor_event(*, wall_time: float, step: int, tag: str, mode_step: int, mode_value: int, dtype: int,
                        shape: Sequence[int], content: bytes) -> bytes:
    """smdebug's serialized ``Event`` holding one numeric tensor, byte for byte.

    The same bytes as ``Event(summary=Summary(value=[Value(tag, metadata, tensor)]))`` built with
    protobuf (the tests compare them), without building messages: the pure-Python protobuf
    that smdebug needs takes about 0.2 ms per event, this a few microseconds.
    """
    dims = b"".join(_field(2, (b"\x08" + _varint(size) if size else b"") + _field(2, f"{tag}_{size}".encode()))
                    for size in shape)
    tensor = (b"\x08" + _varint(dtype) if dtype else b"") + _field(2, dims) + (_field(4, content) if content else b"")
    value = _field(1, tag.encode()) + _field(8, tensor) + _field(9, _mode_plugins(mode_step, mode_value))
    head = (b"\x09" + struct.pack("<d", wall_time) if wall_time else b"") + (b"\x10" + _varint(step) if step else b"")
    return head + _field(5, _field(1, value))


def patch_tensor_writer() -> None:
    """Makes smdebug's tensor writer numpy-2 safe and fast.

    smdebug 1.0.34 serialises arrays with ``ndarray.tostring`` (gone in numpy 2). Its
    ``make_tensor_proto`` is replaced (``tobytes``), and ``FileWriter.write_tensor`` encodes
    numeric tensors with :func:`encode_tensor_event` and appends them (and their index entries)
    in the calling thread, instead of queueing protobuf messages for a writer thread.
    """
    import smdebug.core.writer as writer
    from smdebug.core.locations import TensorLocation
    from smdebug.core.modes import MODE_PLUGIN_NAME, MODE_STEP_PLUGIN_NAME
    from smdebug.core.tfevent import util
    from smdebug.core.tfevent.proto.event_pb2 import Event
    from smdebug.core.tfevent.proto.summary_pb2 import Summary
    from smdebug.core.tfevent.proto.types_pb2 import DataType
    from smdebug.core.utils import get_relative_event_file_path, make_numpy_array, parse_worker_name_from_file

    if getattr(writer.FileWriter.write_tensor, "_numpy2_safe", False):
        return
    if (MODE_STEP_PLUGIN_NAME, MODE_PLUGIN_NAME) != (_MODE_STEP_PLUGIN, _MODE_PLUGIN):
        raise DebugConfigError("this smdebug names its mode plugins differently: the fast writer does not fit it")
    original_proto = util.make_tensor_proto

    def make_tensor_proto(nparray_data: Any, tag: str) -> Any:
        isnum, dtype = util._get_proto_dtype(nparray_data.dtype)
        if not isnum:
            return original_proto(nparray_data, tag)
        dims = [util.TensorShapeProto.Dim(size=d, name=f"{tag}_{d}") for d in nparray_data.shape]
        return util.TensorProto(
            dtype=dtype, tensor_content=nparray_data.tobytes(), tensor_shape=util.TensorShapeProto(dim=dims)
        )

    def write_tensor(self: Any, tdata: Any, tname: str, write_index: bool = True, mode: Any = None,
                     mode_step: int | None = None, timestamp: float | None = None) -> None:
        value = make_numpy_array(tdata)
        mode, mode_step = self._check_mode_step(mode, mode_step, self.step)
        wall_time = timestamp if timestamp else time.time()
        isnum, dtype = util._get_proto_dtype(value.dtype)
        if isnum:
            data = encode_tensor_event(wall_time=wall_time, step=self.step, tag=tname, mode_step=mode_step,
                                       mode_value=mode.value, dtype=DataType.Value(dtype), shape=value.shape,
                                       content=value.tobytes())
        else:
            summary = Summary(value=[Summary.Value(tag=tname, metadata=self._get_metadata(mode, mode_step),
                                                   tensor=make_tensor_proto(value, tname))])
            data = Event(summary=summary, wall_time=wall_time, step=self.step).SerializeToString()
        events = self.proto_writer._ev_writer
        start, length = events._write_serialized_event(data)
        if write_index:
            if getattr(self, "_index_location", (None,))[0] != events.name():
                relative = get_relative_event_file_path(events.name())
                self._index_location = (events.name(), relative, parse_worker_name_from_file(relative))
            _, path, worker = self._index_location
            events.index_writer.add_index(TensorLocation(
                tname=tname, mode=mode.name, mode_step=mode_step, event_file_name=path, start_idx=start,
                length=length, worker=worker,
            ))

    write_tensor._numpy2_safe = True  # type: ignore[attr-defined]
    writer.make_tensor_proto = make_tensor_proto
    util.make_tensor_proto = make_tensor_proto
    writer.FileWriter.write_tensor = write_tensor


# --- the hook -----------------------------------------------------------------------------


def attach(model: nn.Module, criterion: nn.Module, args: argparse.Namespace) -> Any | None:
    """Registers the hook on ``model`` and ``criterion`` as ``args`` asks; None when off.

    Never raises: a capture that cannot start is logged (``debugger: capture disabled: ...``)
    and recorded in ``capture.json``, and training goes on without it.
    """
    if not getattr(args, "debug", False):
        return None
    try:
        out_dir = resolve_out_dir(args.debug_out_dir)
    except DebugConfigError as exc:  # nowhere to record it but the log
        LOG.warning("debugger: capture disabled: %s", exc)
        return None
    activations = activation_modules(model) if args.debug_activations else {}
    info = CaptureInfo(
        out_dir=out_dir,
        collections=list(args.debug_collections) + [c for k in activations for c in ACTIVATION_KINDS[k][1]],
        save_interval=args.debug_save_interval,
        reductions=list(REDUCTIONS),
        activations=args.debug_activations,
        full_tensors=args.debug_full_tensors,
        loss_name=type(criterion).__name__,
        activation_layers={kind: len(modules) for kind, modules in activations.items()},
    )
    try:
        _set_aside_previous_trial(out_dir)
        hook = _build_hook(model, criterion, info, activations)
    except Exception as exc:  # the debugger must never break the training run
        info.error = f"{type(exc).__name__}: {exc}"
        LOG.warning("debugger: capture disabled: %s", info.error)
        _write_capture_info(info)
        return None
    _write_capture_info(info)
    LOG.info(
        "debugger: saving %s to %s (interval %d)", ",".join(info.collections), out_dir, info.save_interval
    )
    _start_rule_evaluator(args, out_dir)
    return hook


def _start_rule_evaluator(args: argparse.Namespace, out_dir: str) -> None:
    """Starts ``job_rules.py`` beside the training when the rules are evaluated inside the job."""
    global _RULES_PROCESS
    if not (getattr(args, "debug_rules_in_job", False) and getattr(args, "debug_event_bus", None)):
        return
    job_name = os.environ.get("TRAINING_JOB_NAME")
    if not job_name:
        LOG.warning("debugger: rules not evaluated in the job: TRAINING_JOB_NAME is unset")
        return
    specs = args.debug_rules or default_rules(args.debug_activations)
    command = [sys.executable, str(Path(__file__).with_name("job_rules.py")), "--trial", out_dir,
               "--job-name", job_name, "--bus", args.debug_event_bus, "--rules", format_rules(specs),
               "--training-pid", str(os.getpid())]
    try:
        _RULES_PROCESS = subprocess.Popen(command)
    except OSError as exc:  # the training goes on; the console's evaluator still shows the rules
        LOG.warning("debugger: rules not evaluated in the job: %s", exc)
        return
    LOG.info("debugger: evaluating %s inside the job (pid %d); fired rules go to the %s bus",
             format_rules(specs), _RULES_PROCESS.pid, args.debug_event_bus)


def _finish_rule_evaluator() -> None:
    """Asks the in-job evaluator for its final pass and waits for it (bounded)."""
    global _RULES_PROCESS
    process, _RULES_PROCESS = _RULES_PROCESS, None
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=RULES_FINAL_PASS_S)
    except subprocess.TimeoutExpired:
        LOG.warning("debugger: the in-job rule evaluator did not finish within %.0f s; killed", RULES_FINAL_PASS_S)
        process.kill()


def activation_modules(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The model's activation modules by kind (relu, tanh, sigmoid); kinds without any left out."""
    found: dict[str, list[nn.Module]] = {}
    for module in model.modules():
        for kind, (types, _) in ACTIVATION_KINDS.items():
            if type(module).__name__ in types:
                found.setdefault(kind, []).append(module)
    return found


def _build_hook(model: nn.Module, criterion: nn.Module, info: CaptureInfo,
                activations: Mapping[str, list[nn.Module]]) -> Any:
    prepare_smdebug_import()
    from smdebug.core.modes import ModeKeys
    from smdebug.core.reduction_config import ReductionConfig
    from smdebug.core.save_config import SaveConfig, SaveConfigMode

    patch_tensor_writer()
    hook_class = _hook_class()
    hook = hook_class(
        out_dir=info.out_dir, include_collections=info.collections,
        save_config=SaveConfig(save_interval=info.save_interval),
    )  # fmt: skip
    every_step = SaveConfig(mode_save_configs={
        m: SaveConfigMode(save_interval=1) for m in (ModeKeys.TRAIN, ModeKeys.EVAL, ModeKeys.PREDICT)
    })
    never = SaveConfigMode(save_interval=info.save_interval, start_step=10**12)
    train_only = SaveConfig(
        mode_save_configs={ModeKeys.TRAIN: SaveConfigMode(save_interval=info.save_interval),
                           ModeKeys.EVAL: never, ModeKeys.PREDICT: never}
    )  # fmt: skip
    reduced = ReductionConfig(
        reductions=["mean", "std", "min", "max"], abs_reductions=["mean"], norms=["l2"],
        save_raw_tensor=info.full_tensors,
    )  # fmt: skip
    loss = info.loss_name
    for name in STEP_COLLECTIONS:
        collection = hook.get_collection(name)
        collection.save_config = every_step
        collection.reduction_config = ReductionConfig(save_raw_tensor=True)
    hook.get_collection("labels").include(f"^{loss}_input_1$")
    hook.get_collection("predictions").include(f"^{loss}_input_0$")
    for name in REDUCED_COLLECTIONS:
        collection = hook.get_collection(name)
        collection.save_config = train_only
        collection.reduction_config = reduced
    hook.reduced_collections = set(REDUCED_COLLECTIONS)
    _add_activation_collections(hook, activations, train_only)
    hook.frozen_names = {f"{model._get_name()}_{n}" for n, p in model.named_parameters() if not p.requires_grad}
    hook.watched_modules = {id(m) for modules in activations.values() for m in modules}
    info.tensor_order = [f"{model._get_name()}_{n}" for n, _ in model.named_parameters()]
    info.tensor_order += [n for n, _ in model.named_modules() if n]
    model.register_forward_pre_hook(_mode_follower(hook, ModeKeys))  # before smdebug's: sets the mode first
    hook.register_module(model)
    hook.register_loss(criterion)
    return hook


def _add_activation_collections(hook: Any, activations: Mapping[str, list[nn.Module]], save_config: Any) -> None:
    from smdebug.core.reduction_config import ReductionConfig

    full = ReductionConfig(reductions=["mean", "std", "min", "max"], norms=["l2"], save_raw_tensor=True)
    for kind, modules in activations.items():
        for name in ACTIVATION_KINDS[kind][1]:
            collection = hook.get_collection(name)
            collection.save_config = save_config
            collection.reduction_config = full
            hook.reduced_collections.add(name)
            for module in modules:
                if getattr(module, "inplace", False):
                    # an in-place activation would overwrite the input we save
                    module.inplace = False  # type: ignore[assignment]  # torch's __setattr__ stub: tensors/modules only
                collection.add_module_tensors(module, inputs=name.endswith("_input"), outputs=name.endswith("_output"))


def _mode_follower(hook: Any, modes: Any) -> Any:
    def follow(module: nn.Module, inputs: Any) -> None:
        mode = modes.TRAIN if module.training else (modes.PREDICT if hook.testing else modes.EVAL)
        if hook.mode != mode:
            hook.set_mode(mode)

    return follow


def start_test() -> None:
    """From now on the hook records evaluation as PREDICT (the test split), not EVAL."""
    if "smdebug.core.singleton_utils" not in sys.modules:
        return
    from smdebug.core.singleton_utils import get_hook

    hook = get_hook(json_config_path=None, hook_class=None, create_if_not_exists=False)
    if hook is not None:
        hook.testing = True


def close() -> None:
    """Closes the hook now: its last event file and the end-of-training marker are written while
    the interpreter can still upload them (an ``s3://`` trial), not by smdebug's exit handler,
    which runs when boto3 can no longer start its transfer threads. Then the in-job rule
    evaluator, if any, makes its final pass over the whole trial."""
    if "smdebug.core.singleton_utils" in sys.modules:
        import atexit

        from smdebug.core.singleton_utils import get_hook

        hook = get_hook(json_config_path=None, hook_class=None, create_if_not_exists=False)
        if hook is not None:
            atexit.unregister(hook._cleanup)
            hook.close()
    _finish_rule_evaluator()


_HOOK_CLASS: Any = None
_RULES_PROCESS: subprocess.Popen[bytes] | None = None
RULES_FINAL_PASS_S = 120.0
"""How long the end of training waits for the in-job rule evaluator's final pass."""


def _hook_class() -> Any:
    """smdebug's PyTorch hook plus the fraction-of-zeros reduction and frozen-layer safety."""
    global _HOOK_CLASS
    if _HOOK_CLASS is not None:
        return _HOOK_CLASS
    import numpy as np
    import torch
    from smdebug.core.reductions import get_reduction_tensor_name
    from smdebug.core.utils import error_handling_agent
    from smdebug.pytorch import Hook

    class DebugHook(Hook):
        """Writes the reduced collections' summary in one pass per tensor (one device sync),
        adds the weights' ``update_ratio``, and never hooks a frozen parameter."""

        # set per hook by _build_hook, before the model is registered
        reduced_collections: set[str]
        frozen_names: set[str]
        watched_modules: set[int]  # ids of the modules whose inputs/outputs may be saved
        # smdebug's own flags (set in BaseHook), declared for the methods below
        prepared_collections: bool
        exported_collections: bool
        testing = False
        gradients_due = False  # whether this step saves gradients (set before its forward pass)

        # smdebug's forward hooks also keep its framework profiler's timeline, per module and
        # step; that profiler is off here (the Profiler has its own), so these are leaner, and
        # only the loss and the activation modules get a forward hook at all.

        @error_handling_agent.catch_smdebug_errors()
        def forward_pre_hook(self, module: torch.nn.Module, inputs: Any) -> None:
            if self.writer is not None:
                self._close_writers()
            if not self.prepared_collections:
                self._prepare_collections()
                self.prepared_collections = True
            self._increment_step()
            saving = self._get_collections_to_save_for_step()
            self.gradients_due = any(c.name == "gradients" for c in saving)
            if saving:
                self._initialize_writers()
                if any(c.name in ("weights", "biases") for c in saving):
                    self._log_params(module)
            if self.last_saved_step is not None and not self.exported_collections:
                self.export_collections()
                self.exported_collections = True

        @error_handling_agent.catch_smdebug_errors()
        def forward_hook(self, module: torch.nn.Module, inputs: Any, outputs: Any) -> None:
            if not self._get_collections_to_save_for_step():
                return
            self._write_inputs(module._module_name, inputs)
            self._write_outputs(module._module_name, outputs)
            self._save_custom_tensors_post_step()
            self.last_saved_step = self.step

        def fhook(self, module: torch.nn.Module, inputs: Any, outputs: Any) -> None:
            return None

        def backward_hook(self, tname: str) -> Any:
            # smdebug's closure runs its bookkeeping for every parameter at every step; this one
            # returns at once unless the step saves gradients.
            def back(grad: torch.Tensor | None) -> None:
                if self.gradients_due and grad is not None:
                    self._save_gradient(tname, grad)

            return back

        @error_handling_agent.catch_smdebug_errors()
        def _save_gradient(self, tname: str, grad: torch.Tensor) -> None:
            self._save_for_tensor(self.GRADIENT_PREFIX + tname, grad)

        def _closure_for_registering_forward_hook(self, module: torch.nn.Module) -> None:
            if id(module) in self.watched_modules:  # inside a compiled forward (--compile), run uncompiled
                module.register_forward_hook(torch.compiler.disable(self.forward_hook))

        def _write_reductions(self, tensor_name: str, tensor_value: Any, save_collections: Any,
                              tensor_ref: Any = None) -> None:
            names = {c.name for c in save_collections}
            if not names & self.reduced_collections or not isinstance(tensor_value, torch.Tensor):
                super()._write_reductions(tensor_name, tensor_value, save_collections, tensor_ref=tensor_ref)
                return
            value = tensor_value.detach()
            summary = _summary(value)
            if "weights" in names and tensor_name not in self.frozen_names:
                ratio = self._update_ratio(tensor_name, value)
                if ratio is not None:
                    summary[("update_ratio", False)] = ratio
            for (reduction, absolute), number in summary.items():
                self._write_raw_tensor_simple(get_reduction_tensor_name(tensor_name, reduction, absolute),
                                              np.float32(number), tensor_ref=tensor_ref)

        def _update_ratio(self, tensor_name: str, value: torch.Tensor) -> float | None:
            previous = self.__dict__.setdefault("_previous_weights", {})
            before = previous.get(tensor_name)
            previous[tensor_name] = value.clone()
            if before is None or before.shape != value.shape:
                return None
            return float(torch.linalg.vector_norm(value - before) / (torch.linalg.vector_norm(before) + 1e-12))

        @staticmethod
        def _make_numpy_array(tensor_value: Any) -> Any:
            # numpy has no bfloat16: a tensor of an --amp step (its loss, activations) is saved as float32
            if isinstance(tensor_value, torch.Tensor) and tensor_value.dtype == torch.bfloat16:
                tensor_value = tensor_value.float()
            return Hook._make_numpy_array(tensor_value)

        def _backward_apply(self, module: torch.nn.Module) -> None:
            # sagemaker-python-sdk #1401: register_hook on a frozen parameter raises
            for name, param in module.named_parameters():
                if param.requires_grad:
                    param.register_hook(self.backward_hook(module._get_name() + "_" + name))

    def _summary(value: torch.Tensor) -> dict[tuple[str, bool], float]:
        """REDUCTIONS of a tensor from four reductions on its device, copied to the host at once."""
        flat = value.reshape(-1)
        if not flat.is_floating_point():
            flat = flat.float()
        count = flat.numel()
        if count == 0:
            return {}
        std, mean = torch.std_mean(flat, correction=1 if count > 1 else 0)
        low, high = torch.aminmax(flat)
        parts = (mean, std, torch.linalg.vector_norm(flat, ord=1) / count, low, high, torch.count_nonzero(flat))
        stats = torch.stack([part.double() for part in parts]).cpu().tolist()
        mean_, std_, abs_mean, low_, high_, nonzero = stats
        l2 = math.sqrt(max((count - 1) * std_ * std_ + count * mean_ * mean_, 0.0))  # from std and mean: one op less
        stats = [l2, mean_, abs_mean, std_, low_, high_, 1 - nonzero / count]
        keys = [("l2", False), ("mean", False), ("mean", True), ("std", False), ("min", False), ("max", False),
                ("zero_fraction", False)]
        return dict(zip(keys, stats, strict=True))

    _HOOK_CLASS = DebugHook
    return DebugHook


def _set_aside_previous_trial(out_dir: str) -> None:
    """A restarted job (resumed from a checkpoint) starts a new trial; the old one is kept."""
    path = Path(out_dir)
    if out_dir.startswith("s3://") or not path.is_dir() or not any(path.iterdir()):
        return
    attempt = 1
    while path.with_name(f"{path.name}.attempt-{attempt}").exists():
        attempt += 1
    path.rename(path.with_name(f"{path.name}.attempt-{attempt}"))
    LOG.info("debugger: the previous trial was moved to %s.attempt-%d", path.name, attempt)


def _write_capture_info(info: CaptureInfo) -> None:
    if info.out_dir.startswith("s3://"):
        return
    path = Path(info.out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
        (path / CAPTURE_FILE).write_text(json.dumps(asdict(info), indent=2) + "\n")
    except OSError as exc:
        LOG.warning("debugger: cannot write %s: %s", path / CAPTURE_FILE, exc)
