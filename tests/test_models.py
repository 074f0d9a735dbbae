import json

import pytest
import torch

from genre_model.config import GTZAN_GENRES as GENRES
from genre_model.loading import ModelNotFoundError, load_model
from genre_model.models import SeedCNN
from genre_model.registry import build_model


@pytest.mark.parametrize("arch", ["seed-cnn", "ffnn", "chunk-cnn"])
def test_waveform_batch_to_logits(arch):
    model = build_model(arch).eval()
    x = 0.1 * torch.randn(2, model.config.window_samples)
    with torch.inference_mode():
        assert model(x).shape == (2, len(GENRES))
        assert model.to_logmel(x).shape == (2, model.config.n_mels, model.config.window_frames)


def test_seed_cnn_is_the_papers_network():
    model = build_model("seed-cnn")
    assert model.config.n_mels == 128 and model.config.window_frames == 660
    assert sum(p.numel() for p in model.parameters()) == 2_463_114
    x = torch.zeros(1, 1, 128, 660)
    shapes = []
    for layer in model.features:
        x = layer(x)
        shapes.append(tuple(x.shape[1:]))
    assert shapes == [(16, 126, 658), (16, 126, 658), (16, 63, 164), (32, 61, 162), (32, 61, 162), (32, 30, 40)]
    assert isinstance(model, SeedCNN) and model.head[2].out_features == 64


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = build_model("chunk-cnn").eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["arch"] == "chunk-cnn" and config["genres"] == GENRES and config["n_mels"] == 128
    assert "package_version" in config and (tmp_path / "README.md").exists()
    loaded = load_model(tmp_path)
    assert not loaded.training
    x = 0.1 * torch.randn(3, model.config.window_samples)
    with torch.inference_mode():
        torch.testing.assert_close(model(x), loaded(x), rtol=0, atol=0)


def test_missing_weights_is_a_clear_error_never_random_weights(tmp_path):
    with pytest.raises(ModelNotFoundError, match="No trained model at"):
        load_model(tmp_path / "nothing-here")


def test_only_safetensors_are_loaded(tmp_path):
    model = build_model("ffnn")
    model.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(ModelNotFoundError):
        load_model(tmp_path)


def test_incomplete_weights_fail_loudly(tmp_path):
    from safetensors.torch import save_file

    model = build_model("ffnn")
    model.save_pretrained(tmp_path)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("net.1.")}
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="net.1"):
        load_model(tmp_path)


def test_spec_augment_only_while_training():
    model = build_model("chunk-cnn")
    calls = []
    model.spec_augment.register_forward_hook(lambda *args: calls.append(model.training))
    logmel = torch.zeros(4, 128, 130) - 40
    with torch.no_grad():
        model.eval().classify(logmel)
        assert calls == []
        model.train().classify(logmel)
    assert calls == [True]


def test_the_card_says_what_the_architecture_is_and_how_training_made_the_model(tmp_path):
    trained = {"summary": "Fitted by a **test**.", "command": "python -m train network --model ffnn --data d --out o"}
    build_model("ffnn").save_pretrained(tmp_path / "trained", model_card_kwargs={"metrics": trained})
    card = (tmp_path / "trained" / "README.md").read_text()
    assert "68% test accuracy on" in card  # the registry's text about the architecture
    assert "## Training\n\nFitted by a **test**." in card and f"```\n{trained['command']}\n```" in card
    build_model("ffnn").save_pretrained(tmp_path / "untrained")
    card = (tmp_path / "untrained" / "README.md").read_text()
    assert "Not trained by this package's `train`." in card and "python -m train" not in card
