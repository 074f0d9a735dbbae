"""Stage two of the musicnn-genre schedule: after the linear probe (`train.probe`) has fitted the genre head on the
frozen backbone, unfreeze the pretrained back end (or mid end + back end) and fine-tune it with the head.

The front end (95% of the compute) stays frozen, so its output is computed once per window and cached; an epoch
then takes seconds on a CPU. Batch norms keep their pretrained statistics (350 clips are too few to re-estimate
them); dropout is on. Each epoch draws a few windows per clip; the epoch with the best clip-level balanced accuracy
on valid is kept.

Under torchrun each process caches the front end of its share of the clips only (that cache is large), trains on
its share with DDP averaging the gradients, and scores its share of valid; the predictions are gathered, so every
process keeps the same epoch.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.distributed import Processes
from genre_model.models import MusicnnGenre

from .metrics import balanced_accuracy, summarize
from .probe import CPU, ONE, clip_features, clip_probabilities, stacked

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


class _Forward(nn.Module):
    """``forward(x)`` = ``step(model, x)``: DDP synchronises the gradients of what runs in its module's forward."""

    def __init__(self, model: MusicnnGenre, step: Callable[[MusicnnGenre, torch.Tensor], torch.Tensor]):
        super().__init__()
        self.model, self.step = model, step

    def forward(self, x: torch.Tensor):
        return self.step(self.model, x)


def trained_forward(model: MusicnnGenre, step: Callable, device: torch.device, procs: Processes) -> nn.Module:
    """``step`` as the module to train: wrapped in DDP under torchrun (gradients averaged over the processes)."""
    net = _Forward(model, step)
    if procs.distributed:
        return DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    return net


def set_trainable(model: MusicnnGenre, layers: tuple[str, ...]) -> list[nn.Parameter]:
    """Freeze ``model`` but the head and the backbone's ``layers``; returns those layers' parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = [p for name in layers for p in getattr(model.backbone, name).parameters()]
    for p in params + list(model.head.parameters()):
        p.requires_grad_(True)
    return params


def finetune(model: MusicnnGenre, train: tuple[list[Waveform], list[int]], valid: tuple[list[Waveform], list[int]],
             n_clean: int, seed: int, cache: Path | None, cfg: FinetuneConfig, device: torch.device = CPU,
             procs: Processes = ONE) -> tuple[list, dict]:  # fmt: skip
    """Fine-tune ``model`` in place (its head already fitted by the probe). ``train`` may hold degraded copies after
    its first ``n_clean`` clips; train scores use the clean ones. Returns per-epoch history and the scores."""
    if cfg.unfreeze not in UNFROZEN:
        raise ValueError(f"unfreeze must be one of {list(UNFROZEN)}, not {cfg.unfreeze!r}")
    if cache:
        cache.mkdir(parents=True, exist_ok=True)
    # this process's share: its clips' front-end windows (the clean ones first, as a share of train's clean prefix)
    fronts = clip_features(model, procs.shard(train[0]), "front end train", cache, front_end_output, device)
    x_train, own_train = stacked(fronts)
    x_valid, own_valid = stacked(clip_features(model, procs.shard(valid[0]), "front end valid", cache,
                                               front_end_output, device))  # fmt: skip
    y_train, y_valid = np.asarray(procs.shard(train[1])), np.asarray(valid[1])
    clip_windows = np.split(np.arange(len(own_train)), np.cumsum(np.bincount(own_train))[:-1])
    n_genres = len(model.config.genres)
    counts = np.bincount(train[1], minlength=n_genres).clip(min=1)  # over all processes' clips
    class_weight = torch.from_numpy(len(train[1]) / (n_genres * counts)).float().to(device)
    pretrained = set_trainable(model, UNFROZEN[cfg.unfreeze])
    net = trained_forward(model, _window_logits, device, procs)
    optimizer = torch.optim.AdamW(
        [{"params": pretrained, "lr": cfg.lr}, {"params": model.head.parameters(), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    rng, genres = np.random.default_rng(seed + procs.rank), model.config.genres
    torch.manual_seed(seed + procs.rank)
    steps = math.ceil(len(train[1]) // procs.world_size / cfg.batch_clips)  # the same on every process

    def valid_probs() -> np.ndarray:  # every process: all of valid, each having scored its share
        mine = _clip_probabilities(model, x_valid, own_valid, len(procs.shard(valid[1])))
        return np.asarray(procs.gather(list(mine)))

    def valid_score() -> float:
        return balanced_accuracy(y_valid, valid_probs().argmax(axis=1))

    best = (valid_score(), 0, copy.deepcopy(model.state_dict()))  # epoch 0: the probe's head as it is
    history = [{"epoch": 0, "valid_balanced_accuracy": best[0]}]
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=f"fine-tune {cfg.unfreeze}", unit="epoch"):
        train_mode_keeping_statistics(model)
        order, losses = rng.permutation(len(y_train)), []
        for b in range(0, steps * cfg.batch_clips, cfg.batch_clips):
            clips = order[b : b + cfg.batch_clips]
            idx = np.concatenate([rng.choice(clip_windows[c], cfg.windows_per_clip) for c in clips])
            target = torch.from_numpy(y_train[own_train[idx]]).to(device)
            loss = F.cross_entropy(net(x_train[idx]), target, weight=class_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        train_loss = procs.mean(torch.tensor([sum(losses), len(losses)], dtype=torch.float64))
        score = valid_score()
        history.append({"epoch": epoch, "train_loss": train_loss, "valid_balanced_accuracy": score})
        tqdm.write(f"epoch {epoch}: loss {train_loss:.3f}, valid balanced {score:.1%}")
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
    n_mine = len(procs.shard(range(n_clean)))  # this share's clean clips come first
    clean = own_train < n_mine
    train_pred = procs.gather(list(_clip_probabilities(model, x_train[clean], own_train[clean], n_mine).argmax(1)))
    probs = valid_probs()
    history.append({"finetune": asdict(cfg), "best_epoch": best[1]})
    return history, {
        "train": summarize(train[1][:n_clean], [int(p) for p in train_pred], genres),
        "valid": summarize(y_valid.tolist(), probs.argmax(axis=1).tolist(), genres),
        "valid_probs": probs,
    }
