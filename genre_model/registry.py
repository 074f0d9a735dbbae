"""One registry of architectures: a plain table that the model modules fill. Each architecture declares, in one place
beside its class (`register`), what the rest of the project needs to know: its display name, training defaults and
model-card text. The app, the bench, the report, ``python -m train`` and the model card read it from here, so a new
architecture is one class and one ``@register``.

This module imports no model: the built-in ones are registered by `genre_model.models`, which importing the package
(``genre_model/__init__.py``) does, so they are here before any lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Architecture:
    name: str  # the config's ``arch``, the ``--model`` of ``python -m train``
    cls: type[nn.Module]  # its `genre_model.base.GenreNet` subclass
    display: str  # who it is, for people: "the paper's CNN" (the app's Compare titles)
    # How ``python -m train`` fits it: "network" (the whole network on random crops) with ``training`` as flag
    # defaults, or "pretrained" (a head on a pretrained backbone, `python -m train pretrained`).
    recipe: str = "network"
    training: dict = field(default_factory=dict)
    # What it is, for its model card (static markdown); how a model was trained is the training's own summary.
    card: str = ""
    paper: str | None = None  # the published train / test accuracy it reproduces, if any


ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, display: str, **details) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: add the class to `ARCHITECTURES` under ``name`` (see `Architecture` for ``details``)."""

    def add(cls: type[nn.Module]) -> type[nn.Module]:
        ARCHITECTURES[name] = Architecture(name, cls, display, **details)
        return cls

    return add


def architectures() -> dict[str, Architecture]:
    """Every registered architecture: the built-in ones and any registered since."""
    return ARCHITECTURES


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture '{name}': choose one of {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def build_model(arch: str, **overrides) -> nn.Module:
    """A freshly initialised model of ``arch`` (for training), its default config updated by ``overrides``."""
    cls = architecture(arch).cls
    return cls(replace(cls.default_config(), **overrides))
