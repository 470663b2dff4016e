"""Training with a task loss plus a FLOPs penalty, and evaluation (accuracy, executed FLOPs, gate statistics)."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.model.data import Dataset
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import find_gates, fold_gate_norms, gate_infos, normalise_gate_logits, record_gate_scores
from lcnet_tvm.model.train_config import TrainConfig

logger = logging.getLogger(__name__)


def _straight_through_keep(scores: torch.Tensor) -> torch.Tensor:
    """Hard keep decisions in the forward pass, the scores' gradient in the backward pass."""
    return (scores > 0).float() + scores - scores.detach()


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    if max_shift == 0:
        return x
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2,), generator=generator).tolist()
    return padded[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


def _batches(count: int, batch_size: int) -> list[slice]:
    """Training batches over ``count`` samples; a last batch of one sample is left out (batch norm needs two)."""
    return [slice(start, start + batch_size) for start in range(0, count, batch_size) if count - start > 1]


def forward_with_flops(model: nn.Module, counter: FlopsCounter, x: torch.Tensor):
    """Logits, gate scores and per-sample executed FLOPs fraction (differentiable in training)."""
    with record_gate_scores(model) as scores:
        logits = model(x)
    keeps = [_straight_through_keep(s) for s in scores] if model.training else [s > 0 for s in scores]
    return logits, scores, counter.executed_flops(keeps) / counter.dense_flops


def train(model: nn.Module, dataset: Dataset, config: TrainConfig, progress: bool = True) -> dict:
    """Train ``model`` in place with SGD + cosine schedule; returns the held-out evaluation."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    counter = FlopsCounter.from_model(model, dataset.x_train.shape[1:])
    if config.normalised_gates:
        normalise_gate_logits(model)
    if config.static_gates:
        for _, gate in find_gates(model):
            gate.fc.weight.data.zero_()
            gate.fc.weight.requires_grad_(False)
    # Channels-last convolutions train about 1.2x faster on CPUs here; the weights go back to plain layout below.
    model.to(memory_format=torch.channels_last)
    gate_params = {id(p) for _, gate in find_gates(model) for p in gate.parameters()}
    # No weight decay on gates and batch norm: decay would drag a rarely used block's scale to zero.
    groups = {"decayed": [], "plain": [], "gates": []}
    for param in (p for p in model.parameters() if p.requires_grad):
        key = "gates" if id(param) in gate_params else "decayed" if param.ndim > 1 else "plain"
        groups[key].append(param)
    optimiser = torch.optim.SGD(
        [
            {"params": groups["decayed"], "weight_decay": config.weight_decay},
            {"params": groups["plain"], "weight_decay": 0.0},
            {"params": groups["gates"], "weight_decay": 0.0, "lr": config.learning_rate * config.gate_lr_factor},
        ],
        lr=config.learning_rate,
        momentum=0.9,
        nesterov=True,
    )
    steps_per_epoch = -(-len(dataset.y_train) // config.batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, [group["lr"] for group in optimiser.param_groups], total_steps=config.epochs * steps_per_epoch, pct_start=0.15
    )
    started = time.perf_counter()
    bar = tqdm(range(config.epochs), desc="train", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        # The penalty ramps in over the first third so the gates first learn what matters.
        ramp = min(1.0, (epoch + 1) / max(1, config.epochs // 3))
        order = torch.randperm(len(dataset.y_train), generator=generator)
        for batch in _batches(len(order), config.batch_size):
            index = order[batch]
            x = _random_shift(dataset.x_train[index], config.max_shift, generator).contiguous(
                memory_format=torch.channels_last
            )
            logits, _, fraction = forward_with_flops(model, counter, x)
            sample_losses = F.cross_entropy(logits, dataset.y_train[index], reduction="none")
            task_loss = sample_losses.mean()
            loss = task_loss + ramp * config.flops_weight * flops_penalty(fraction, sample_losses.detach(), config)
            if not torch.isfinite(loss):
                raise LcnetError(f"training diverged in epoch {epoch + 1} (loss {loss.item()}); lower --lr")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            # Gates switching on and off make rare, very large gradients; clipping keeps them from diverging.
            nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimiser.step()
            if config.static_gates:
                _keep_static_gates_reachable(model)
            scheduler.step()
        bar.set_postfix(loss=f"{task_loss.item():.3f}", flops=f"{fraction.mean().item():.2f}")
    recalibrate_batch_norm(model, dataset.x_train, config.batch_size)
    fold_gate_norms(model)
    model.to(memory_format=torch.contiguous_format)
    metrics = evaluate_by_difficulty(model, dataset, counter)
    metrics["train_seconds"] = round(time.perf_counter() - started, 1)
    metrics["train_config"] = asdict(config)
    return metrics


def flops_penalty(fraction: torch.Tensor, sample_losses: torch.Tensor, config: TrainConfig) -> torch.Tensor:
    """Distance of the executed FLOPs from the target: of the batch mean, or of each sample from its own.

    With ``difficulty_spread``, a sample's target rises with its loss's rank in the batch, so the gates
    are asked to spend more on the inputs the network finds hard, and one decision pattern for every
    input cannot meet targets that differ.
    """
    if not config.difficulty_spread:
        return (fraction.mean() - config.target_flops).abs()
    rank = sample_losses.argsort().argsort().float() / max(1, len(sample_losses) - 1)
    targets = (config.target_flops + config.difficulty_spread * (rank - 0.5)).clamp(0.0, 1.0)
    return (fraction - targets).abs().mean()


@torch.no_grad()
def _keep_static_gates_reachable(model: nn.Module) -> None:
    """Hold a static gate's bias (its logit for every input) at most 1.

    A logit above 1 gets no gradient (the score is clamped there), and a static
    gate's logit is the same for every input: one step above 1 would leave the
    gate open for good, out of reach of the FLOPs penalty.
    """
    for _, gate in find_gates(model):
        gate.fc.bias.clamp_(max=1.0)


@torch.no_grad()
def recalibrate_batch_norm(model: nn.Module, x: torch.Tensor, batch_size: int) -> None:
    """Replace every batch norm's running statistics by exact averages over ``x`` under the final weights.

    The gates' batch norms see features that moved throughout training; their
    momentum averages lag behind, and a lagging mean shifts hard gate decisions.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    for batch in _batches(len(x), batch_size):
        model(x[batch])
    for norm in norms:
        norm.momentum = 0.1
    model.eval()


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, counter: FlopsCounter, batch_size: int = 256) -> dict:
    """Accuracy, executed-FLOPs fraction and gate statistics of ``model`` in eval mode."""
    model.eval()
    correct = 0
    fractions, all_scores = [], []
    for start in range(0, len(y), batch_size):
        logits, scores, fraction = forward_with_flops(model, counter, x[start : start + batch_size])
        correct += int((logits.argmax(1) == y[start : start + batch_size]).sum())
        fractions.append(fraction)
        all_scores.append([s.numpy() for s in scores])
    scores = [np.concatenate(parts) for parts in zip(*all_scores)]
    return {
        "accuracy": correct / len(y),
        "samples": len(y),
        "dense_gflops": counter.dense_flops / 1e9,
        "gate_network_gflops": counter.gate_network_flops / 1e9,
        "executed_flops_fraction": float(torch.cat(fractions).mean()),
        "gates": gate_statistics(gate_infos(model), [s > 0 for s in scores]) if scores else None,
    }


