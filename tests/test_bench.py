"""The benchmark harness on a tiny model: gate calibration, every system timed, the largest conv found.

No timing assertions: the figures are checked for shape and sanity only.
"""

import pytest
import torch

from lcnet_tvm.bench import format_bench, run_bench
from lcnet_tvm.calibrate import calibrate_gates, decided_fraction
from lcnet_tvm.checkpoint import LoadedModel
from lcnet_tvm.errors import LcnetError
from lcnet_tvm.flops import FlopsCounter
from lcnet_tvm.models import LCResNet, zoo_config

from .conftest import randomize
from .tiny import BUCKETS, SHAPE


def narrow_resnet20() -> torch.nn.Module:
    torch.manual_seed(0)
    config = zoo_config("lcnet_resnet20_cifar").replace(widths=(4, 8, 8), input_size=8)
    return randomize(LCResNet(config), torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(1)), gate_bias=1.0)


@pytest.mark.parametrize("target", [0.3, 0.6])
def test_one_gate_shift_reaches_the_operating_point(target):
    model = narrow_resnet20()
    inputs = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(2))
    counter = FlopsCounter.from_model(model, SHAPE)
    assert decided_fraction(model, inputs, counter) > 0.9  # gates start (nearly) open
    shift = calibrate_gates(model, inputs, target, counter)
    reached = decided_fraction(model, inputs, counter)
    assert shift < 0 and target - 0.05 <= reached <= target


def test_an_unreachable_operating_point_is_refused():
    model = narrow_resnet20()
    counter = FlopsCounter.from_model(model, SHAPE)
    with pytest.raises(LcnetError, match="must be in \\(0, 1\\], got 1.5"):
        calibrate_gates(model, torch.randn(4, *SHAPE), 1.5, counter)
    with pytest.raises(LcnetError, match="ungated layers"):
        calibrate_gates(model, torch.randn(4, *SHAPE), 0.01, counter)


def test_bench_times_every_system_and_compares_the_largest_conv(tuned):
    model, directory, _ = tuned
    report = run_bench(LoadedModel("tiny", model, "untrained"), "x86", str(directory), 3, channel_buckets=BUCKETS)
    assert set(report["systems"]) == {"eager-mask", "tvm-gated-untuned", "tvm-gated"}
    assert all(row["median_ms"] > 0 and row["iterations"] == 3 for row in report["systems"].values())
    assert report["kernels_tuned"] == report["kernels"] and report["tuning_trials"] >= report["kernels"]
    assert 0 < report["decided_gflops"] <= report["executed_gflops"] <= report["dense_gflops"] * 1.01
    conv = report["largest_conv"]
    assert conv["gflops"] * 1e9 == largest_conv_flops(model)
    assert conv["tvm_tuned_ms"] > 0 and conv["tvm_untuned_ms"] > 0 and conv["torch_ms"] > 0
    assert "largest conv" in format_bench(report)


def largest_conv_flops(model: torch.nn.Module) -> int:
    """FLOPs of the model's largest Conv2d, from PyTorch (independent of the compiler's kernels)."""
    flops = []

    def record(conv, _inputs, output):
        flops.append(2 * output.numel() * conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1])

    hooks = [module.register_forward_hook(record) for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.randn(1, *SHAPE))
    for hook in hooks:
        hook.remove()
    return max(flops)
