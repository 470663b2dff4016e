"""The benchmark harness on tiny models: gate calibration, every system timed at every operating point.

No timing assertions: the figures are checked for shape and sanity only.
"""

import dataclasses
import json
import re
import sys

import numpy as np
import pytest
import torch

from lcnet_tvm.errors import LcnetError
from lcnet_tvm.evaluation import bench as bench_module
from lcnet_tvm.evaluation.bench import (
    COMPILE_CANDIDATES,
    BenchOptions,
    check_logits,
    format_bench,
    plot_bench,
    run_bench,
)
from lcnet_tvm.evaluation.calibrate import calibrate_gates, calibration_inputs, decided_fraction
from lcnet_tvm.evaluation.eager_skip import SkippingResNet
from lcnet_tvm.evaluation.peers import unavailable
from lcnet_tvm.evaluation.systems import DENSE_PEERS, EAGER_SYSTEMS, NON_TVM_SYSTEMS, SYSTEMS, TVM_FORMS
from lcnet_tvm.evaluation.timing import timed_rounds
from lcnet_tvm.evaluation.verify import (
    LOGIT_TOLERANCE,
    ROUNDING_ALLOWANCE,
    EagerReference,
    eager_reference,
    weight_ulp_twin,
)
from lcnet_tvm.model.checkpoint import LoadedModel, dataset_for, resolve_model
from lcnet_tvm.model.flops import FlopsCounter
from lcnet_tvm.model.gates import WithGateScores
from lcnet_tvm.model.resnet import LCResNet, zoo_config
from lcnet_tvm.runtime.instrument import OUTSIDE_KERNELS
from lcnet_tvm.targets import get_target

from .conftest import randomize
from .tiny import BUCKETS, SHAPE

SCHEMA_KEYS = {
    "model", "target", "batch", "threads", "tuning_trials", "systems", "dense_gflops",
    "speedup_vs_best_eager", "realization_ratio",
    "speedup_vs_best_peer", "peer_realization_ratio", "tvm_dense_vs_best_dense_peer",
}


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


