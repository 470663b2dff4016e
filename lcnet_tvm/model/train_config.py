"""Training hyper-parameters (kept free of heavy imports: the CLI reads the defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from lcnet_tvm.errors import LcnetError


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 0.05
    weight_decay: float = 5e-4
    #: Executed FLOPs the penalty aims at, as a fraction of the dense backbone.
    target_flops: float = 0.4
    #: Weight of the FLOPs penalty in the loss (see ``difficulty_spread``).
    flops_weight: float = 2.0
    #: Gate networks learn this much slower than the backbone, so a gate does not
    #: close for every input before the task loss can argue for it.
    gate_lr_factor: float = 0.1
    max_grad_norm: float = 5.0
    #: Random translation of up to this many pixels (data augmentation).
    max_shift: int = 2
    #: Batch-normalise gate logits while training (folded away after): decisions that vary with the input.
    normalised_gates: bool = False
    #: Gates that ignore the input (their linear weights held at 0, only the bias learned): a learned
    #: static mask, the static-pruning baseline of ``train --sweep``.
    static_gates: bool = False
    #: Per-sample FLOPs targets spread by difficulty: in each batch, the sample whose (detached) loss
    #: ranks r in [0, 1] (0 the easiest) aims at ``target_flops + spread * (r - 0.5)``, and the penalty is
    #: the mean distance of each sample's executed fraction from its own target. Targets are clamped to
    #: [0, 1]: with ``spread / 2 > target_flops`` the easiest samples aim at 0 and the batch's mean target
    #: rises above ``target_flops``. 0: one target for the batch mean, ``|mean executed fraction - target_flops|``.
    difficulty_spread: float = 0.0
    seed: int = 0

    def __post_init__(self):
        if not 0.0 < self.target_flops <= 1.0:
            raise LcnetError(f"target_flops must be in (0, 1], got {self.target_flops}")
        if self.normalised_gates and self.static_gates:
            raise LcnetError("static gates take no input, so there is nothing to normalise; drop one of the two")
        if self.normalised_gates and self.batch_size < 2:
            raise LcnetError(f"normalised gates need batches of at least 2 samples, got batch_size {self.batch_size}")
        if not 0.0 <= self.difficulty_spread <= 1.0:
            raise LcnetError(f"difficulty_spread must be in [0, 1], got {self.difficulty_spread}")
        if self.difficulty_spread and self.batch_size < 2:
            raise LcnetError(f"per-sample targets rank the samples of a batch: they need batches of at least 2, got batch_size {self.batch_size}")
        if self.difficulty_spread and self.static_gates:
            raise LcnetError("static gates decide the same for every input, so they cannot follow a per-sample target")
        if self.epochs < 1 or self.batch_size < 1:
            raise LcnetError(f"epochs and batch_size must be positive, got {self.epochs}, {self.batch_size}")
