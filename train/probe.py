"""Train the genre head of `MusicnnGenre` on a frozen, pretrained musicnn backbone (a linear probe).

The backbone's 200-d features are computed once per window; a class-balanced logistic regression is then fitted
on them for each weight decay in a small grid, and the one with the best clip-level balanced accuracy on valid
is kept. Minutes on a CPU instead of hours, and little data cannot overfit a 2 010-parameter head much.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.distributed import Processes
from genre_model.inference import GenreClassifier
from genre_model.models import MusicnnGenre

from .metrics import balanced_accuracy, summarize
from .rooms import play_in_room

WEIGHT_DECAYS = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1)
CPU = torch.device("cpu")
ONE = Processes()  # a world of one: the default everywhere below


def say(procs: Processes, text: str) -> None:
    """A progress line, from rank 0 only: one set of messages under torchrun."""
    if procs.is_main:
        tqdm.write(text)


def load_backbone(model: MusicnnGenre) -> None:
    """The pretrained weights into ``model.backbone``, from its architecture's folder (``PRETRAINED``)."""
    weights = model.PRETRAINED / "model.safetensors"
    if not weights.exists():
        raise SystemExit(
            f"error: no pretrained backbone at {weights}: convert it first (python -m train.convert_musicnn)."
        )
    model.backbone.load_pretrained(load_file(weights))


def penultimate(model: MusicnnGenre, windows: torch.Tensor) -> np.ndarray:
    """(windows, samples) -> the backbone's 200-d features (windows, 200): what the genre head reads."""
    return model.backbone(model.to_logmel(windows))[1].float().cpu().numpy()


@torch.inference_mode()
def clip_features(
    model: MusicnnGenre,
    waves: list[Waveform],
    desc: str,
    cache: Path | None = None,
    device: torch.device = CPU,
    show: bool = True,
) -> list[np.ndarray]:
    """`penultimate` of every inference window of each clip (run on ``device``): one array per clip. With
    ``cache``, results are stored per clip keyed by the audio's content, so reruns skip the backbone."""
    classifier = GenreClassifier(model, model.config.arch, device)
    backbone = model.backbone  # int8 or float, and the int8 ranges, change the features: part of the key
    ranges = torch.cat([backbone.input_range] + [b.peak_range for b in backbone.frontend]).cpu()
    mode = ranges * (backbone.int8 is not None and device.type == "cpu")
    feats = []
    for wave in tqdm(waves, desc=desc, unit="clip", leave=False, disable=not show):
        key = hashlib.sha1(wave.samples.tobytes() + mode.numpy().tobytes()).hexdigest()
        file = cache / f"{key}.npy" if cache else None
        if file and file.exists():
            feats.append(np.load(file))
            continue
        feats.append(penultimate(model, torch.from_numpy(classifier.all_windows(wave.samples)).to(device)))
        if file:
            np.save(file, feats[-1])
    return feats


