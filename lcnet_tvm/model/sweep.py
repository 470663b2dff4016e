"""Accuracy against executed FLOPs: LC-Net at several FLOPs targets beside static networks at the same FLOPs.

For each target fraction of the dense backbone's FLOPs, three models are trained
on the same data with the same schedule:

* ``lc-net``: the backbone with input-dependent layer and channel gates, trained as
  ``train`` trains them (the base configuration's gate options);
* ``static-mask``: the same backbone and gates, but each gate's linear weights
  are held at 0, so its decision is one learned constant for every input
  (static pruning of blocks and channels, learned with the same FLOPs penalty);
* ``thin-resnet``: the backbone without gates, every stage's width scaled by the
  same factor, chosen so that its dense FLOPs come closest to the target.

Each model is evaluated on the held-out images (clean and hard separately for
a mixed data set); its executed FLOPs are counted against the full backbone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.model.data import Dataset
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.resnet import LCResNet, ResNetConfig
from lcnet_tvm.model.train import train
from lcnet_tvm.model.train_config import TrainConfig

logger = logging.getLogger(__name__)

FAMILIES = ("lc-net", "static-mask", "thin-resnet")

#: A model whose executed FLOPs fraction misses its target by more than this is flagged in the table.
TARGET_TOLERANCE = 0.1


@dataclass(frozen=True)
class SweepPoint:
    """One trained model of the sweep; FLOPs are fractions of the full dense backbone's."""

    family: str
    target_flops: float
    widths: tuple[int, ...]
    accuracy: float
    executed_flops_fraction: float
    clean_accuracy: float | None
    clean_flops_fraction: float | None
    hard_accuracy: float | None
    hard_flops_fraction: float | None
    distinct_layer_patterns: int | None
    train_seconds: float

    def to_json(self) -> dict:
        return {**dataclasses.asdict(self), "widths": list(self.widths)}


def parse_fractions(text: str) -> list[float]:
    """``--sweep`` values: comma-separated FLOPs fractions in (0, 1)."""
    try:
        fractions = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise LcnetError(f"--sweep takes comma-separated FLOPs fractions such as 0.3,0.5,0.7, got {text!r}") from None
    if not fractions or any(not 0.0 < fraction < 1.0 for fraction in fractions):
        raise LcnetError(f"--sweep fractions must each lie strictly between 0 and 1, got {text!r}")
    return sorted(set(fractions))


def thin_widths(config: ResNetConfig, target_flops: float) -> tuple[int, ...]:
    """Stage widths, all scaled by one factor, whose dense FLOPs come closest to ``target_flops`` of ``config``'s."""
    dense = _dense_flops(config)
    base = config.widths[0]
    candidates = [tuple(max(1, round(width * scale / base)) for width in config.widths) for scale in range(1, base + 1)]
    return min(candidates, key=lambda widths: abs(_dense_flops(config.replace(widths=widths)) / dense - target_flops))


def _dense_flops(config: ResNetConfig) -> int:
    dense = LCResNet(config.replace(layer_gates=False, channel_gates=False))
    return FlopsCounter.from_model(dense, config.input_shape).dense_flops


def _family_model(
    family: str, config: ResNetConfig, fraction: float, base: TrainConfig
) -> tuple[LCResNet, TrainConfig]:
    schedule = dataclasses.replace(base, target_flops=fraction)
    if family == "lc-net":
        return LCResNet(config), schedule
    # The baselines take none of LC-Net's options for input-dependent gates.
    schedule = dataclasses.replace(schedule, normalised_gates=False, difficulty_spread=0.0)
    if family == "static-mask":
        return LCResNet(config), dataclasses.replace(schedule, static_gates=True)
    thin = config.replace(widths=thin_widths(config, fraction), layer_gates=False, channel_gates=False)
    return LCResNet(thin), dataclasses.replace(schedule, flops_weight=0.0)


