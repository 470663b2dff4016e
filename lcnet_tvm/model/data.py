"""Data sets: scikit-learn's bundled handwritten digits (offline) and a local CIFAR-10 directory."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lcnet_tvm.errors import LcnetError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


@dataclass
class Dataset:
    """A train / held-out split of NCHW float32 images, already normalised for the model."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return ((x - mean) / std).contiguous()


def load_digits(input_size: int = 32, in_channels: int = 3, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits, upsampled (bilinear) to ``input_size``.

    The grey image is repeated over ``in_channels`` so CIFAR/ImageNet-shaped
    models take it unchanged. The held-out split is a fixed random
    ``test_fraction`` of the images (``seed``), the same in training and demo.
    """
    from sklearn.datasets import load_digits as sklearn_digits  # noqa: PLC0415 (slow import)

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(images, size=(input_size, input_size), mode="bilinear", align_corners=False)
    images = images.repeat(1, in_channels, 1, 1)
    labels = torch.from_numpy(digits.target.astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    test_count = round(len(labels) * test_fraction)
    test, train = order[:test_count], order[test_count:]
    mean = images[train].mean().item()
    std = images[train].std().item()
    images = _normalise(images, (mean,) * in_channels, (std,) * in_channels)
    return Dataset("digits", images[train], labels[train], images[test], labels[test], num_classes=10)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open("rb") as stream:
            batch = pickle.load(stream, encoding="bytes")
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except FileNotFoundError:
        raise LcnetError(
            f"{str(path)!r} is missing; --cifar10 expects the python-pickle CIFAR-10 directory "
            "(data_batch_1..5 and test_batch)"
        ) from None
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError) as error:
        raise LcnetError(f"{str(path)!r} is not a CIFAR-10 python-pickle batch ({error})") from None
    return data, labels


def load_cifar10(directory: str | Path) -> Dataset:
    """CIFAR-10 from a local directory in the standard python-pickle format."""
    directory = Path(directory)
    train = [_read_cifar_batch(directory / f"data_batch_{index}") for index in range(1, 6)]
    test_x, test_y = _read_cifar_batch(directory / "test_batch")

    def to_tensor(images: np.ndarray) -> torch.Tensor:
        return _normalise(torch.from_numpy(images).float() / 255.0, CIFAR10_MEAN, CIFAR10_STD)

    return Dataset(
        "cifar10",
        to_tensor(np.concatenate([x for x, _ in train])),
        torch.from_numpy(np.concatenate([y for _, y in train])),
        to_tensor(test_x),
        torch.from_numpy(test_y),
        num_classes=10,
    )
