"""Adding an architecture is one class and one ``@register``: this file is the only one the toy below touches."""

import json

import pytest
import torch
from torch import nn

from genre_model.base import GenreNet
from genre_model.config import ModelConfig
from genre_model.inference import GenreClassifier
from genre_model.registry import ARCHITECTURES, architectures, build_model, register
from tests.conftest import GENRES3, tone


class ToyMean(GenreNet):
    """A toy: the mean log-mel of each band, one linear layer."""

    @staticmethod
    def default_config() -> ModelConfig:
        return ModelConfig("toy-mean", n_mels=32, window_s=1.0, window_hop_s=1.0)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.head = nn.Linear(config.n_mels, len(config.genres))

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:  # (B, 32, T) -> (B, genres)
        return self.head(logmel.mean(dim=-1) / 40)


@pytest.fixture
def toy():
    register(
        "toy-mean",
        "a toy for the registry test",
        card="A toy: one linear layer on the mean log-mel.",
        training=dict(epochs=2, batch_size=8, lr=1e-2, patience=5),
    )(ToyMean)
    yield ARCHITECTURES["toy-mean"]
    ARCHITECTURES.pop("toy-mean")


@pytest.mark.slow
def test_a_registered_toy_trains_saves_loads_predicts_and_reports(toy, tiny_dataset, tmp_path):
    from train.cli import parse_args, run
    from train.report import results_table

    assert "toy-mean" in architectures() and build_model("toy-mean").config.n_mels == 32
    out = tmp_path / "weights" / "toy-mean"
    flags = f"network --model toy-mean --data {tiny_dataset} --out {out} --device cpu --cache-dir {tmp_path / 'cache'}"
    cfg = parse_args(flags.split())
    assert (cfg.epochs, cfg.batch_size, cfg.lr) == (2, 8, 1e-2)  # the registered training defaults
    metrics = run(cfg)
    assert metrics["epochs_run"] == 2 and json.loads((out / "config.json").read_text())["arch"] == "toy-mean"
    card = (out / "README.md").read_text()
    assert "A toy: the mean log-mel" in card and "one linear layer on the mean log-mel." in card and "3 genres" in card
    assert metrics["summary"] in card and metrics["command"] in card  # how it was trained, in training's words
    classifier = GenreClassifier.from_pretrained(out, device="cpu")
    assert classifier.genres == GENRES3 and classifier.predict((22_050, tone(440, 2.5))).genre in GENRES3
    assert "| `toy-mean` |" in results_table(tmp_path / "weights")


def test_unknown_architectures_are_named(tmp_path):
    with pytest.raises(ValueError, match="Unknown architecture 'nope'.*chunk-cnn"):
        build_model("nope")