def evaluate_by_difficulty(model: nn.Module, dataset: Dataset, counter: FlopsCounter) -> dict:
    """:func:`evaluate` on the whole held-out split and, for a mixed data set, on its clean and its hard images."""
    metrics = evaluate(model, dataset.x_test, dataset.y_test, counter)
    for name, subset in dataset.held_out_by_difficulty().items():
        metrics[name] = evaluate(model, dataset.x_test[subset], dataset.y_test[subset], counter)
    return metrics


def gate_statistics(infos, decisions: list[np.ndarray]) -> dict:
    """How the gates behave over a set of samples.

    Per gate: the fraction kept (samples x channels) and how many samples differ
    from the gate's most common decision (0 everywhere would mean static gates).
    Overall: distinct per-sample patterns of layer-gate decisions, and of all decisions.
    """
    per_gate = []
    for info, keep in zip(infos, decisions):
        kept = float(keep.mean())
        per_gate.append(
            {
                "name": info.name,
                "kind": info.kind,
                "kept_fraction": round(kept, 4),
                # Per sample, the kept fraction of this gate's channels; its spread shows input dependence.
                "kept_fraction_std_over_samples": round(float(keep.mean(axis=1).std()), 4),
            }
        )
    layer = [keep[:, 0] for info, keep in zip(infos, decisions) if info.kind == "layer"]
    patterns = {tuple(row) for row in np.stack(layer, axis=1)} if layer else set()
    every_decision = np.concatenate([keep.reshape(len(keep), -1) for keep in decisions], axis=1)
    return {
        "per_gate": per_gate,
        "distinct_layer_patterns": len(patterns),
        # Samples whose complete set of decisions (all blocks and channels) differs from every other's.
        "distinct_decision_patterns": len({row.tobytes() for row in every_decision}),
        "layer_kept_fraction": float(np.mean(layer)) if layer else None,
        "channel_kept_fraction": float(
            np.mean([keep.mean() for info, keep in zip(infos, decisions) if info.kind == "channel"])
        )
        if any(info.kind == "channel" for info in infos)
        else None,
    }
