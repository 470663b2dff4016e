"""Data sets: scikit-learn's bundled handwritten digits (offline), clean or mixed with harder
corrupted copies, and a local CIFAR-10 directory."""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from lcnet_tvm.errors import LcnetError

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


#: How hard-to-read copies are made, at strength levels 1, 2, 3 (the recorded difficulty; clean images are 0).
CORRUPTIONS = ("noise", "blur", "shift", "shrink", "occlusion")
CLEAN = "clean"

#: The digits' held-out share (the shipped checkpoint's split).
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class Difficulty:
    """Per image of a split: the corruption applied (``CLEAN`` for none) and its strength, 0 (clean) to 3."""

    corruption: tuple[str, ...]
    level: torch.Tensor  # int64, one per image

    def take(self, index: torch.Tensor) -> Difficulty:
        """The records of the images at ``index`` (int64), in that order."""
        return Difficulty(tuple(self.corruption[i] for i in index.tolist()), self.level[index])


@dataclass
class Dataset:
    """A train / held-out split of NCHW float32 images, already normalised for the model.

    Mixed data sets also record each image's difficulty (``None`` for data sets without it).
    """

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    num_classes: int
    train_difficulty: Difficulty | None = None
    test_difficulty: Difficulty | None = None

    def held_out_by_difficulty(self) -> dict[str, torch.Tensor]:
        """Boolean masks over the held-out images: ``clean`` and ``hard`` (empty without recorded difficulty)."""
        if self.test_difficulty is None:
            return {}
        clean = self.test_difficulty.level == 0
        return {"clean": clean, "hard": ~clean}


def _normalise(x: torch.Tensor, mean, std) -> torch.Tensor:
    mean = torch.tensor(mean, dtype=torch.float32)[None, :, None, None]
    std = torch.tensor(std, dtype=torch.float32)[None, :, None, None]
    return ((x - mean) / std).contiguous()


def _digit_images(input_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 8x8 digits as (N, 1, input_size, input_size) in [0, 1] (bilinear), and their labels."""
    from sklearn.datasets import load_digits as sklearn_digits  # noqa: PLC0415 (slow import)

    digits = sklearn_digits()
    images = torch.from_numpy(digits.images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(images, size=(input_size, input_size), mode="bilinear", align_corners=False)
    return images.clamp(0.0, 1.0), torch.from_numpy(digits.target.astype(np.int64))


def _split(count: int, test_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Train and held-out indices: a fixed random ``test_fraction`` of ``count`` images (``seed``)."""
    if not 0.0 < test_fraction < 1.0:
        raise LcnetError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    test_count = round(count * test_fraction)
    return order[test_count:], order[:test_count]


def _as_model_input(images: torch.Tensor, train: torch.Tensor, in_channels: int) -> torch.Tensor:
    """Grey images repeated over ``in_channels`` and normalised by the statistics of the ``train`` ones."""
    images = images.repeat(1, in_channels, 1, 1)
    # Statistics of the repeated images (not of the grey ones): what every checkpoint was trained on, bit for bit.
    mean, std = images[train].mean().item(), images[train].std().item()
    return _normalise(images, (mean,) * in_channels, (std,) * in_channels)


def load_digits(
    input_size: int = 32, in_channels: int = 3, test_fraction: float = TEST_FRACTION, seed: int = 0
) -> Dataset:
    """scikit-learn's 1,797 8x8 handwritten digits, upsampled (bilinear) to ``input_size``.

    The grey image is repeated over ``in_channels`` so CIFAR/ImageNet-shaped
    models take it unchanged. The held-out split is a fixed random
    ``test_fraction`` of the images (``seed``), the same in training and demo.
    """
    images, labels = _digit_images(input_size)
    train, test = _split(len(labels), test_fraction, seed)
    images = _as_model_input(images, train, in_channels)
    return Dataset("digits", images[train], labels[train], images[test], labels[test], num_classes=10)


def _gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = math.ceil(3 * sigma)
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=torch.float32) / sigma) ** 2)
    taps = taps / taps.sum()
    padded = F.pad(images, (radius,) * 4, mode="replicate")
    rows = F.conv2d(padded, taps.view(1, 1, 1, -1))
    return F.conv2d(rows, taps.view(1, 1, -1, 1))


def _corrupt(image: torch.Tensor, corruption: str, level: int, generator: torch.Generator) -> torch.Tensor:
    """One (1, H, W) image in [0, 1] made harder to read by ``corruption`` at strength ``level`` (1..3)."""
    size = image.shape[-1]

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * torch.rand((), generator=generator).item()

    def position(extent: int) -> int:
        return int(torch.randint(0, max(1, size - extent + 1), (), generator=generator))

    if corruption == "noise":
        out = image + 0.15 * level * torch.randn(image.shape, generator=generator)
    elif corruption == "blur":
        out = _gaussian_blur(image[None], 0.035 * size * level)[0]
    elif corruption == "shift":
        # A translation by 1/8, 3/16 or 1/4 of the side in a random direction; what leaves the frame is lost.
        distance = size * (1 + level) / 16
        angle = uniform(0.0, 2 * math.pi)
        dy, dx = round(distance * math.sin(angle)), round(distance * math.cos(angle))
        out = torch.roll(image, (dy, dx), dims=(1, 2))
        rows, cols = torch.arange(size)[:, None] - dy, torch.arange(size)[None, :] - dx
        out = out * ((rows >= 0) & (rows < size) & (cols >= 0) & (cols < size))
    elif corruption == "shrink":
        # The digit shrunk to 3/4, 9/16 or 3/8 of the side and placed at a random spot.
        extent = max(2, round(size * (0.9375 - 0.1875 * level)))
        small = F.interpolate(image[None], size=(extent, extent), mode="bilinear", align_corners=False)[0]
        out = torch.zeros_like(image)
        top, left = position(extent), position(extent)
        out[:, top : top + extent, left : left + extent] = small
    elif corruption == "occlusion":
        # A square of side 1/4, 3/8 or 1/2 of the image, erased at a random spot.
        extent = round(size * (1 + level) / 8)
        out = image.clone()
        top, left = position(extent), position(extent)
        out[:, top : top + extent, left : left + extent] = 0.0
    else:
        raise LcnetError(f"unknown corruption {corruption!r}; use one of {', '.join(CORRUPTIONS)}")
    return out.clamp(0.0, 1.0)


