"""How gates are compiled (kept free of heavy imports: the CLI reads it without importing TVM).

``gated`` (default): layer gates become conditional subgraphs (a skipped
block is not computed) and channel gates become channel gathers (only the kept
channels are computed and read, rounded up to one of ``channel_buckets``
static channel counts per gate). Gates the passes do not understand stay in
mask form, with a warning. ``mask``: every block and channel is computed,
then multiplied by the gate scores (how research code runs LC-Net).
``dense``: the backbone without its gates (:func:`~lcnet_tvm.model.gates.without_gates`):
every block and channel computed, no gate networks; the baseline gates are measured against.
"""

import math

GATE_FORMS = ("gated", "mask", "dense")
DEFAULT_GATE_FORM = "gated"
#: Static channel counts per channel gate: ceil(C * i / N) for i = 1..N (and 0: nothing kept).
DEFAULT_CHANNEL_BUCKETS = 8


def channel_buckets(width: int, buckets: int = DEFAULT_CHANNEL_BUCKETS) -> list[int]:
    """Static channel counts a gate of ``width`` channels can compute: ``ceil(width * i / buckets)``, i = 1..buckets."""
    if buckets < 1:
        raise ValueError(f"channel buckets must be at least 1, got {buckets}")
    return sorted({math.ceil(width * i / buckets) for i in range(1, buckets + 1)})
