"""``python -m train {network,musicnn} --data DIR --out weights/NAME [...]``: one sub-command per recipe, each with
only the flags it reads (``python -m train RECIPE --help``)."""

from __future__ import annotations

import argparse

from genre_model.registry import architecture, architectures

from . import musicnn, network
from .fit import add_flags

RECIPES = {
    "network": (network, network.NetworkConfig, "a network from scratch on random crops (seed-cnn, ffnn, chunk-cnn)"),
    "musicnn": (
        musicnn,
        musicnn.MusicnnConfig,
        "a genre head on the pretrained musicnn backbone, with room copies and distillation (musicnn-genre; the "
        "defaults are the committed model's)",
    ),
}
Config = network.NetworkConfig | musicnn.MusicnnConfig


def parse_args(argv: list[str] | None = None) -> Config:
    """The command line as its recipe's config: the dataclass defaults, then (network) the architecture's
    registered ``training`` settings, then the flags given."""
    parser = argparse.ArgumentParser(prog="python -m train", description="Train a genre model on GTZAN-layout data.")
    recipes = parser.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    for name, (_, config, about) in RECIPES.items():
        add_flags(recipes.add_parser(name, help=about, description=about), config)
    given = vars(parser.parse_args(argv))
    _, config, _ = RECIPES[given.pop("recipe")]
    if config is network.NetworkConfig:
        model = given.get("model", network.NetworkConfig.model)
        if model not in architectures() or architecture(model).recipe != "network":
            names = [name for name, entry in architectures().items() if entry.recipe == "network"]
            parser.error(f"--model {model} is not a network trained from scratch: choose one of {', '.join(names)}")
        given = {**architecture(model).training, **given}
    return config(**given)


def run(cfg: Config) -> dict:
    """Train by ``cfg``'s recipe; returns the metrics."""
    return (network if isinstance(cfg, network.NetworkConfig) else musicnn).train(cfg)