def _hard_copies(
    images: torch.Tensor, labels: torch.Tensor, copies: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, Difficulty]:
    """The images, then ``copies`` corrupted copies of each (corruption and level drawn per copy)."""
    out, corruption, level = [images], [CLEAN] * len(images), [0] * len(images)
    for _ in range(copies):
        kinds = torch.randint(0, len(CORRUPTIONS), (len(images),), generator=generator).tolist()
        levels = torch.randint(1, 4, (len(images),), generator=generator).tolist()
        corrupted = [_corrupt(image, CORRUPTIONS[k], v, generator) for image, k, v in zip(images, kinds, levels)]
        out.append(torch.stack(corrupted))
        corruption += [CORRUPTIONS[k] for k in kinds]
        level += levels
    return torch.cat(out), labels.repeat(copies + 1), Difficulty(tuple(corruption), torch.tensor(level))


def load_mixed_digits(
    input_size: int = 32, in_channels: int = 3, test_fraction: float = TEST_FRACTION, seed: int = 0, hard_copies: int = 2
) -> Dataset:
    """The digits of :func:`load_digits` (same split) plus ``hard_copies`` harder-to-read copies of each image.

    Each copy gets one of :data:`CORRUPTIONS` at a strength 1-3 drawn from
    ``seed``, so the data set is the same on every run (with the same torch
    version: its random streams and interpolation make it); a held-out image's
    copies stay held out. The held-out images are shuffled (``seed``) so that any
    prefix mixes clean and hard ones; ``test_difficulty`` says which is which.
    """
    if hard_copies < 1:
        raise LcnetError(f"a mixed data set needs at least 1 hard copy per image, got {hard_copies}")
    images, labels = _digit_images(input_size)
    train, test = _split(len(labels), test_fraction, seed)
    generator = torch.Generator().manual_seed(seed)
    parts = []
    for index in (train, test):
        x, y, difficulty = _hard_copies(images[index], labels[index], hard_copies, generator)
        order = torch.randperm(len(y), generator=generator)
        parts.append((x[order], y[order], difficulty.take(order)))
    (x_train, y_train, train_difficulty), (x_test, y_test, test_difficulty) = parts
    everything = torch.cat([x_train, x_test])
    everything = _as_model_input(everything, torch.arange(len(y_train)), in_channels)
    return Dataset(
        "digits-mixed",
        everything[: len(y_train)],
        y_train,
        everything[len(y_train) :],
        y_test,
        num_classes=10,
        train_difficulty=train_difficulty,
        test_difficulty=test_difficulty,
    )


def load_digits_for_training(input_size: int, in_channels: int, seed: int, hard_copies: int) -> tuple[Dataset, dict]:
    """The digits ``train`` uses (mixed with ``hard_copies`` per image, or clean for 0) and how to load them again."""
    if hard_copies < 0:
        raise LcnetError(f"--hard-copies must be 0 (clean digits) or more, got {hard_copies}")
    recorded = {"name": "digits", "seed": seed, "test_fraction": TEST_FRACTION}
    if hard_copies == 0:
        return load_digits(input_size, in_channels, seed=seed), recorded
    recorded = {**recorded, "name": "digits-mixed", "hard_copies": hard_copies}
    return load_mixed_digits(input_size, in_channels, seed=seed, hard_copies=hard_copies), recorded


def load_recorded(recorded: dict, input_size: int, in_channels: int, cifar10_dir: str | None) -> Dataset:
    """The data set a checkpoint's ``dataset`` record names, split as it was in training."""
    name = recorded.get("name")
    if name == "cifar10":
        if cifar10_dir is None:
            raise LcnetError("the checkpoint was trained on CIFAR-10: pass --cifar10 DIR to evaluate it")
        return load_cifar10(cifar10_dir)
    split = (input_size, in_channels, recorded.get("test_fraction", TEST_FRACTION), recorded.get("seed", 0))
    if name == "digits":
        return load_digits(*split)
    if name == "digits-mixed" and isinstance(recorded.get("hard_copies"), int):
        return load_mixed_digits(*split, hard_copies=recorded["hard_copies"])
    raise LcnetError(
        f"the checkpoint's data set record {recorded!r} is not one this version reads (cifar10, digits, or "
        "digits-mixed with its hard_copies); retrain or fix the record in the checkpoint"
    )


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