def test_bench_measures_every_system_at_every_operating_point(tuned, tmp_path):
    model, directory, _ = tuned
    options = BenchOptions("x86", str(directory), iterations=3, batch=2, flops_fractions=[0.6, 0.9],
                           channel_buckets=BUCKETS, profile=True, show_progress=False)
    report = run_bench(LoadedModel("lcnet_resnet20_cifar", model, "untrained"), options)
    assert SCHEMA_KEYS <= set(report) and report["batch"] == 2 and report["target"] == "x86"
    assert report["systems"] == report["points"][0]["systems"]
    counter = FlopsCounter.from_model(model, SHAPE)
    dense = counter.dense_flops / 1e9
    assert report["dense_gflops"] == dense
    for point in report["points"]:
        systems = point["systems"]
        assert list(systems) == list(SYSTEMS)
        for row in systems.values():
            assert {"median_ms", "p90_ms", "p99_ms", "executed_gflops"} <= set(row)
            assert 0 < row["median_ms"] <= row["p90_ms"] <= row["p99_ms"] and row["iterations"] == 3
            assert row["rounds"] == timed_rounds(3) and row["round_median_q25_ms"] <= row["round_median_q75_ms"]
            # every system, peers included, computed eager's logits before it was timed
            assert 0 <= row["logits_max_scaled_error"] <= row["logits_tolerance"]
        for name in ("eager-dense", "tvm-dense"):
            assert systems[name]["executed_gflops"] == dense
        masked = (counter.dense_flops + counter.gate_network_flops) / 1e9
        for name in ("eager-mask", "tvm-mask", "ort-mask", "openvino-mask"):
            assert systems[name]["executed_gflops"] == pytest.approx(masked)
        for name in DENSE_PEERS:
            assert systems[name]["executed_gflops"] == dense
        # Buckets round kept channels up: the compiled gated model runs at least what eager-skip runs.
        assert systems["eager-skip"]["executed_gflops"] <= systems["tvm-gated"]["executed_gflops"] * (1 + 1e-6)
        compiled_torch = systems["torch-compile"]
        assert compiled_torch["compiled_from"] in COMPILE_CANDIDATES
        assert compiled_torch["executed_gflops"] == systems[compiled_torch["compiled_from"]]["executed_gflops"]
        assert compiled_torch["graphs"] == compiled_torch["graph_breaks"] + 1
        for name in TVM_FORMS:  # records are for batch 1: batch-2 kernels partly share their shapes
            tuning = systems[name]["tuning"]
            assert 0 <= tuning["tuned"] <= tuning["kernels"] and point["tuning_trials"][name] == tuning["trials"]
        assert point["tuning_trials"]["tvm-gated"] > 0
        best_eager = min(systems[name]["median_ms"] for name in EAGER_SYSTEMS)
        assert point["speedup_vs_best_eager"] == pytest.approx(best_eager / systems["tvm-gated"]["median_ms"])
        gated = systems["tvm-gated"]["median_ms"]
        time_ratio = systems["tvm-dense"]["median_ms"] / gated
        flops_ratio = dense / systems["tvm-gated"]["executed_gflops"]
        assert point["realization_ratio"] == pytest.approx(time_ratio / flops_ratio)
        best_other = min(systems[name]["median_ms"] for name in NON_TVM_SYSTEMS)
        assert point["speedup_vs_best_peer"] == pytest.approx(best_other / gated)
        best_dense_peer = min(systems[name]["median_ms"] for name in DENSE_PEERS)
        assert point["peer_realization_ratio"] == pytest.approx(best_dense_peer / gated / flops_ratio)
        assert point["tvm_dense_vs_best_dense_peer"] == pytest.approx(best_dense_peer / systems["tvm-dense"]["median_ms"])
        profile = point["profile"]
        calls = profile["kernel_calls"] + sum(profile["calls_outside_kernels"].values())
        assert calls == pytest.approx(sum(row["calls"] for row in profile["categories"].values()))
        attributed = sum(row["ms"] for row in profile["categories"].values())
        assert attributed == pytest.approx(profile["inference_ms"])
        kernels = [row for name, row in profile["categories"].items() if name != OUTSIDE_KERNELS]
        assert all(row["ms"] > 0 for row in kernels) and profile["categories"]["convolutions"]["calls"] >= 1
        assert profile["kernel_ms"] == pytest.approx(sum(kernel["ms"] for kernel in profile["kernels"]))
        assert profile["calls_outside_kernels"]["memory allocation"] >= 1
    low, high = (point["systems"]["eager-skip"]["executed_gflops"] for point in report["points"])
    assert low < high  # the sweep moves the operating point
    assert report["left_out"] == {}
    assert set(report["threads"]) == {"torch", "tvm", "onnxruntime", "openvino"}
    text = format_bench(report)
    assert "realization ratio" in text and "graph breaks" in text and "slowest kernels" in text
    assert "fastest system without TVM" in text and "peer realization ratio" in text and "ONNX export" in text
    plot = tmp_path / "bench.png"
    plot_bench(report, str(plot))
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(report)  # the report is plain JSON


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (BenchOptions(iterations=0), "iterations must be at least 1, got 0"),
        (BenchOptions(batch=0), "batch must be at least 1, got 0"),
        (BenchOptions(systems=["tvm-fast"]), "unknown systems \\['tvm-fast'\\]; choose from eager-dense"),
        (BenchOptions(systems=["eager-mask"], profile=True), "--profile breaks down tvm-gated"),
        (BenchOptions(flops_fractions=[0.5, 1.5]), r"FLOPs fraction must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_bench_options_are_refused(options, message):
    with pytest.raises(LcnetError, match=message):
        run_bench(LoadedModel("lcnet_resnet20_cifar", narrow_resnet20(), "untrained"), options)


def test_a_target_without_records_names_the_one_with_shipped_records(shipped_tree):
    if get_target("x86-avx2").runnable_here(get_target("x86-avx2").config()) is not None:
        pytest.skip("the x86-avx2 records do not run on this machine")
    shipped_tree("lcnet_resnet20_cifar", "x86-avx2")
    options = BenchOptions("x86-avx512", iterations=2, systems=["tvm-dense"], show_progress=False)
    message = ("no tuning records for lcnet_resnet20_cifar on target x86-avx512 run on this machine; the shipped ones "
               "are for --target x86-avx2: use that, or tune with `lcnet-tvm tune --model lcnet_resnet20_cifar "
               "--target x86-avx512 --gates G --db DIR`")
    with pytest.raises(LcnetError, match=re.escape(message)):
        run_bench(LoadedModel("lcnet_resnet20_cifar", narrow_resnet20(), "untrained"), options)


def test_eager_systems_alone_need_no_tuning_records():
    options = BenchOptions(iterations=2, systems=["eager-dense", "eager-skip"], show_progress=False)
    report = run_bench(LoadedModel("tiny", narrow_resnet20(), "untrained"), options)
    assert list(report["systems"]) == ["eager-dense", "eager-skip"]
    assert report["speedup_vs_best_eager"] is None and report["realization_ratio"] is None


def test_a_system_whose_logits_are_not_eagers_is_reported_and_the_others_are_timed(monkeypatch):
    def rejecting_eager_mask(name, outputs, reference):
        if name == "eager-mask":
            raise LcnetError(f"{name} computes something else than eager PyTorch")
        return check_logits(name, outputs, reference)

    monkeypatch.setattr(bench_module, "check_logits", rejecting_eager_mask)
    options = BenchOptions(iterations=2, systems=["eager-dense", "eager-mask", "eager-skip"], flops_fractions=[0.6],
                           show_progress=False)
    report = run_bench(LoadedModel("tiny", narrow_resnet20(), "untrained"), options)
    assert list(report["systems"]) == ["eager-dense", "eager-skip"] and report["failed_points"] == []
    assert report["rejected"] == report["points"][0]["rejected"] == {
        "eager-mask": "eager-mask computes something else than eager PyTorch"
    }
    assert "eager-mask     NOT TIMED: eager-mask computes something else" in format_bench(report)


def test_an_operating_point_that_fails_is_reported_and_the_others_are_kept(monkeypatch):
    checked = []

    def rejecting_the_second_point(name, outputs, reference):
        checked.append(name)
        if len(checked) == 2:
            raise LcnetError(f"{name} computes something else than eager PyTorch")
        return 0.0

    monkeypatch.setattr(bench_module, "check_logits", rejecting_the_second_point)
    options = BenchOptions(iterations=2, systems=["eager-dense"], flops_fractions=[0.6, 0.3, 0.9], show_progress=False)
    report = run_bench(LoadedModel("tiny", narrow_resnet20(), "untrained"), options)
    assert [point["flops_fraction"] for point in report["points"]] == [0.6, 0.9]
    assert report["failed_points"] == [{"flops_fraction": 0.3, "error": "eager-dense computes something else than eager PyTorch"}]
    assert "FAILED at 0.3 of dense FLOPs: eager-dense computes something else" in format_bench(report)
    checked[:] = ["a first point passed"]  # every point fails: nothing to report, so an error
    with pytest.raises(LcnetError, match="at 0.6 of dense FLOPs: eager-dense computes something else"):
        run_bench(LoadedModel("tiny", narrow_resnet20(), "untrained"), dataclasses.replace(options, flops_fractions=[0.6]))


def test_a_peer_whose_package_is_missing_is_left_out_with_a_note(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now fails
    options = BenchOptions(iterations=2, systems=["eager-dense", "ort-dense", "openvino-dense", "openvino-mask"],
                           show_progress=False)
    report = run_bench(LoadedModel("tiny", narrow_resnet20(), "untrained"), options)
    assert list(report["systems"]) == ["eager-dense", "ort-dense"]
    note = "the Python package 'openvino' is not installed (pip install openvino)"
    assert report["left_out"] == {"openvino-dense": note, "openvino-mask": note}
    assert f"left out openvino-dense: {note}" in format_bench(report)
    assert any("left out openvino-dense, openvino-mask" in record.getMessage() for record in caplog.records)
    # the fastest system without TVM is a peer here, but there is no tvm-gated to compare with
    assert report["speedup_vs_best_peer"] is None and report["tvm_dense_vs_best_dense_peer"] is None


def test_nothing_left_to_measure_is_an_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    options = BenchOptions(iterations=2, systems=["ort-dense"], show_progress=False)
    with pytest.raises(LcnetError, match="nothing left to measure: ort-dense: the Python package 'onnxruntime'"):
        run_bench(LoadedModel("tiny", narrow_resnet20(), "untrained"), options)


def test_peers_without_a_runtime_for_the_device_are_left_out():
    assert unavailable("openvino", "cpu") is None and unavailable("onnxruntime", "cpu") is None
    assert unavailable("openvino", "cuda") == "openvino has no plugin for cuda devices"
    import onnxruntime  # noqa: PLC0415

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        assert "no CUDA execution provider" in unavailable("onnxruntime", "cuda")


def test_a_system_that_computes_something_else_is_refused():
    logits = np.linspace(-3, 3, 20, dtype=np.float32).reshape(2, 10)
    reference = EagerReference([logits], rounding=1e-7)
    assert reference.tolerance == LOGIT_TOLERANCE
    assert check_logits("ort-dense", [logits + 1e-6], reference) == pytest.approx(1e-6, rel=0.05)
    with pytest.raises(LcnetError, match="ort-dense computes something else than eager PyTorch: its logits differ by 0.01"):
        check_logits("ort-dense", [logits + 0.01], reference)


def test_a_weight_ulp_twin_differs_from_the_model_by_one_unit_in_the_last_place():
    model = narrow_resnet20()
    twin = weight_ulp_twin(model, torch.Generator().manual_seed(0))
    upward = total = 0
    for (name, original), changed in zip(model.named_parameters(), twin.parameters()):
        up, down = torch.nextafter(original, torch.tensor(torch.inf)), torch.nextafter(original, torch.tensor(-torch.inf))
        assert bool(((changed == up) | (changed == down)).all()), name
        upward, total = upward + int((changed == up).sum()), total + original.numel()
    assert 0.45 < upward / total < 0.55
    assert all(torch.equal(a, b) for a, b in zip(model.buffers(), twin.buffers()))


def test_the_logit_tolerance_follows_eager_float32_rounding():
    batches = [torch.randn(1, *SHAPE, generator=torch.Generator().manual_seed(seed)).numpy() for seed in range(8)]
    sane = eager_reference(narrow_resnet20(), batches)
    assert 0 < sane.rounding < LOGIT_TOLERANCE / ROUNDING_ALLOWANCE and sane.tolerance == LOGIT_TOLERANCE
    # The bench's untrained ResNet-56 at half its FLOPs: eager alone rounds by more than LOGIT_TOLERANCE
    # on the held-out images, and eager-skip (another exact order of the same sums) is within the allowance.
    loaded = resolve_model("lcnet_resnet56_cifar")
    deep, data = loaded.model, dataset_for(loaded).x_test
    calibrate_gates(deep, calibration_inputs(data), 0.5, FlopsCounter.from_model(deep, loaded.config.input_shape))
    batches = [data[i : i + 1].numpy() for i in range(16)]
    reference = eager_reference(deep, batches)
    # How much float32 rounding moves eager's logits depends on the CPU's kernels (1.6e-4 and 8.5e-5 seen on
    # two machines); the deep untrained network rounds far more than the narrow one either way.
    assert reference.rounding > 10 * sane.rounding
    assert reference.tolerance == max(LOGIT_TOLERANCE, ROUNDING_ALLOWANCE * reference.rounding)
    assert EagerReference(reference.logits, rounding=1e-3).tolerance == ROUNDING_ALLOWANCE * 1e-3
    skipping = SkippingResNet(deep, record=False)
    with torch.inference_mode():
        outputs = [skipping(torch.from_numpy(batch)).numpy() for batch in batches]
    assert check_logits("eager-skip", outputs, reference) > 0
    # Eager itself, its float32 weights rounded the other way in their last bit, is not something else.
    twin = WithGateScores(weight_ulp_twin(deep, torch.Generator().manual_seed(1))).eval()
    with torch.inference_mode():
        assert check_logits("twin", [twin(torch.from_numpy(batch))[0].numpy() for batch in batches], reference) > 0
    assert reference.rounding >= eager_reference(deep, batches, twins=0).rounding
    with pytest.raises(LcnetError, match="eager's own float32 rounding being"):
        check_logits("eager-skip", [output + 10 * reference.tolerance * np.abs(output).max() for output in outputs],
                     reference)