def stacked(per_clip: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-clip window arrays -> all windows concatenated, and each window's clip index."""
    return np.concatenate(per_clip), np.repeat(np.arange(len(per_clip)), [len(f) for f in per_clip])


def window_features(
    model: MusicnnGenre,
    waves: list[Waveform],
    desc: str,
    cache: Path | None = None,
    device: torch.device = CPU,
    procs: Processes = ONE,
) -> tuple[np.ndarray, np.ndarray]:
    """`clip_features` (the backbone's 200-d features) of all ``waves`` on every process, stacked; each process
    computes its share of the clips and the shares are gathered in order."""
    return stacked(procs.gather(clip_features(model, procs.shard(waves), desc, cache, device, procs.is_main)))


@torch.inference_mode()
def calibrate_int8_on_clips(
    model: MusicnnGenre, waves: list[Waveform], device: torch.device = CPU, every: int = 5, procs: Processes = ONE
) -> None:
    """The backbone's int8 ranges from every ``every``-th window of each training clip (degraded copies included,
    so microphone input stays in range; each process observes its share, the extremes are combined), then the int8
    front end switched on when training on a CPU: everything after this (features, scores, the app) sees what CPU
    inference will."""
    classifier = GenreClassifier(model, model.config.arch, device)
    windows = [torch.from_numpy(classifier.all_windows(w.samples)[::every]).to(device) for w in procs.shard(waves)]
    observed = model.backbone.observed_ranges(torch.cat([model.to_logmel(w) for w in windows]))
    model.backbone.set_int8_ranges(procs.extremes(observed))
    model.backbone.use_int8(device.type == "cpu")


@torch.no_grad()
def clip_probabilities(
    logits: Callable[[np.ndarray], torch.Tensor], feats: np.ndarray, owner: np.ndarray, n_clips: int
) -> np.ndarray:
    """Mean of window softmaxes per clip, as `GenreClassifier` computes it; ``logits`` scores a block of windows'
    features (256 at a time, to bound memory)."""
    probs = torch.cat([F.softmax(logits(feats[i : i + 256]), dim=-1).cpu() for i in range(0, len(feats), 256)]).numpy()
    return np.stack([probs[owner == i].mean(axis=0) for i in range(n_clips)])


def _linear(head: nn.Linear) -> Callable[[np.ndarray], torch.Tensor]:
    return lambda feats: head(torch.from_numpy(feats))


def fit_logistic(
    feats: np.ndarray, labels: np.ndarray, weights: np.ndarray, decay: float, seed: int, n_genres: int
) -> nn.Linear:
    torch.manual_seed(seed)
    head = nn.Linear(feats.shape[1], n_genres)
    x, y, w = torch.from_numpy(feats), torch.from_numpy(labels), torch.from_numpy(weights).float()
    optimizer = torch.optim.Adam(head.parameters(), lr=1e-2, weight_decay=decay)
    for _ in range(400):
        loss = (F.cross_entropy(head(x), y, reduction="none") * w).sum() / w.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return head


def _played(job: tuple[Waveform, int, int, float]) -> Waveform:
    wave, seed, bank, same_kind = job
    samples = play_in_room(wave.samples, wave.sample_rate, seed, bank=bank, same_kind=same_kind)
    return Waveform(samples, wave.sample_rate, wave.duration_s, wave.analyzed_s)


def room_copies(
    waves: list[Waveform],
    seed: int,
    bank: int = 0,
    procs: Processes = ONE,
    same_kind: float = 0.0,
    workers: int | None = None,
) -> list[Waveform]:
    """One copy of each clip through a random simulated room (`train.rooms`, rooms from ``bank``, devices of
    one kind with probability ``same_kind``; clip i gets seed + i, so the copies are the same however the work is
    shared). Each process plays its share of the clips on ``workers`` worker processes (default: its share of the
    machine's cores); every process gets all copies."""
    jobs = [(w, seed + i, bank, same_kind) for i, w in procs.shard(list(enumerate(waves)))]
    workers = workers or max(1, (os.cpu_count() or 1) // procs.world_size)
    bar = {"desc": "room copies", "unit": "clip", "leave": False, "disable": not procs.is_main, "total": len(jobs)}
    if workers == 1 or len(jobs) < 2:
        return procs.gather(list(tqdm(map(_played, jobs), **bar)))
    # spawned, not forked: a fork of a process whose torch threads have started can hang
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return procs.gather(list(tqdm(pool.map(_played, jobs, chunksize=2), **bar)))


def balanced_weights(labels: np.ndarray, owner: np.ndarray) -> np.ndarray:
    """Per-window weights: every genre weighs the same, and every clip the same within its genre."""
    clip_labels = np.array([labels[owner == i][0] for i in range(owner.max() + 1)])
    return 1.0 / (np.bincount(clip_labels)[labels] * np.bincount(owner)[owner])


def fit_head(
    model: MusicnnGenre,
    train: tuple[list[Waveform], list[int]],
    valid: tuple[list[Waveform], list[int]],
    n_clean: int,
    seed: int,
    refit: bool = False,
    cache: Path | None = None,
    device: torch.device = CPU,
    procs: Processes = ONE,
    decays: tuple[float, ...] = WEIGHT_DECAYS,
) -> tuple[list, dict]:
    """Fit ``model.head`` in place, one head per weight decay in ``decays``, keeping the best on valid; returns one
    history row per decay, then one naming the chosen decay, and the scores (train, valid, valid probabilities) of the
    chosen head, computed from the features exactly as `GenreClassifier` would.
    ``train`` may hold degraded copies (`room_copies`) after its first ``n_clean`` clips; train is scored on
    the clean ones. With ``refit``, the chosen setting is then refitted on train + valid (more data for the final
    model; the returned valid scores are from before the refit, so they stay honest)."""
    model.eval()
    calibrate_int8_on_clips(model, train[0], device, procs=procs)
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    train_waves, y_clip = train[0], np.asarray(train[1])
    x_train, own_train = window_features(model, train_waves, "features train", cache, device, procs)
    x_valid, own_valid = window_features(model, valid[0], "features valid", cache, device, procs)
    y_train, y_valid_clip = y_clip[own_train], np.asarray(valid[1])
    weights = balanced_weights(y_train, own_train)
    history, best = [], None
    for decay in decays:
        head = fit_logistic(x_train, y_train, weights, decay, seed, len(model.config.genres))
        pred = clip_probabilities(_linear(head), x_valid, own_valid, len(valid[0])).argmax(axis=1)
        row = {
            "weight_decay": decay,
            "valid_accuracy": float((pred == y_valid_clip).mean()),
            "valid_balanced_accuracy": balanced_accuracy(y_valid_clip, pred),
        }
        history.append(row)
        say(
            procs,
            f"weight decay {decay:g}: valid acc {row['valid_accuracy']:.1%}, "
            f"balanced {row['valid_balanced_accuracy']:.1%}",
        )
        if best is None or row["valid_balanced_accuracy"] > best[0]:
            best = (row["valid_balanced_accuracy"], head, decay, pred)
    _, head, decay, pred = best
    history.append({"chosen_weight_decay": decay})
    genres = model.config.genres
    train_pred = clip_probabilities(_linear(head), x_train, own_train, own_train.max() + 1).argmax(axis=1)
    scores = {
        "train": summarize(y_clip[:n_clean].tolist(), train_pred[:n_clean].tolist(), genres),
        "valid": summarize(y_valid_clip.tolist(), pred.tolist(), genres),
    }
    if refit:
        x_all = np.concatenate([x_train, x_valid])
        own_all = np.concatenate([own_train, own_valid + own_train.max() + 1])
        y_all = np.concatenate([y_train, y_valid_clip[own_valid]])
        head = fit_logistic(x_all, y_all, balanced_weights(y_all, own_all), decay, seed, len(model.config.genres))
        history.append({"refit_on": "train+valid", "weight_decay": decay})
    head.load_state_dict(procs.broadcast(head.state_dict()))  # every process: rank 0's head, to the last bit
    model.head[1].load_state_dict(head.state_dict())
    scores["valid_probs"] = clip_probabilities(_linear(head), x_valid, own_valid, len(valid[0]))
    if refit:
        pred = scores["valid_probs"].argmax(axis=1).tolist()
        scores["valid_after_refit_not_held_out"] = summarize(y_valid_clip.tolist(), pred, genres)
    return history, scores
