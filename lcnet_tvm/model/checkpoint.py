"""Checkpoints (config + weights + what they were trained on) and resolving ``--model``."""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lcnet_tvm.errors import LcnetError, ModelError
from lcnet_tvm.model.data import Dataset, load_recorded
from lcnet_tvm.model.resnet import ZOO, LCResNet, ResNetConfig, zoo_config
from lcnet_tvm.support.files import write_atomically, write_json

CHECKPOINT_FORMAT = "lcnet_tvm.checkpoint/1"
CHECKPOINT_DIR = Path(__file__).parent.parent / "checkpoints"
#: The default ``--model``: LC-ResNet-20 trained on the digits (see its .json beside it).
SHIPPED_CHECKPOINT = CHECKPOINT_DIR / "lcnet_resnet20_digits.pt"


@dataclass
class LoadedModel:
    """A model ready to run in eval mode, and where it came from."""

    name: str  # the zoo architecture it instantiates
    model: LCResNet
    source: str  # checkpoint path, or "untrained" for a zoo name
    info: dict = field(default_factory=dict)  # training data set, metrics, ...

    @property
    def config(self) -> ResNetConfig:
        return self.model.config


def save_checkpoint(path: str | os.PathLike, name: str, model: LCResNet, info: dict) -> None:
    """Save atomically; ``info`` (data set, metrics) is also written as ``path.json``."""
    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "name": name,
        "config": model.config.to_json(),
        "state_dict": model.state_dict(),
        "info": json.dumps(info),
    }
    write_atomically(path, lambda stream: torch.save(payload, stream))
    write_json(path.with_suffix(".json"), info)


def load_checkpoint(path: str | os.PathLike) -> LoadedModel:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"checkpoint {str(path)!r} not found; pass a zoo name ({', '.join(ZOO)}) or an existing .pt")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ModelError(f"{str(path)!r} is not an lcnet_tvm checkpoint (format {payload.get('format')!r})")
        config = ResNetConfig.from_json(payload["config"])
        model = LCResNet(config)
        model.load_state_dict(payload["state_dict"])
        info = json.loads(payload["info"])
    except ModelError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, KeyError, AttributeError, TypeError,
            ValueError) as error:
        first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ModelError(f"checkpoint {str(path)!r} is corrupt or incompatible ({first_line}); retrain or re-copy it") from None
    return LoadedModel(payload["name"], model.eval(), str(path), info)


def resolve_model(spec: str | None, input_size: int | None = None, seed: int = 0) -> LoadedModel:
    """``--model``: a zoo name (untrained, seeded weights), a checkpoint path, or None for the shipped one.

    ``input_size`` overrides a zoo model's input resolution (checkpoints keep theirs).
    """
    if spec is None:
        return load_checkpoint(SHIPPED_CHECKPOINT)
    if spec not in ZOO and (spec.endswith((".pt", ".pth")) or os.sep in spec):
        return load_checkpoint(spec)
    config = zoo_config(spec)  # an unknown name raises, listing the zoo
    if input_size:
        config = config.replace(input_size=input_size)
    torch.manual_seed(seed)
    return LoadedModel(spec, LCResNet(config).eval(), "untrained")


def dataset_for(loaded: LoadedModel, cifar10_dir: str | None = None) -> Dataset:
    """The data set a checkpoint was trained on (its recorded split); digits for untrained zoo models."""
    config = loaded.config
    try:
        recorded = loaded.info.get("dataset", {"name": "digits"})
        return load_recorded(recorded, config.input_size, config.in_channels, cifar10_dir)
    except LcnetError as error:
        raise LcnetError(f"{loaded.source}: {error}") from None