def run_sweep(
    fractions: Sequence[float], config: ResNetConfig, dataset: Dataset, base: TrainConfig, progress: bool = True
) -> list[SweepPoint]:
    """Train every family at every fraction (seeded like ``train``); the points in that order."""
    full_dense = _dense_flops(config)
    points = []
    for fraction in fractions:
        for family in FAMILIES:
            torch.manual_seed(base.seed)
            model, schedule = _family_model(family, config, fraction, base)
            logger.info("sweep: training %s at %.2f of the dense FLOPs", family, fraction)
            metrics = train(model, dataset, schedule, progress=progress)
            # The model's executed FLOPs, as a fraction of the full backbone (a thin network's own dense FLOPs differ).
            scale = FlopsCounter.from_model(model, config.input_shape).dense_flops / full_dense
            clean, hard = metrics.get("clean"), metrics.get("hard")  # mixed data sets only
            points.append(
                SweepPoint(
                    family=family,
                    target_flops=fraction,
                    widths=model.config.widths,
                    accuracy=metrics["accuracy"],
                    executed_flops_fraction=metrics["executed_flops_fraction"] * scale,
                    clean_accuracy=clean and clean["accuracy"],
                    clean_flops_fraction=clean and clean["executed_flops_fraction"] * scale,
                    hard_accuracy=hard and hard["accuracy"],
                    hard_flops_fraction=hard and hard["executed_flops_fraction"] * scale,
                    distinct_layer_patterns=(metrics["gates"] or {}).get("distinct_layer_patterns"),
                    train_seconds=metrics["train_seconds"],
                )
            )
    return points


def format_sweep(points: Sequence[SweepPoint]) -> str:
    """A table: one row per trained model."""

    def percent(value: float | None) -> str:
        return "    -" if value is None else f"{value:6.1%}"

    def fraction(value: float | None) -> str:
        return "    -" if value is None else f"{value:5.3f}"

    lines = [
        "target  family        widths        FLOPs   accuracy | clean: FLOPs  accuracy | hard: FLOPs  accuracy | block patterns",
    ]
    for point in points:
        widths = "/".join(str(width) for width in point.widths)
        lines.append(
            f"{point.target_flops:6.2f}  {point.family:<12}  {widths:<12}  {point.executed_flops_fraction:5.3f}  "
            f"{percent(point.accuracy)}  |        {fraction(point.clean_flops_fraction)}  {percent(point.clean_accuracy)}  "
            f"|       {fraction(point.hard_flops_fraction)}  {percent(point.hard_accuracy)}  "
            f"| {point.distinct_layer_patterns if point.distinct_layer_patterns is not None else '-'}"
        )
    lines += [
        f"note: {point.family} at target {point.target_flops:.2f} executed {point.executed_flops_fraction:.3f} of the "
        "dense FLOPs, so it is not a point at the target; train longer (--epochs) or raise --flops-weight"
        for point in points
        if abs(point.executed_flops_fraction - point.target_flops) > TARGET_TOLERANCE
    ]
    return "\n".join(lines)


def plot_sweep(points: Sequence[SweepPoint], path: str, title: str) -> None:
    """Accuracy against executed FLOPs per family: all held-out images, and clean and hard ones where recorded."""
    import matplotlib  # noqa: PLC0415 (only the sweep needs it)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    panels = [("all held-out images", "accuracy", "executed_flops_fraction")]
    if any(point.clean_accuracy is not None for point in points):
        panels += [("clean", "clean_accuracy", "clean_flops_fraction"), ("hard", "hard_accuracy", "hard_flops_fraction")]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    markers = {"lc-net": "o-", "static-mask": "s--", "thin-resnet": "^:"}
    for axis, (label, accuracy_key, flops_key) in zip(axes[0], panels):
        for family in FAMILIES:
            rows = sorted(
                (getattr(point, flops_key), getattr(point, accuracy_key)) for point in points if point.family == family
            )
            if rows:
                axis.plot(*zip(*rows), markers[family], label=family)
        axis.set_title(label)
        axis.set_xlabel("executed FLOPs (fraction of the dense backbone)")
        axis.set_ylabel("accuracy")
        axis.grid(alpha=0.3)
    axes[0][0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
