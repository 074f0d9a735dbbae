"""``python -m train {network,pretrained} --data DIR --out weights/NAME [...]``: one sub-command per recipe, each
with only the flags it reads (``python -m train RECIPE --help``)."""

from __future__ import annotations

import argparse

from genre_model.registry import architecture, architectures

from . import network, pretrained
from .fit import add_flags

RECIPES = {
    "network": (network, network.NetworkConfig, "a network from scratch on random crops (seed-cnn, ffnn, chunk-cnn)"),
    "pretrained": (
        pretrained,
        pretrained.PretrainedConfig,
        "a genre head on a pretrained backbone (musicnn-genre), with room copies and distillation; the defaults are "
        "the committed model's",
    ),
}
Config = network.NetworkConfig | pretrained.PretrainedConfig


def parse_args(argv: list[str] | None = None) -> Config:
    """The command line as its recipe's config: the dataclass defaults, then (network) the architecture's
    registered ``training`` settings, then the flags given."""
    parser = argparse.ArgumentParser(prog="python -m train", description="Train a genre model on GTZAN-layout data.")
    recipes = parser.add_subparsers(dest="recipe", required=True, metavar="RECIPE")
    for name, (_, config, about) in RECIPES.items():
        add_flags(recipes.add_parser(name, help=about, description=about), config)
    given = vars(parser.parse_args(argv))
    recipe = given.pop("recipe")
    module, config, _ = RECIPES[recipe]
    model = given.get("model", config.model)
    if model not in architectures() or architecture(model).recipe != recipe:
        names = [name for name, entry in architectures().items() if entry.recipe == recipe]
        parser.error(f"--model {model} is not trained by the {recipe} recipe: choose one of {', '.join(names)}")
    if module is network:
        given = {**architecture(model).training, **given}
    return config(**given)


def run(cfg: Config) -> dict:
    """Train by ``cfg``'s recipe; returns the metrics."""
    return (network if isinstance(cfg, network.NetworkConfig) else pretrained).train(cfg)
