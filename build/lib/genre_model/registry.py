"""One registry of architectures. Each declares, in one place beside its class (`register`), what the rest of the
project needs to know: its display name, training defaults and model-card text. The app, the bench, the report,
``python -m train`` and the model card read it from here, so a new architecture is one class and one ``@register``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .base import GenreNet


@dataclass(frozen=True)
class Architecture:
    name: str  # the config's ``arch``, the ``--model`` of ``python -m train``
    cls: type[GenreNet]
    display: str  # who it is, for people: "the paper's CNN" (the app's Compare titles)
    # How ``python -m train`` fits it: "network" (the whole network on random crops, train/fit.py, with
    # ``training`` as flag defaults) or "probe" (a head on a pretrained backbone, train/probe.py and after).
    recipe: str = "network"
    training: dict = field(default_factory=dict)
    card: str = ""  # how it is trained and anything a user must know (markdown; Jinja with the card's variables)
    paper: str | None = None  # the published train / test accuracy it reproduces, if any


ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, display: str, **details):
    """Class decorator: add the class to `ARCHITECTURES` under ``name`` (see `Architecture` for ``details``)."""

    def add(cls: type[GenreNet]) -> type[GenreNet]:
        ARCHITECTURES[name] = Architecture(name, cls, display, **details)
        return cls

    return add


def architectures() -> dict[str, Architecture]:
    """Every registered architecture: the built-in ones (registered when `genre_model.models` is imported) and any
    registered since."""
    from . import models  # noqa: F401

    return ARCHITECTURES


def architecture(name: str) -> Architecture:
    if name not in architectures():
        raise ValueError(f"Unknown architecture '{name}': choose one of {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def build_model(arch: str, **overrides) -> GenreNet:
    """A freshly initialised model of ``arch`` (for training), its default config updated by ``overrides``."""
    cls = architecture(arch).cls
    return cls(replace(cls.default_config(), **overrides))
