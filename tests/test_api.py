"""The public API at the package top: what users import, whatever the sub-packages beneath it do."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import lcnet_tvm
from lcnet_tvm import CompileOptions, LcnetError

from .architectures import VGGWithChannelGates
from .conftest import randomize


def test_every_public_name_resolves_and_importing_the_package_loads_neither_tvm_nor_torch():
    assert {name for name in lcnet_tvm.__all__ if name != "__version__"} <= set(dir(lcnet_tvm))
    for name in lcnet_tvm.__all__:
        assert getattr(lcnet_tvm, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'compile'"):
        lcnet_tvm.compile  # noqa: B018
    probe = "import sys, lcnet_tvm; print(sorted({'tvm', 'torch'} & set(sys.modules)))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(target="tpu"), "unknown target 'tpu'; use one of x86"),
        (dict(gate_form="lowest"), "unknown gate form 'lowest'; use one of gated, mask, dense"),
        (dict(batch_size=0), "batch size must be at least 1, got 0"),
        (dict(batch_size="2"), "batch size must be an integer, got '2'"),
        (dict(channel_buckets=0), "channel buckets must be at least 1, got 0"),
        (dict(target="cuda", host_program=True), "target cuda runs its kernels on a device and keeps the Relax VM"),
    ],
)
def test_bad_compile_options_are_one_error_naming_the_value(options, message):
    with pytest.raises(LcnetError, match=message):
        CompileOptions(**options)


def test_options_resolve_the_target_once():
    options = CompileOptions("x86-avx2", batch_size=2, database="somewhere")
    assert options.target.name == "x86-avx2" and options.target_config["mcpu"] == "core-avx2"
    assert options.tvm_target.kind.name == "llvm" and str(options.database) == "somewhere"
    masked = options.replace(gate_form="mask")
    assert masked.gate_form == "mask" and masked.target is options.target and masked.batch_size == 2


def test_main_runs_as_a_host_program_where_the_target_can_unless_asked_otherwise():
    assert CompileOptions("x86-avx2").runs_host_program and not CompileOptions("cuda").runs_host_program
    assert not CompileOptions("x86-avx2", host_program=False).runs_host_program
    assert not CompileOptions("x86-avx2").replace(target="cuda").runs_host_program  # the default follows the target


def test_a_user_model_compiles_saves_loads_and_runs_through_the_public_api(tmp_path):
    torch.manual_seed(0)
    model = randomize(VGGWithChannelGates(), torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    compiled = lcnet_tvm.compile_model(model, (3, 8, 8), CompileOptions(batch_size=2), name="user_vgg", source="test")
    assert repr(compiled) == (
        "<CompiledModel user_vgg for x86, input (2, 3, 8, 8), gated gates (2), "
        f"0/{compiled.tuning.kernels} kernels tuned>"
    )
    summary = compiled.summary()
    assert "user_vgg (test) for x86" in summary and "no tuning database" in summary
    lowered = sum(gate.lowered for gate in compiled.metadata.gates)
    assert lowered >= 1 and summary.count("channel gathers, buckets") == lowered
    assert summary.count("mask form") == len(compiled.metadata.gates) - lowered  # gate_a's channels feed gate_b's pooling
    compiled.save(tmp_path / "artifact")
    x = torch.randn(5, 3, 8, 8, generator=torch.Generator().manual_seed(2))
    result = lcnet_tvm.load(tmp_path / "artifact").run(x)
    with torch.no_grad():
        logits, *scores = lcnet_tvm.WithGateScores(model)(x)
    np.testing.assert_allclose(result.logits, logits.numpy(), atol=1e-4, rtol=1e-4)
    for decision, score in zip(result.decisions, scores):
        np.testing.assert_array_equal(decision, score.numpy() > 0)


def test_artifact_metadata_round_trips_and_an_artifact_from_before_the_gated_name_loads(tmp_path):
    torch.manual_seed(0)
    model = randomize(VGGWithChannelGates(), torch.randn(64, 3, 8, 8, generator=torch.Generator().manual_seed(1)))
    compiled = lcnet_tvm.compile_model(model, (3, 8, 8), name="user_vgg")
    directory = compiled.save(tmp_path / "artifact")
    metadata_file = directory / "metadata.json"
    data = json.loads(metadata_file.read_text())
    loaded = lcnet_tvm.load(directory)
    assert loaded.metadata == compiled.metadata and loaded.metadata.to_json() == data
    # Artifacts written before the gate form was renamed say "lowered".
    metadata_file.write_text(json.dumps({**data, "gate_form": "lowered"}))
    assert lcnet_tvm.load(directory).metadata.gate_form == "gated"
    del data["kernels"]
    metadata_file.write_text(json.dumps(data))
    with pytest.raises(lcnet_tvm.LcnetError, match="incomplete metadata .*'kernels'.*; recompile it"):
        lcnet_tvm.load(directory)
