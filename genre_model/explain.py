"""Why did the model say that? A time-frequency relevance map on the model's own log-mel grid, the windows
that pushed hardest towards a genre, and a plain-language confidence note.

Method: gradient x (input - silence), i.e. the first-order estimate of how much the evidence for the chosen genre
would drop if that time-frequency bin were silenced. The evidence is the genre's log-odds, log p / (1 - p) (its
logit against the others'), not p, whose gradient vanishes in the windows the model is surest of. It is one
backward pass (cheap enough for a live demo, unlike occlusion, which needs a forward pass per patch), works for
every architecture here (Grad-CAM would need a per-model layer choice), and it is not an energy map: a loud bin
the model ignores gets zero gradient.
Only positive evidence is kept; the map is smoothed over 3x3 bins and scaled to [0, 1] by its 99th percentile.
Each model computes its gradient (`GenreNet.probabilities_with_gradient`); musicnn's comes from the same int8
forward pass the prediction uses and a sparse backward pass through its front end (`MusicnnBackbone.input_gradient`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .audio import AudioInput, Waveform
from .inference import GenreClassifier, Prediction

CLOSE_CALL = 0.15  # top-two probability gap under which we say the decision is close
_BATCH = 16  # windows per forward pass: bounds the memory the backward pass holds for long clips


@dataclass
class Explanation:
    genre: str  # the genre explained
    relevance: np.ndarray  # (n_mels, frames) in [0, 1], aligned with prediction.logmel
    top_segments: list[tuple[float, float, float]]  # (start_s, end_s, probability of genre), strongest first
    note: str  # plain-language confidence statement
    prediction: Prediction


def normalized_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of each row of probabilities over log(number of genres): 0 = certain, 1 = uniform."""
    probs = np.asarray(probs)
    return -(probs * np.log(probs + 1e-12)).sum(axis=-1) / np.log(probs.shape[-1])


def calibrate_entropy_threshold(probs: np.ndarray) -> float:
    """The threshold the confidence note uses: the 95th percentile of normalized entropy over (valid) clips."""
    return round(float(np.percentile(normalized_entropy(probs), 95)), 4)


def verdict(probabilities: dict[str, float], entropy_threshold: float | None) -> tuple[str, str, bool]:
    """What to tell a student: a headline (the genre, or "Not sure: a or b?"), the reason in one plain sentence,
    and whether the model is sure. Unsure when the probabilities are spread more than on 95% of the valid clips
    (``entropy_threshold``) or the top two are within `CLOSE_CALL`."""
    (g1, p1), (g2, p2) = sorted(probabilities.items(), key=lambda kv: -kv[1])[:2]
    entropy = float(normalized_entropy(list(probabilities.values())))
    if entropy_threshold is not None and entropy > entropy_threshold:
        return (f"Not sure: {g1} or {g2}?", "This sounds unlike most of the music the model learned from, so its "
                f"answer is a guess ({g1} {p1:.0%}, {g2} {p2:.0%}).", False)  # fmt: skip
    if p1 - p2 < CLOSE_CALL:
        return f"Not sure: {g1} or {g2}?", f"It sounds a bit like both: {g1} {p1:.0%}, {g2} {p2:.0%}.", False
    return g1, f"{g1.capitalize()} is well ahead: {p1:.0%}, next is {g2} with {p2:.0%}.", True


def confidence_note(p: Prediction, entropy_threshold: float | None) -> str:
    headline, reason, sure = verdict(p.probabilities, entropy_threshold)
    return f"Confident. {reason}" if sure else f"{headline} {reason}"


def explain(classifier: GenreClassifier, audio: AudioInput | Waveform, genre: str | None = None) -> Explanation:
    """Relevance of every log-mel bin for ``genre`` (default: the predicted one). One forward pass serves both
    the prediction and the gradients, so the explanation costs one backward pass more than `predict`."""
    t0 = time.perf_counter()
    if genre is not None and genre not in classifier.genres:
        raise ValueError(f"Unknown genre '{genre}': choose one of {', '.join(classifier.genres)}.")
    wave = classifier.load(audio)
    starts = classifier.window_starts(len(wave.samples))
    windows = torch.from_numpy(classifier.cut_windows(wave.samples, starts)).to(classifier.device)
    model = classifier.model
    logmels, probs, gradients = [], [], []
    for batch in windows.split(_BATCH):
        with torch.no_grad():
            logmels.append(model.frontend(batch))  # (windows, mels, frames)
        batch_probs, gradient = model.probabilities_with_gradient(logmels[-1])
        probs.append(batch_probs)
        gradients.append(gradient)
    probs, logmel = torch.cat(probs), torch.cat(logmels)  # (windows, genres), (windows, mels, frames)
    elapsed_ms = (time.perf_counter() - t0) * 1000
    prediction = classifier.to_prediction(wave, starts, probs.cpu().numpy(), logmel.cpu().numpy(), elapsed_ms)
    genre = genre or prediction.genre
    target = classifier.genres.index(genre)
    grad = torch.cat([gradient(target) for gradient in gradients])
    floor = logmel.amin(dim=(1, 2), keepdim=True)  # silence, in this front end's units
    relevance = (grad * (logmel - floor)).clamp_min(0)
    relevance = F.avg_pool2d(relevance[:, None], 3, stride=1, padding=1)[:, 0].cpu().numpy()
    grid, _ = classifier.stitch(relevance, starts)
    scale = np.percentile(grid[grid > 0], 99) if (grid > 0).any() else 1.0
    grid = np.clip(grid / scale, 0, 1)  # a few extreme bins must not wash out the rest of the map
    sr, win, n = classifier.sample_rate, model.config.window_samples, len(wave.samples)
    ranked = sorted(zip(starts, probs[:, target].cpu().numpy()), key=lambda sp: -sp[1])[:3]
    top = [(s / sr, min(s + win, n) / sr, float(p)) for s, p in ranked]
    note = confidence_note(prediction, getattr(model.config, "entropy_threshold", None))
    return Explanation(genre, grid.astype(np.float32), top, note, prediction)
