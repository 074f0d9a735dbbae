"""Why did the model say that? In words: the few regions (time segment x band) whose muting costs the genre most,
and a sentence on the costliest (`genre_model.occlusion`: faithful by construction). For the curious, a map: evidence
over the model's own log-mel grid, for and against a genre. And the model's verdict (`genre_model.confidence`).

Method: gradient x (input - silence), i.e. the first-order estimate of how much a logit difference would drop if that
time-frequency bin were silenced. By default the difference is "why A and not B": the explained genre's logit against
the runner-up's (or, with `OTHERS`, against the other genres weighted by their probability: its log-odds). A logit
difference, unlike a probability, keeps its gradient where the model is already sure. Evidence is signed (for and
against) and shown on one scale per clip, the strongest evidence of the predicted genre against its runner-up: a
genre the model gives 1% shows little for and much against, instead of being stretched to fill the colour range.
One backward pass per map (occlusion's regions are coarse by design: a forward pass each); it works for every
architecture here, and it is not an energy map: a loud bin the model ignores gets zero gradient.
Each model computes its gradient (`GenreNet.probabilities_with_gradient`); musicnn's comes from the same int8
forward pass the prediction uses and a sparse backward pass through its front end (`MusicnnBackbone.input_gradient`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from .audio import AudioInput, Waveform
from .inference import GenreClassifier, Prediction
from .occlusion import Region, occlude, sentence

_BATCH = 16  # windows per forward pass: bounds the memory the backward pass holds for long clips


OTHERS = "the other genres"  # ``versus`` for "why this genre rather than any other" (its log-odds)


@dataclass
class Explanation:
    genre: str  # the genre explained
    versus: str  # against which: a genre, or OTHERS
    evidence: np.ndarray  # (n_mels, frames), aligned with prediction.logmel: + for ``genre``, - for ``versus``
    scale: float  # the clip's evidence scale (see the module docstring): colour the map from -scale to +scale
    regions: list[Region]  # time segment x band, muted one at a time: the costliest for ``genre`` first
    summary: str  # what made it ``genre`` rather than ``versus``, in one sentence (`occlusion.sentence`)
    note: str  # the model's verdict in words, and its reason
    prediction: Prediction
    window_evidence: np.ndarray = field(repr=False)  # (windows, n_mels, frames): ``evidence`` before stitching
    window_logmels: np.ndarray = field(repr=False)  # (windows, n_mels, frames): what the network saw


def explain(
    classifier: GenreClassifier, audio: AudioInput | Waveform, genre: str | None = None, versus: str | None = None
) -> Explanation:
    """Evidence in every log-mel bin for ``genre`` (default: the predicted one) against ``versus`` (default: the
    runner-up, or the predicted genre when another is explained; `OTHERS`: all others). One forward pass serves the
    prediction and the gradients: one backward pass more than `predict`, two when the clip's scale needs its own."""
    t0 = time.perf_counter()
    genres = classifier.genres
    for name in (genre, versus):
        if name is not None and name not in genres and name != OTHERS:
            raise ValueError(f"Unknown genre '{name}': choose one of {', '.join(genres)}.")
    wave = classifier.load(audio)
    starts = classifier.window_starts(len(wave.samples))
    windows = torch.from_numpy(classifier.cut_windows(wave.samples, starts)).to(classifier.device)
    model = classifier.model
    logmels, probs, gradients = [], [], []
    for batch in windows.split(_BATCH):
        with torch.no_grad():
            logmels.append(model.to_logmel(batch))  # (windows, mels, frames)
        batch_probs, gradient = model.probabilities_with_gradient(logmels[-1])
        probs.append(batch_probs)
        gradients.append(gradient)
    probs, logmel = torch.cat(probs), torch.cat(logmels)  # (windows, genres), (windows, mels, frames)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    prediction = classifier.to_prediction(wave, starts, probs.cpu().numpy(), logmel.cpu().numpy(), elapsed_ms)
    ranked = [g for g, _ in prediction.top(2)]
    genre = genre or ranked[0]
    versus = versus or (ranked[1] if genre == ranked[0] else ranked[0])
    floor = logmel.amin(dim=(1, 2), keepdim=True)  # silence, in this front end's units

    def evidence_of(a: str, b: str) -> torch.Tensor:
        """(windows, mels, frames): gradient x (input - silence) of logit a - logit b, smoothed over 3x3 bins."""
        weights = F.one_hot(torch.tensor(genres.index(a)), len(genres)).float().to(probs.device).expand_as(probs)
        if b == OTHERS:  # the log-odds' gradient: the others weighted by their share of the rest
            weights = weights - probs * (1 - weights) / (1 - probs[:, genres.index(a) : genres.index(a) + 1])
        else:
            weights = weights - F.one_hot(torch.tensor(genres.index(b)), len(genres)).float().to(probs.device)
        rows = [len(g) for g in logmels]
        grad = torch.cat([gradient(w) for gradient, w in zip(gradients, weights.split(rows))])
        return F.avg_pool2d((grad * (logmel - floor))[:, None], 3, stride=1, padding=1)[:, 0]

    evidence = evidence_of(genre, versus)
    default = evidence if (genre, versus) == (ranked[0], ranked[1]) else evidence_of(ranked[0], ranked[1])
    scale = float(torch.quantile(default.abs().flatten()[:: max(1, default.numel() // 100_000)], 0.99)) or 1.0
    grid, _ = classifier.stitch(evidence.cpu().numpy(), starts)
    sr, target = classifier.sample_rate, genres.index(genre)
    against = [i for i in range(len(genres)) if i != target] if versus == OTHERS else [genres.index(versus)]
    regions = occlude(model, logmel, probs, [s / sr for s in starts], len(wave.samples) / sr, target, against)
    clip = prediction.probabilities
    summary = sentence(regions, genre, versus, clip[genre], sum(clip[genres[i]] for i in against))
    note = classifier.verdict(prediction.probabilities).sentence
    return Explanation(
        genre,
        versus,
        grid.astype(np.float32),
        scale,
        regions,
        summary,
        note,
        prediction,
        evidence.cpu().numpy(),
        logmel.cpu().numpy(),
    )
