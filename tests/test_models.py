import pytest
import torch

from lcnet_tvm.errors import LcnetError, ModelError
from lcnet_tvm.model.checkpoint import load_checkpoint, resolve_model, save_checkpoint
from lcnet_tvm.model.gates import find_gates
from lcnet_tvm.model.resnet import ZOO, build_model

EXPECTED_BLOCKS = {
    "lcnet_resnet20_cifar": 9,
    "lcnet_resnet56_cifar": 27,
    "lcnet_resnet110_cifar": 54,
    "lcnet_resnet18_imagenet": 8,
    "lcnet_resnet34_imagenet": 16,
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_models_have_a_layer_and_a_channel_gate_per_block(name):
    model = build_model(name, input_size=32)
    kinds = [gate.kind for _, gate in find_gates(model)]
    assert kinds.count("layer") == kinds.count("channel") == EXPECTED_BLOCKS[name]
    logits = model.eval()(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, ZOO[name].num_classes)


def test_gate_families_can_be_switched_off():
    layer_only = build_model("lcnet_resnet20_cifar", channel_gates=False)
    assert {gate.kind for _, gate in find_gates(layer_only)} == {"layer"}
    assert find_gates(build_model("lcnet_resnet20_cifar", layer_gates=False, channel_gates=False)) == []


def test_unknown_model_lists_the_zoo():
    with pytest.raises(ModelError, match="unknown model 'resnet9'.*lcnet_resnet20_cifar"):
        resolve_model("resnet9")


def test_checkpoint_round_trip(tmp_path):
    torch.manual_seed(1)
    model = build_model("lcnet_resnet20_cifar", num_classes=7).eval()
    save_checkpoint(tmp_path / "m.pt", "lcnet_resnet20_cifar", model, {"accuracy": 0.5})
    loaded = load_checkpoint(tmp_path / "m.pt")
    assert loaded.name == "lcnet_resnet20_cifar" and loaded.info == {"accuracy": 0.5}
    assert loaded.config.num_classes == 7
    x = torch.randn(3, 3, 32, 32)
    torch.testing.assert_close(loaded.model(x), model(x))
    assert (tmp_path / "m.json").is_file()


@pytest.mark.parametrize(
    "content, message",
    [(None, "not found"), (b"", "corrupt"), (b"garbage" * 10, "corrupt")],
    ids=["missing", "empty", "garbage"],
)
def test_bad_checkpoints_give_one_actionable_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelError, match=message):
        resolve_model(str(path))


def test_truncated_checkpoint_is_reported_as_corrupt(tmp_path):
    model = build_model("lcnet_resnet20_cifar")
    save_checkpoint(tmp_path / "m.pt", "lcnet_resnet20_cifar", model, {})
    data = (tmp_path / "m.pt").read_bytes()
    (tmp_path / "m.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="corrupt"):
        load_checkpoint(tmp_path / "m.pt")


def test_a_foreign_torch_file_is_not_a_checkpoint(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(LcnetError, match="not an lcnet_tvm checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
