"""FoldBatchNorm: structure (Before/Expected) and numbers."""

import numpy as np
import tvm
from lcnet_tvm.passes.fold_batch_norm import FoldBatchNorm
from tvm import relax

RNG = np.random.default_rng(0)
WEIGHT = RNG.normal(size=(4, 3, 3, 3)).astype("float32")
GAMMA, BETA, MEAN = (RNG.normal(size=4).astype("float32") for _ in range(3))
VARIANCE = RNG.uniform(0.5, 2.0, size=4).astype("float32")


def conv_bn_module() -> tvm.IRModule:
    x = relax.Var("x", relax.TensorType((1, 3, 8, 8), "float32"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x]):
        conv = builder.emit(relax.op.nn.conv2d(x, relax.const(WEIGHT), padding=1))
        norm = builder.emit(
            relax.op.nn.batch_norm(conv, *(relax.const(p) for p in (GAMMA, BETA, MEAN, VARIANCE)), axis=1, epsilon=1e-5)
        )
        out = builder.emit(relax.op.nn.relu(builder.emit(relax.TupleGetItem(norm, 0))))
        builder.emit_func_output(out)
    return builder.get()


def test_batch_norm_after_a_conv_folds_into_its_weight_and_a_bias():
    scale = GAMMA.astype(np.float64) / np.sqrt(VARIANCE.astype(np.float64) + 1e-5)
    x = relax.Var("x", relax.TensorType((1, 3, 8, 8), "float32"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x]):
        conv = builder.emit(relax.op.nn.conv2d(x, relax.const((WEIGHT * scale[:, None, None, None]).astype("float32")), padding=1))
        bias = (BETA - MEAN * scale).astype("float32").reshape(1, 4, 1, 1)
        out = builder.emit(relax.op.nn.relu(builder.emit(relax.op.add(conv, relax.const(bias)))))
        builder.emit_func_output(out)
    tvm.ir.assert_structural_equal(FoldBatchNorm()(conv_bn_module()), builder.get())


def test_a_module_without_batch_norm_is_unchanged():
    x = relax.Var("x", relax.TensorType((1, 3, 8, 8), "float32"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x]):
        builder.emit_func_output(builder.emit(relax.op.nn.relu(builder.emit(relax.op.nn.conv2d(x, relax.const(WEIGHT))))))
    plain = builder.get()
    tvm.ir.assert_structural_equal(FoldBatchNorm()(plain), plain)


def test_folding_keeps_the_numbers():
    before, after = conv_bn_module(), FoldBatchNorm()(conv_bn_module())
    x = tvm.runtime.tensor(RNG.normal(size=(1, 3, 8, 8)).astype("float32"))
    outputs = []
    for mod in (relax.transform.DecomposeOpsForInference()(before), after):
        vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
        outputs.append(vm["main"](x).numpy())
    np.testing.assert_allclose(outputs[1], outputs[0], rtol=1e-5, atol=1e-5)
