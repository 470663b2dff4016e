"""The gate kernels (decisions, bucket gathers) against numpy, on random and edge-case scores."""

import numpy as np
import pytest
import tvm
from tvm import relax

from lcnet_tvm.compiler.gate_forms import channel_buckets
from lcnet_tvm.passes.gate_kernels import channel_decision, channel_gather, layer_decision


def _run(func: tvm.tirx.PrimFunc, inputs: list[np.ndarray], outputs: list[tuple[tuple[int, ...], str]]) -> list[np.ndarray]:
    library = tvm.compile(tvm.IRModule({"kernel": func.with_attr("global_symbol", "kernel")}), "llvm")
    results = [tvm.runtime.empty(shape, dtype) for shape, dtype in outputs]
    library["kernel"](*[tvm.runtime.tensor(array) for array in inputs], *results)
    return [result.numpy() for result in results]


def _scores(rng, rows: int, width: int, case: str) -> np.ndarray:
    scores = np.clip(rng.normal(size=(rows, width)), 0, 1).astype("float32")
    return {"random": scores, "none-kept": np.zeros_like(scores), "all-kept": scores + 0.5}[case]


@pytest.mark.parametrize("rows, width, buckets", [(1, 16, 8), (3, 6, 8), (2, 10, 4), (1, 1, 1), (4, 64, 8)])
@pytest.mark.parametrize("case", ["random", "none-kept", "all-kept"])
def test_the_channel_decision_orders_counts_and_flags_the_chosen_bucket(rows, width, buckets, case):
    rng = np.random.default_rng(rows * 100 + width)
    sizes = channel_buckets(width, buckets)
    arms = [0, *sizes]
    for _ in range(5):
        score = _scores(rng, rows, width, case)
        kernel = channel_decision(relax.TensorType((rows, width), "float32"), sizes)
        outputs = [((width,), "int64"), ((width,), "float32"), ((), "float32"), *[((), "bool")] * (len(arms) - 1)]
        order, computed, largest, *fits = _run(kernel, [score], outputs)
        kept = (score > 0).any(axis=0)
        count = int(kept.sum())
        expected_order = np.concatenate([np.flatnonzero(kept), np.flatnonzero(~kept)])
        np.testing.assert_array_equal(order, expected_order)
        chosen = min(size for size in arms if size >= count)
        expected_computed = np.zeros(width, "float32")
        expected_computed[expected_order[:chosen]] = 1
        np.testing.assert_array_equal(computed, expected_computed)
        assert largest == score.max()
        assert [bool(fit) for fit in fits] == [count <= size for size in arms[:-1]]


@pytest.mark.parametrize("rows", [1, 3])
def test_the_layer_decision_keeps_when_any_sample_keeps(rows):
    rng = np.random.default_rng(rows)
    for score in [np.zeros((rows, 1), "float32"), np.clip(rng.normal(size=(rows, 1)), 0, 1).astype("float32") + 0.1]:
        keep, largest = _run(layer_decision(relax.TensorType((rows, 1), "float32")), [score], [((), "bool"), ((), "float32")])
        assert bool(keep) == bool((score > 0).any()) and largest == score.max()


def test_the_gather_takes_the_first_channels_of_the_order_along_each_operands_axis():
    rng = np.random.default_rng(0)
    width, size = 6, 4
    order = rng.permutation(width).astype("int64")
    operands = [
        (rng.normal(size=(6, 3, 3, 3)).astype("float32"), 0),  # producer weight rows
        (rng.normal(size=(1, 6, 1, 1)).astype("float32"), 1),  # a per-channel constant
        (rng.normal(size=(8, 6, 3, 3)).astype("float32"), 1),  # consumer weight columns
    ]
    for array, axis in operands:
        shape = tuple(size if index == axis else extent for index, extent in enumerate(array.shape))
        kernel = channel_gather(width, size, relax.TensorType(array.shape, "float32"), axis)
        (gathered,) = _run(kernel, [order, array], [(shape, "float32")])
        np.testing.assert_array_equal(gathered, np.take(array, order[:size], axis=axis))
