"""The app's models: the one it shows (or the committed clean and room pair, routed by the sound's source), those
Compare sets beside it, and the two steps every view shares (decode the clip, classify it) with errors in words."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from genre_model.audio import AudioError, Waveform
from genre_model.card import refit_on_valid
from genre_model.inference import GenreClassifier, Prediction
from genre_model.loading import ModelNotFoundError, resolve_model_name
from genre_model.registry import architecture, architectures
from genre_model.routing import CLEAN_MODEL, ROOM_MODEL, RoomDetector, Router, check_source

log = logging.getLogger("genre-app")


class ClipProblem(Exception):
    """Something the person using the app should read (never a stack trace)."""


@dataclass
class Compared:
    """A model in the Compare view: what it is for, and how often it is right where its weights never trained."""

    classifier: GenreClassifier
    role: str
    accuracy: float | None  # balanced
    measured_on: str


@dataclass
class AppModels:
    main: GenreClassifier  # the clean model when routed
    compare: list[Compared]  # the main model first
    router: Router | None = None  # the committed pair (no --model): the sound's source picks the model

    @property
    def answering(self) -> GenreClassifier | Router:
        return self.router or self.main

    def answered(self, prediction: Prediction) -> GenreClassifier:
        """The model that made ``prediction``: its confidence rule judges it."""
        return self.router.answered(prediction) if self.router else self.main


def measured_accuracy(model: str | None) -> tuple[float | None, str]:
    """The model's valid balanced accuracy from the ``metrics.json`` beside its weights, and on what: weights refit
    on train + valid were scored before valid joined training."""
    metrics = Path(resolve_model_name(model)) / "metrics.json"
    if not metrics.is_file():
        return None, "not measured"
    saved = json.loads(metrics.read_text())
    refit = refit_on_valid(saved)
    where = "valid clips, by its recipe before they joined training" if refit else "valid clips it never trained on"
    return saved["valid"]["balanced_accuracy"], where


def load_models(model: str | None, device: str | None) -> AppModels:
    """The app's model (without ``model``: the committed clean and room pair and the detector between them), and for
    Compare every registered architecture whose weights are committed."""
    main = GenreClassifier.from_pretrained(model, device)
    compare = []
    others = [name for name in architectures() if Path(resolve_model_name(name)).name != main.name]
    pair = () if model is not None else ((ROOM_MODEL, "the room model, for microphones"),)
    first = "this app's model" if model is not None else "the clean model, for files"
    for name, role in ((model, first), *pair, *((n, None) for n in others)):
        try:
            classifier = main if name == model else GenreClassifier.from_pretrained(name, device)
        except ModelNotFoundError:
            log.warning("comparison model %s is not available; the Compare view will skip it", name)
            continue
        role = role or architecture(classifier.model.config.arch).display
        compare.append(Compared(classifier, role, *measured_accuracy(name)))
    room = next((c.classifier for c in compare if c.classifier.name == ROOM_MODEL), None)
    if model is not None or room is None:  # one model answers everything
        return AppModels(main, compare)
    return AppModels(main, compare, Router(main, room, RoomDetector.load(resolve_model_name(CLEAN_MODEL))))


def load_clip(classifier: GenreClassifier, audio) -> Waveform:
    """The clip decoded for ``classifier``, or a `ClipProblem` that says what is wrong with it."""
    if audio is None:
        raise ClipProblem("No clip yet: upload a file, record one or pick an example.")
    try:
        return classifier.load(audio)
    except AudioError as err:  # the user's input, not our bug: one log line, no traceback
        log.info("rejected input: %s", err)
        raise ClipProblem(err.message) from None


def classify_clip(
    model: GenreClassifier | Router, wave: Waveform, with_features: bool = False, source: str = "auto"
) -> Prediction:
    """``model``'s prediction (a router's: by the sound's ``source``), or a `ClipProblem` for the user."""
    if isinstance(model, Router):
        try:
            check_source(source)
        except ValueError as wrong:
            raise ClipProblem(f"{wrong}.") from None
    try:
        if isinstance(model, Router):
            return model.predict(wave, source, with_features)
        return model.predict(wave, with_features=with_features)
    except Exception:  # noqa: BLE001 - keep serving; the log gets the details, the user a plain message
        log.exception("prediction failed")
        raise ClipProblem("Something went wrong while analyzing this clip. Try another file.") from None
