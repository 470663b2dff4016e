"""The runtime wrapper: artifacts on disk, input validation, and clear errors for bad files."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from lcnet_tvm import CompileOptions, compile_model
from lcnet_tvm.errors import ArtifactError, InputError, LcnetError, TargetError
from lcnet_tvm.evaluation.verify import eager_outputs
from lcnet_tvm.model.resnet import build_model
from lcnet_tvm.runtime.artifact import KernelRecord
from lcnet_tvm.runtime.compiled_model import LIBRARY_FILE, METADATA_FILE, CompiledModel
from lcnet_tvm.runtime.instrument import profile_kernels

from .conftest import randomize

NAME = "lcnet_resnet20_cifar"


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return randomize(build_model(NAME), torch.randn(64, 3, 32, 32, generator=torch.Generator().manual_seed(8)), seed=7)


@pytest.fixture(scope="module")
def artifact(model, tmp_path_factory):
    directory = tmp_path_factory.mktemp("artifacts") / "resnet20"
    compile_model(model, (3, 32, 32), CompileOptions(batch_size=2, timed=True), name=NAME).save(directory)
    return directory


@pytest.fixture(scope="module")
def loaded(artifact):
    return CompiledModel.load(artifact)


@pytest.fixture
def broken(artifact, tmp_path):
    """A fresh copy of the artifact to damage."""
    copy = tmp_path / "copy"
    shutil.copytree(artifact, copy)
    return copy


def test_loaded_artifact_matches_eager_and_records_its_build(loaded, model):
    x = torch.randn(7, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    result = loaded.run(x)
    logits, scores = eager_outputs(model, x)
    np.testing.assert_allclose(result.logits, logits, atol=1e-4, rtol=1e-4)
    for compiled, eager in zip(result.decisions, scores):
        np.testing.assert_array_equal(compiled, eager > 0)
    metadata = loaded.metadata
    assert metadata.model == NAME and metadata.input_shape == (2, 3, 32, 32)
    assert metadata.target["kind"] == "llvm" and metadata.tvm_version
    assert metadata.kernels and all(k == KernelRecord(k.name, tuned=False, trials=0) for k in metadata.kernels)


def test_a_loaded_artifact_can_be_profiled_in_place(loaded):
    batches = [np.random.default_rng(seed).standard_normal((2, 3, 32, 32), dtype=np.float32) for seed in range(2)]
    profile = profile_kernels(loaded, batches, rounds=2)
    assert profile["method"] == "each kernel call timed in place"
    assert profile["kernels"] and all(kernel["ms"] > 0 for kernel in profile["kernels"])
    assert all(row["ms"] >= 0 for row in profile["categories"].values())
    assert sum(row["ms"] for row in profile["categories"].values()) == pytest.approx(profile["inference_ms"])
    assert profile["calls_outside_kernels"] == {"host program calls": 1, **profile["calls_outside_kernels"]}
    assert {kernel["name"] for kernel in profile["kernels"]} <= {kernel.name for kernel in loaded.metadata.kernels}
    # The gate kernels the lowering adds are filed under their own categories, not among residual adds and ReLUs.
    # A bucket's convolutions, which gather their weights themselves, are convolutions.
    filed = {kernel["name"]: kernel["category"] for kernel in profile["kernels"]}
    buckets = [name for name in filed if name.startswith("fused_gate") and "conv2d" in name]
    assert buckets and any(name.endswith("_decision") for name in filed)
    for name, category in filed.items():
        if name in buckets:
            assert category == "convolutions", name
        if name.endswith("_decision"):
            assert category == "gate networks and decisions", name


def test_a_host_program_without_its_timed_twin_cannot_be_profiled_and_says_how_to_compile(loaded):
    untimed = CompiledModel(loaded.executable, dataclasses.replace(loaded.metadata, timed_kernels=[]))
    with pytest.raises(LcnetError, match=r"without its timed twin.*CompileOptions\(timed=True\)"):
        profile_kernels(untimed, [np.zeros((2, 3, 32, 32), np.float32)], rounds=1)


def test_numpy_torch_and_non_contiguous_inputs_agree(loaded):
    x = np.random.default_rng(0).standard_normal((3, 32, 32, 3)).astype(np.float32)
    nchw = x.transpose(0, 3, 1, 2)  # a non-contiguous view
    assert not nchw.flags["C_CONTIGUOUS"]
    from_view = loaded.run(nchw).logits
    np.testing.assert_array_equal(from_view, loaded.run(np.ascontiguousarray(nchw)).logits)
    np.testing.assert_array_equal(from_view, loaded.run(torch.from_numpy(np.ascontiguousarray(nchw))).logits)


def test_results_are_not_changed_by_later_runs(loaded):
    """Outputs are zero-copy views of what the VM returned: a later call must not write into them."""
    generator = np.random.default_rng(5)
    first, second = (generator.standard_normal((2, 3, 32, 32)).astype(np.float32) for _ in range(2))
    kept = loaded.run(first)
    snapshot = [kept.logits.copy(), *(score.copy() for score in kept.scores)]
    for _ in range(3):
        loaded.run(second)
    for held, copied in zip([kept.logits, *kept.scores], snapshot):
        np.testing.assert_array_equal(held, copied)


@pytest.mark.parametrize(
    "make_input, message",
    [
        (lambda: np.zeros((3, 32, 32), np.float32), r"shape \(3, 32, 32\) does not match"),
        (lambda: np.zeros((1, 3, 28, 28), np.float32), r"shape \(1, 3, 28, 28\) does not match"),
        (lambda: np.zeros((1, 3, 32, 32), np.float64), "dtype is float64, expected float32"),
        (lambda: np.zeros((1, 3, 32, 32), np.int64), "dtype is int64"),
        (lambda: np.full((1, 3, 32, 32), np.nan, np.float32), "NaN or Inf"),
        (lambda: np.full((2, 3, 32, 32), np.inf, np.float32), "NaN or Inf"),
        (lambda: np.zeros((0, 3, 32, 32), np.float32), "empty"),
        (lambda: [[0.0]], "numpy array or torch tensor, got list"),
        (lambda: torch.zeros(1, 3, 32, 32, device="meta"), "device meta"),
        (lambda: torch.zeros(1, 3, 32, 32, dtype=torch.float16), "dtype is float16"),
        (lambda: np.float32(1.0), "numpy array or torch tensor, got float32"),
        (lambda: np.full((3, 3, 32, 32), 3e38, np.float32), r"samples \[0, 1, 2\] overflow float32 inside the network"),
    ],
    ids=["rank", "size", "float64", "int", "nan", "inf", "empty", "list", "device", "float16", "scalar", "overflow"],
)
def test_bad_inputs_give_one_actionable_error(loaded, make_input, message):
    with pytest.raises(InputError, match=message):
        loaded.run(make_input())


def damage_metadata(directory, **changes):
    metadata = json.loads((directory / METADATA_FILE).read_text())
    metadata.update(changes)
    (directory / METADATA_FILE).write_text(json.dumps(metadata))


@pytest.mark.parametrize(
    "damage, error, message",
    [
        (lambda d: shutil.rmtree(d), ArtifactError, "does not exist"),
        (lambda d: (d / METADATA_FILE).unlink(), ArtifactError, "has no metadata.json"),
        (lambda d: (d / METADATA_FILE).write_text("{not json"), ArtifactError, "is corrupt"),
        (lambda d: damage_metadata(d, format="other/9"), ArtifactError, "format 'other/9'"),
        (lambda d: damage_metadata(d, tvm_version="0.19.0"), ArtifactError, "built with TVM '0.19.0'"),
        (
            lambda d: damage_metadata(d, target={"kind": "llvm", "mtriple": "aarch64-linux-gnu"}),
            TargetError,
            "aarch64-linux-gnu",
        ),
        (lambda d: damage_metadata(d, target_name="tpu"), TargetError, "unknown target 'tpu'"),
        (lambda d: (d / LIBRARY_FILE).unlink(), ArtifactError, "is missing"),
        (
            lambda d: (d / LIBRARY_FILE).write_bytes((d / LIBRARY_FILE).read_bytes()[:4096]),
            ArtifactError,
            "checksum",
        ),
    ],
    ids=["no-dir", "no-metadata", "bad-json", "format", "tvm-version", "other-arch", "unknown-target",
         "no-library", "truncated-library"],
)
def test_bad_artifacts_give_one_actionable_error(broken, damage, error, message):
    damage(broken)
    with pytest.raises(error, match=message):
        CompiledModel.load(broken)


def test_save_refuses_to_overwrite_a_foreign_directory(loaded, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not an lcnet_tvm artifact"):
        loaded.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_save_replaces_an_artifact_and_leaves_no_staging_files(loaded, artifact, tmp_path):
    target = tmp_path / "again"
    loaded.save(target)
    loaded.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again"]
    assert sorted(p.name for p in target.iterdir()) == sorted([LIBRARY_FILE, METADATA_FILE])


@pytest.mark.parametrize("chosen", [None, "1"])
def test_tvm_runs_on_every_cpu_unless_the_user_chose(chosen):
    """Unset, TVM's pool takes half the CPUs (one on a 2-CPU machine); importing lcnet_tvm sets every CPU."""
    env = {name: value for name, value in os.environ.items() if name not in ("TVM_NUM_THREADS", "OMP_NUM_THREADS")}
    if chosen:
        env["TVM_NUM_THREADS"] = chosen
    script = "import lcnet_tvm, tvm; print(tvm.runtime.num_threads())"
    threads = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    assert int(threads) == (int(chosen) if chosen else len(os.sched_getaffinity(0)))
