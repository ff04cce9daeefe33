import pytest

from dcltal.config import load_config
from dcltal.errors import UserError


def test_defaults_and_shipped_configs_load():
    assert load_config().model.variant == "dnet"
    for name in ("thumos14_i3d", "anet13_i3d", "synth"):
        cfg = load_config(f"configs/{name}.yaml")
        assert set(cfg.data.streams) == {"rgb", "flow"}


def test_set_overrides_take_dotted_keys_and_yaml_values():
    cfg = load_config("configs/thumos14_i3d.yaml", ["data.streams.rgb=[0,256]", "train.epochs=3", "data.annotations=null"])
    assert cfg.data.streams == {"rgb": [0, 256], "flow": [1024, 2048]}
    assert cfg.train.epochs == 3 and cfg.data.annotations is None


def test_int_is_accepted_where_a_float_is_expected():
    assert load_config(overrides=["train.lr=1"]).train.lr == 1.0


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.epoch=3", "unknown config key train.epoch"),
        ("modle.variant=dnet", "unknown config key modle"),
        ("model.variant=dnett", "model.variant: unknown value 'dnett'"),
        ("train.epochs=three", "train.epochs"),
        ("data.streams.rgb=[5,1]", "data.streams.rgb"),
        ("train.epochs", "expected KEY=VALUE"),
        ("train.threads=-1", "train.threads"),
        ("infer.stream_weights=heldout", "infer.stream_weights: 'heldout' is neither held_out"),
    ],
)
def test_mistakes_name_the_key(override, fragment):
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace(".", r"\.")):
        load_config(overrides=[override])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)


def test_threads_key_sets_torch_threads(tmp_path):
    import argparse

    import torch

    from dcltal.commands.common import config_from_args

    before = torch.get_num_threads()
    try:
        args = argparse.Namespace(config=str(tmp_path / "c.yaml"), overrides=["train.threads=1"])
        (tmp_path / "c.yaml").write_text("train: {epochs: 1}\n")
        assert config_from_args(args).train.threads == 1
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
