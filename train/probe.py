"""Train the genre head of `MusicnnGenre` on a frozen, pretrained musicnn backbone (a linear probe).

The backbone's 200-d features are computed once per window; a class-balanced logistic regression is then fitted
on them for each weight decay in a small grid, and the one with the best clip-level balanced accuracy on valid
is kept. Minutes on a CPU instead of hours, and little data cannot overfit a 2 010-parameter head much.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.inference import GenreClassifier
from genre_model.models import WEIGHTS_DIR, MusicnnGenre

from .degrade import SEVERITIES, degrade
from .metrics import balanced_accuracy

BACKBONE = WEIGHTS_DIR / "musicnn-msd" / "model.safetensors"
WEIGHT_DECAYS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2)


def load_backbone(model: MusicnnGenre) -> None:
    if not BACKBONE.exists():
        raise SystemExit(f"error: no musicnn backbone at {BACKBONE}: run `python -m train.convert_musicnn` first.")
    model.backbone.load_state_dict(load_file(BACKBONE), strict=True)


@torch.inference_mode()
def window_features(model: MusicnnGenre, waves: list[Waveform], desc: str) -> tuple[np.ndarray, np.ndarray]:
    """Penultimate features of every inference window of every clip, and each window's clip index."""
    classifier = GenreClassifier(model, model.config.arch, torch.device("cpu"))
    feats, owner = [], []
    for i, wave in enumerate(tqdm(waves, desc=desc, unit="clip", leave=False)):
        windows = torch.from_numpy(classifier._windows(wave.samples, classifier.window_starts(len(wave.samples))))
        feats.append(model.backbone(model.frontend(windows))[1].numpy())
        owner += [i] * len(windows)
    return np.concatenate(feats), np.asarray(owner)


def clip_probabilities(head: nn.Linear, feats: np.ndarray, owner: np.ndarray, n_clips: int) -> np.ndarray:
    """Mean of window softmaxes per clip, as `GenreClassifier` computes it."""
    with torch.no_grad():
        probs = F.softmax(head(torch.from_numpy(feats)), dim=-1).numpy()
    return np.stack([probs[owner == i].mean(axis=0) for i in range(n_clips)])


def fit_logistic(feats: np.ndarray, labels: np.ndarray, weights: np.ndarray, decay: float, seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    head = nn.Linear(feats.shape[1], 10)
    x, y, w = torch.from_numpy(feats), torch.from_numpy(labels), torch.from_numpy(weights).float()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=decay)
    for _ in range(400):
        loss = (F.cross_entropy(head(x), y, reduction="none") * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head


def degraded_copies(waves: list[Waveform], seed: int) -> list[Waveform]:
    """One classroom-degraded copy of each clip, severity drawn per clip (light, moderate or severe)."""
    rng = np.random.default_rng(seed)
    copies = []
    for i, w in enumerate(tqdm(waves, desc="degrading train", unit="clip", leave=False)):
        severity = str(rng.choice(list(SEVERITIES)))
        copies.append(Waveform(degrade(w.samples, w.sample_rate, severity, seed=seed + i), w.sample_rate,
                               w.duration_s, w.analyzed_s))  # fmt: skip
    return copies


def fit_head(model: MusicnnGenre, train: tuple[list[Waveform], list[int]], valid: tuple[list[Waveform], list[int]],
             seed: int, augment: bool = True) -> list[dict]:  # fmt: skip
    """Fit ``model.head`` in place; returns one history row per weight decay tried. With ``augment``, the head
    also sees a degraded copy of every training clip (robustness to classroom microphones)."""
    load_backbone(model)
    model.eval()
    train_waves, y_clip = train[0], np.asarray(train[1])
    if augment:
        train_waves, y_clip = train_waves + degraded_copies(train_waves, seed), np.concatenate([y_clip, y_clip])
    x_train, own_train = window_features(model, train_waves, "features train")
    x_valid, own_valid = window_features(model, valid[0], "features valid")
    y_train = y_clip[own_train]
    # every genre weighs the same, and every clip the same within its genre
    windows_per_clip = np.bincount(own_train)
    clips_per_genre = np.bincount(y_clip, minlength=10)
    weights = 1.0 / (clips_per_genre[y_train] * windows_per_clip[own_train])
    history, best = [], None
    for decay in WEIGHT_DECAYS:
        head = fit_logistic(x_train, y_train, weights, decay, seed)
        probs = clip_probabilities(head, x_valid, own_valid, len(valid[0]))
        pred, truth = probs.argmax(axis=1), np.asarray(valid[1])
        row = {"weight_decay": decay, "valid_accuracy": float((pred == truth).mean()),
               "valid_balanced_accuracy": balanced_accuracy(truth, pred)}  # fmt: skip
        history.append(row)
        tqdm.write(f"weight decay {decay:g}: valid acc {row['valid_accuracy']:.1%}, "
                   f"balanced {row['valid_balanced_accuracy']:.1%}")  # fmt: skip
        if best is None or row["valid_balanced_accuracy"] > best[0]:
            best = (row["valid_balanced_accuracy"], head)
    model.head[1].load_state_dict(best[1].state_dict())
    return history
