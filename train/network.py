"""The network recipe: train a whole network on random crops (seed-cnn, ffnn, chunk-cnn, or any registered network
architecture), best epoch on valid, on one process or on many (DDP under torchrun, see `train.distributed`).

Every rank draws the same global batch (batch_size x world_size clips, the same seeded draws, crops and mixup), and
trains on its slice; DDP averages the gradients, so N processes x batch b take the steps 1 process x batch N*b would.
Rank 0 alone evaluates, logs and writes the checkpoint (every epoch: ``checkpoint.pt``, for ``--resume``).
"""

from __future__ import annotations

import copy
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.base import GenreNet
from genre_model.distributed import Processes
from genre_model.inference import GenreClassifier

from .metrics import summarize

CHECKPOINT = "checkpoint.pt"


def random_crops(waves: list[Waveform], idx: np.ndarray, n_samples: int, rng: np.random.Generator) -> torch.Tensor:
    """One random ``n_samples`` crop per chosen clip, zero-padded when the clip is shorter."""
    out = np.zeros((len(idx), n_samples), dtype=np.float32)
    for row, i in enumerate(idx):
        samples = waves[i].samples
        start = rng.integers(0, max(1, len(samples) - n_samples + 1))
        chunk = samples[start : start + n_samples]
        out[row, : len(chunk)] = chunk
    return torch.from_numpy(out)


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One optimisation step on waveforms ``x`` (batch, samples) with soft targets ``y`` (batch, genres); bf16
    autocast on CUDA."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda):
        logits = model(x)
    loss = torch.sum(-y * F.log_softmax(logits.float(), dim=-1), dim=-1).mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()


def evaluate_clips(
    model: GenreNet, waves: list[Waveform], labels: list[int], device: torch.device
) -> tuple[dict, float, np.ndarray]:
    """Clip-level scores (windows averaged exactly as at inference), mean clip log-loss, probabilities."""
    classifier = GenreClassifier(model, model.config.arch, device)
    probs = []
    for start in range(0, len(waves), 32):  # bounded memory: 32 clips of windows at a time
        probs += [list(p.probabilities.values()) for p in classifier.predict_many(waves[start : start + 32])]
    probs = np.asarray(probs)
    loss = float(-np.mean(np.log(probs[np.arange(len(labels)), labels] + 1e-9)))
    return summarize(labels, probs.argmax(axis=1).tolist(), model.config.genres), loss, probs


