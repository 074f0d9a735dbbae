"""Stage two of the musicnn-genre schedule: after the linear probe (`train.probe`) has fitted the genre head on the
frozen backbone, unfreeze the pretrained back end (or mid end + back end) and fine-tune it with the head.

The front end (95% of the compute) stays frozen, so its output is computed once per window and cached; an epoch
then takes seconds on a CPU. Batch norms keep their pretrained statistics (350 clips are too few to re-estimate
them); dropout is on. Each epoch draws a few windows per clip; the epoch with the best clip-level balanced accuracy
on valid is kept.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.models import MusicnnGenre

from .metrics import balanced_accuracy, summarize
from .probe import CPU, clip_probabilities, window_features

UNFROZEN = {"backend": ("pool_bn", "dense", "dense_bn"), "midend": ("midend", "pool_bn", "dense", "dense_bn")}


@dataclass
class FinetuneConfig:
    unfreeze: str = "backend"  # which pretrained layers train with the head (see UNFROZEN)
    epochs: int = 20
    windows_per_clip: int = 4  # drawn per training clip per epoch
    batch_clips: int = 16
    lr: float = 1e-4  # for the unfrozen pretrained layers
    head_lr: float = 1e-3
    weight_decay: float = 1e-2
    patience: int = 5


def train_mode_keeping_statistics(model: nn.Module) -> None:
    model.eval()  # batch norms keep their pretrained statistics (too few clips to re-estimate them)...
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()  # ...dropout is on


def front_end_output(model: MusicnnGenre, windows: torch.Tensor) -> np.ndarray:
    """(windows, samples) -> the frozen front end's output (windows, 561, frames), float16 to halve the cache."""
    return model.backbone.front_end(model.to_logmel(windows)).half().cpu().numpy()


def _window_logits(model: MusicnnGenre, front: np.ndarray) -> torch.Tensor:
    return model.classify_front_end(torch.from_numpy(front).to(model.head[1].weight.device).float())


def _clip_probabilities(model: MusicnnGenre, front: np.ndarray, owner: np.ndarray, n_clips: int) -> np.ndarray:
    model.eval()
    return clip_probabilities(partial(_window_logits, model), front, owner, n_clips)


def set_trainable(model: MusicnnGenre, layers: tuple[str, ...]) -> list[nn.Parameter]:
    """Freeze ``model`` but the head and the backbone's ``layers``; returns those layers' parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for name in layers for p in getattr(model.backbone, name).parameters()]
    for p in params + list(model.head.parameters()):
        p.requires_grad_(True)
    return params


def finetune(model: MusicnnGenre, train: tuple[list[Waveform], list[int]], valid: tuple[list[Waveform], list[int]],
             n_clean: int, seed: int, cache: Path | None, cfg: FinetuneConfig,
             device: torch.device = CPU) -> tuple[list, dict]:  # fmt: skip
    """Fine-tune ``model`` in place (its head already fitted by the probe). ``train`` may hold degraded copies after
    its first ``n_clean`` clips; train scores use the clean ones. Returns per-epoch history and the scores."""
    if cfg.unfreeze not in UNFROZEN:
        raise ValueError(f"unfreeze must be one of {list(UNFROZEN)}, not {cfg.unfreeze!r}")
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    x_train, own_train = window_features(model, train[0], "front end train", cache, front_end_output, device)
    x_valid, own_valid = window_features(model, valid[0], "front end valid", cache, front_end_output, device)
    y_train, y_valid = np.asarray(train[1]), np.asarray(valid[1])
    clip_windows = np.split(np.arange(len(own_train)), np.cumsum(np.bincount(own_train))[:-1])
    n_genres = len(model.config.genres)
    counts = np.bincount(y_train, minlength=n_genres).clip(min=1)
    class_weight = torch.from_numpy(len(y_train) / (n_genres * counts)).float().to(device)
    pretrained = set_trainable(model, UNFROZEN[cfg.unfreeze])
    optimizer = torch.optim.AdamW(
        [{"params": pretrained, "lr": cfg.lr}, {"params": model.head.parameters(), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    rng, genres = np.random.default_rng(seed), model.config.genres
    torch.manual_seed(seed)

    def valid_score() -> float:
        pred = _clip_probabilities(model, x_valid, own_valid, len(y_valid)).argmax(axis=1)
        return balanced_accuracy(y_valid, pred)

    best = (valid_score(), 0, copy.deepcopy(model.state_dict()))  # epoch 0: the probe's head as it is
    history = [{"epoch": 0, "valid_balanced_accuracy": best[0]}]
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=f"fine-tune {cfg.unfreeze}", unit="epoch"):
        train_mode_keeping_statistics(model)
        order, losses = rng.permutation(len(y_train)), []
        for b in range(0, len(order), cfg.batch_clips):
            clips = order[b : b + cfg.batch_clips]
            idx = np.concatenate([rng.choice(clip_windows[c], cfg.windows_per_clip) for c in clips])
            target = torch.from_numpy(y_train[own_train[idx]]).to(device)
            loss = F.cross_entropy(_window_logits(model, x_train[idx]), target, weight=class_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        score = valid_score()
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "valid_balanced_accuracy": score})
        tqdm.write(f"epoch {epoch}: loss {np.mean(losses):.3f}, valid balanced {score:.1%}")
        if score > best[0]:
            best = (score, epoch, copy.deepcopy(model.state_dict()))
        elif epoch - best[1] >= cfg.patience:
            break
    model.load_state_dict(best[2])
    if best[1] > 0:  # the pretrained tag head now reads fine-tuned features: its tags would mislead
        model.config.pretrained_tags = False
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    clean = own_train < n_clean
    train_pred = _clip_probabilities(model, x_train[clean], own_train[clean], n_clean).argmax(axis=1)
    valid_probs = _clip_probabilities(model, x_valid, own_valid, len(y_valid))
    history.append({"finetune": asdict(cfg), "best_epoch": best[1]})
    return history, {
        "train": summarize(y_train[:n_clean].tolist(), train_pred.tolist(), genres),
        "valid": summarize(y_valid.tolist(), valid_probs.argmax(axis=1).tolist(), genres),
        "valid_probs": valid_probs,
    }
