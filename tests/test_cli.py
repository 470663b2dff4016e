"""The `lcnet-tvm` commands, run as a user runs them: in fresh processes."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from lcnet_tvm.schedules.shipped import shipped_records

from lcnet_tvm.evaluation.demo import split_by_difficulty
from lcnet_tvm.evaluation.verify import eager_outputs
from lcnet_tvm.model.checkpoint import dataset_for, load_checkpoint
from lcnet_tvm.model.data import load_digits, load_mixed_digits


def lcnet_tvm(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "lcnet_tvm.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_demo_on_the_shipped_checkpoint(tmp_path):
    # --gates gated checks the gated model and also compiles and times mask form beside it.
    completed = lcnet_tvm("demo", "--gates", "gated", "--json", tmp_path / "demo.json", "--latency-iterations", 5)
    assert completed.returncode == 0, completed.stderr
    report = json.loads((tmp_path / "demo.json").read_text())
    clean, hard = report["by_difficulty"]["clean"], report["by_difficulty"]["hard"]
    assert clean["accuracy"] >= 0.97 and hard["executed_flops_fraction"] > clean["executed_flops_fraction"]
    if report["threshold_ties"] == 0:  # decisions equal eager's, so they call for eager's FLOPs
        assert report["decided_flops_fraction"] == pytest.approx(report["eager_executed_flops_fraction"], abs=1e-6)
    # Channel buckets only add padding to what the decisions call for.
    assert report["executed_flops_fraction"] >= report["decided_flops_fraction"]
    assert report["max_scaled_error"] <= report["logits_tolerance"] and report["gate_agreement"] == 1.0
    assert report["gates"]["distinct_layer_patterns"] >= 20
    assert report["gates"]["distinct_decision_patterns"] > report["samples"] // 2
    for line_start in ("accuracy", "FLOPs", "by image", "gates", "agreement", "latency"):
        assert f"\n{line_start}" in completed.stdout
    assert set(report["latency_batch1"]) == {"eager-mask", "tvm-mask", "tvm-gated"}
    if shipped_records(report["model"]) is not None:  # an AVX2 host: every gated kernel has a shipped record
        assert report["kernels_tuned"] == report["kernels"] > 0


def test_the_demo_reports_clean_and_hard_images_apart_on_a_mixed_data_set():
    mixed = load_mixed_digits(hard_copies=1)
    level = mixed.test_difficulty.level
    correct = (torch.arange(len(level)) % 2 == 0).numpy()
    fractions = np.where(level.numpy() == 0, 0.25, 0.75)
    split = split_by_difficulty(mixed, correct, fractions)
    assert split["clean"]["samples"] == int((level == 0).sum()) and split["hard"]["samples"] == int((level > 0).sum())
    assert split["clean"]["executed_flops_fraction"] == 0.25 and split["hard"]["executed_flops_fraction"] == 0.75
    assert split["clean"]["accuracy"] == correct[level.numpy() == 0].mean()
    assert split_by_difficulty(load_digits(32), correct, fractions) is None  # the clean digits record no difficulty


def load_checkpoint_default():
    from lcnet_tvm.model.checkpoint import SHIPPED_CHECKPOINT

    return load_checkpoint(SHIPPED_CHECKPOINT).model


@pytest.mark.parametrize(
    "args, message",
    [
        (("compile", "--model", "resnet9", "-o", "out"), "unknown model 'resnet9'"),
        (("compile", "--model", "missing.pt", "-o", "out"), "checkpoint 'missing.pt' not found"),
        (("compile", "--target", "tpu", "-o", "out"), "unknown target 'tpu'"),
        (("compile", "--batch-size", "0", "-o", "out"), "batch size must be at least 1, got 0"),
        (("run", "no_such_dir", "--input", "x.npy"), "does not exist"),
        (("train", "--target-flops", "1.5"), "target_flops must be in"),
        (("train", "--sweep", "0.3,1.2"), "--sweep fractions must each lie strictly between 0 and 1"),
        (("train", "--hard-copies", "-1"), "--hard-copies must be 0"),
        (("train", "--cifar10", "cifar", "--hard-copies", "1"), "leave it out with --cifar10"),
        (("tune", "--target", "aarch64", "--trials", "500", "--db", "db"), "tuning for aarch64 measures candidates on the device"),
        (("tune", "--trials", "10", "--db", "db", "--time-limit", "0"), "--time-limit must be positive minutes, got 0"),
        (("compile", "--db", "nodb", "-o", "out"), "'nodb' is not a tuning database"),
        (("compile", "--channel-buckets", "0", "-o", "out"), "channel buckets must be at least 1, got 0"),
    ],
    ids=["model", "checkpoint", "target", "batch-size", "artifact", "train-config", "sweep-fractions", "hard-copies", "hard-copies-cifar", "tune-device", "time-limit", "db", "buckets"],
)
def test_user_errors_are_one_line_without_traceback(tmp_path, args, message):
    completed = lcnet_tvm(*args, cwd=tmp_path)
    assert completed.returncode == 2
    assert completed.stderr.count("\n") == 1 and message in completed.stderr, completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.fixture(scope="module")
def default_compile(tmp_path_factory):
    """``lcnet-tvm compile -o DIR``, nothing else given: (DIR, the finished process)."""
    directory = tmp_path_factory.mktemp("default") / "artifact"
    return directory, lcnet_tvm("compile", "-o", directory)


def test_compile_applies_the_shipped_records_by_default(default_compile):
    _, completed = default_compile
    assert completed.returncode == 0, completed.stderr
    shipped = shipped_records("lcnet_resnet20_cifar")
    if shipped is None:
        pytest.skip("no shipped records run on this machine")
    assert f"for {shipped[0]} " in completed.stdout and " 0 untuned)" in completed.stdout, completed.stdout


def test_compile_then_run_in_a_new_process(default_compile, tmp_path, digits):
    artifact, completed = default_compile
    assert completed.returncode == 0, completed.stderr
    x = digits.x_test[:5].numpy()
    np.save(tmp_path / "batch.npy", x)
    completed = lcnet_tvm("run", artifact, "--input", tmp_path / "batch.npy", "--json", tmp_path / "r.json")
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""  # no native log noise on the user's terminal
    rows = json.loads((tmp_path / "r.json").read_text())["samples"]
    logits, scores = eager_outputs(load_checkpoint_default(), torch.from_numpy(x))
    assert [row["prediction"] for row in rows] == logits.argmax(1).tolist()
    layer_scores = [s for s in scores if s.shape[1] == 1]
    for index, row in enumerate(rows):
        assert row["blocks_kept"] == "".join("1" if s[index, 0] > 0 else "0" for s in layer_scores)
        assert f"sample {index}: prediction {row['prediction']}" in completed.stdout


def test_run_rejects_an_unreadable_input_file(default_compile, tmp_path):
    artifact, completed = default_compile
    assert completed.returncode == 0, completed.stderr
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    completed = lcnet_tvm("run", artifact, "--input", tmp_path / "x.npy")
    assert completed.returncode == 2 and "cannot read" in completed.stderr and "Traceback" not in completed.stderr


def test_train_writes_a_loadable_checkpoint_with_its_statistics(tmp_path):
    completed = lcnet_tvm("train", "--epochs", 1, "--hard-copies", 1, "-o", tmp_path / "tiny.pt")
    assert completed.returncode == 0, completed.stderr
    loaded = load_checkpoint(tmp_path / "tiny.pt")
    info = json.loads((tmp_path / "tiny.json").read_text())
    assert loaded.info == info
    assert info["dataset"] == {"name": "digits-mixed", "seed": 0, "test_fraction": 0.2, "hard_copies": 1}
    for metrics in (info, info["clean"], info["hard"]):
        assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 < metrics["executed_flops_fraction"] <= 1.1
    assert info["clean"]["samples"] + info["hard"]["samples"] == info["samples"]
    # The checkpoint reads its own data set back: the mixed held-out images it was evaluated on.
    assert len(dataset_for(loaded).y_test) == info["samples"]


def test_compile_explain_shows_every_gate_and_what_it_controls():
    completed = lcnet_tvm("compile", "--explain")
    assert completed.returncode == 0, completed.stderr
    rows = completed.stdout.splitlines()[1:]
    assert len(rows) == 18 and all("left in mask form" not in row for row in rows)
    assert rows[0].split()[:3] == ["blocks.0.layer_gate", "layer", "2"]


@pytest.mark.skipif(shipped_records("lcnet_resnet20_cifar") is None, reason="the shipped records need an AVX2 CPU")
def test_bench_on_the_shipped_checkpoint_with_the_shipped_records(tmp_path):
    report_file, plot_file = tmp_path / "bench.json", tmp_path / "bench.png"
    # Every system by default is test_bench's; here the command line, the shipped records and one system of each kind.
    systems = ["eager-skip", "tvm-dense", "tvm-mask", "tvm-gated", "ort-dense"]
    completed = lcnet_tvm("bench", "--iterations", 3, "--profile", "--systems", ",".join(systems), "--json", report_file,
                          "--plot", plot_file)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(report_file.read_text())
    schema = {"model", "target", "batch", "threads", "tuning_trials", "systems", "dense_gflops",
              "speedup_vs_best_eager", "realization_ratio", "speedup_vs_best_peer", "peer_realization_ratio",
              "tvm_dense_vs_best_dense_peer"}
    assert schema <= set(report) and report["batch"] == 1
    assert report["target"] == shipped_records("lcnet_resnet20_cifar")[0]
    assert list(report["systems"]) == systems
    for name in ("tvm-dense", "tvm-mask", "tvm-gated"):  # the shipped records cover every TVM system
        tuning = report["systems"][name]["tuning"]
        assert tuning["tuned"] == tuning["kernels"] and report["tuning_trials"][name] >= tuning["kernels"]
    assert "realization ratio" in completed.stdout and "tvm-gated profile" in completed.stdout
    assert all(report[key] is not None for key in schema if key.endswith(("_ratio", "_peer")))
    assert plot_file.read_bytes()[:4] == b"\x89PNG"