def global_batch(waves: list[Waveform], labels: torch.Tensor, n_genres: int, draw: np.ndarray, size: int,
                 n_samples: int, mixup_alpha: float, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """``size`` genre-balanced random crops (size, samples) and their soft targets (size, genres), mixed up."""
    idx = rng.choice(len(waves), size=size, p=draw)
    x, y = random_crops(waves, idx, n_samples, rng), F.one_hot(labels[idx], n_genres).float()
    if mixup_alpha > 0:
        lam = float(rng.beta(mixup_alpha, mixup_alpha))
        perm = torch.from_numpy(rng.permutation(size))
        x, y = lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
    return x, y


def fit_network(model: GenreNet, cfg, train: tuple[list[Waveform], list[int]], valid: tuple[list[Waveform], list[int]],
                device: torch.device, procs: Processes) -> tuple[list[dict], int]:  # fmt: skip
    """Train ``model`` (on ``device``) by ``cfg`` (a `train.fit.TrainConfig`); leaves it at its best valid epoch on
    rank 0. Returns the history and the best epoch (rank 0's, broadcast)."""
    (waves, labels), n_genres = train, len(model.config.genres)
    counts = np.bincount(labels, minlength=n_genres)  # balanced: every genre drawn equally often
    draw = 1.0 / counts[labels]
    draw /= draw.sum()
    size = cfg.batch_size * procs.world_size
    steps = max(1, math.ceil(len(waves) * cfg.crops_per_clip / size))
    net = model
    if procs.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    labels_t, mine = torch.tensor(labels), slice(procs.rank * cfg.batch_size, (procs.rank + 1) * cfg.batch_size)
    rng, win = np.random.default_rng(cfg.seed), model.config.window_samples
    run = {"epoch": 0, "history": [], "best": None, "best_state": None, "since_best": 0, "best_epoch": 0}
    checkpoint = Path(cfg.out) / CHECKPOINT
    if cfg.resume:
        run = resume(checkpoint, model, optimizer, schedule, rng)
    t_start = time.perf_counter() - (run["history"][-1]["seconds"] if run["history"] else 0.0)

    for epoch in tqdm(range(run["epoch"] + 1, cfg.epochs + 1), desc=f"training {cfg.model}", unit="epoch"):
        net.train()
        loss_sum = torch.zeros(2)
        for _ in range(steps):
            x, y = global_batch(waves, labels_t, n_genres, draw, size, win, cfg.mixup_alpha, rng)
            loss = train_step(net, optimizer, x[mine].to(device), y[mine].to(device))
            schedule.step()
            loss_sum += torch.tensor([loss * cfg.batch_size, cfg.batch_size])
        train_loss = procs.mean(loss_sum)
        stop = False
        if procs.is_main:
            stop = _evaluate_epoch(model, cfg, valid, device, run, epoch, train_loss, time.perf_counter() - t_start)
            save_checkpoint(checkpoint, model, optimizer, schedule, rng, run)
        if procs.broadcast(stop):
            break
    if procs.is_main:
        model.load_state_dict(run["best_state"])
    return procs.broadcast(run["history"]), procs.broadcast(run["best_epoch"])


def _evaluate_epoch(model: GenreNet, cfg, valid: tuple[list[Waveform], list[int]], device: torch.device, run: dict,
                    epoch: int, train_loss: float, seconds: float) -> bool:  # fmt: skip
    """Rank 0: score the epoch on valid, keep the best state in ``run``; returns whether to stop early."""
    scores, valid_loss, _ = evaluate_clips(model, *valid, device)
    run["epoch"] = epoch
    run["history"].append({"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
                           "valid_accuracy": scores["accuracy"], "valid_balanced_accuracy": scores["balanced_accuracy"],
                           "seconds": seconds})  # fmt: skip
    tqdm.write(f"epoch {epoch:3d}  train loss {train_loss:.3f}  valid loss {valid_loss:.3f}  "
               f"acc {scores['accuracy']:.1%}  balanced {scores['balanced_accuracy']:.1%}")  # fmt: skip
    key = [scores["balanced_accuracy"], -valid_loss]
    if run["best"] is None or key > run["best"]:
        run.update(best=key, best_state=copy.deepcopy(model.state_dict()), since_best=0, best_epoch=epoch)
        return False
    run["since_best"] += 1
    if run["since_best"] >= cfg.patience:
        tqdm.write(f"early stop: no better valid score for {cfg.patience} epochs")
        return True
    return False


def save_checkpoint(path: Path, model: GenreNet, optimizer, schedule, rng: np.random.Generator, run: dict) -> None:
    """Everything an interrupted run needs to continue exactly (weights, optimizer, schedule, random states)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "rng": json.dumps(rng.bit_generator.state), "torch_rng": torch.get_rng_state(), **run}  # fmt: skip
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)  # atomic: a crash mid-write keeps the previous checkpoint


def resume(path: Path, model: GenreNet, optimizer, schedule, rng: np.random.Generator) -> dict:
    """Load ``path`` (written by `save_checkpoint`) into the training objects; returns the run's progress."""
    if not path.is_file():
        raise SystemExit(f"error: --resume: no checkpoint at {path} (it is written there after every epoch).")
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state.pop("model"))
    optimizer.load_state_dict(state.pop("optimizer"))
    schedule.load_state_dict(state.pop("schedule"))
    rng.bit_generator.state = json.loads(state.pop("rng"))
    torch.set_rng_state(state.pop("torch_rng"))
    print(f"resuming after epoch {state['epoch']} from {path}")
    return state
