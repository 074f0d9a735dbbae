"""``python -m train network --model {seed-cnn,ffnn,chunk-cnn} ...``: train a whole network from scratch on random
crops (any architecture registered with ``recipe="network"``), best epoch on valid, on one process or on many (DDP
under torchrun, `genre_model.distributed`).

Clips in memory: every rank draws the same global batch (batch_size x world_size clips, the same seeded draws, crops
and mixup), and trains on its slice; DDP averages the gradients, so N processes x batch b take the steps 1 process x
batch N*b would. Tar shards: each rank streams its own share of the train split (`train.shards.BalancedCrops`).
Rank 0 alone evaluates, logs and writes the checkpoint (every epoch: ``checkpoint.pt``, for ``--resume``).
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.base import GenreNet
from genre_model.distributed import Processes, processes
from genre_model.inference import GenreClassifier

from .data import balanced_draw, random_crop
from .fit import CHECKPOINT, RunConfig, flag, prepare, save
from .metrics import BestEpoch, summarize
from .shards import crop_loader, decoded_clips, split_counts


@dataclass
class NetworkConfig(RunConfig):
    """The from-scratch recipe. An architecture's registered ``training`` settings replace these defaults, and the
    flags given replace both."""

    model: str = field(
        default="chunk-cnn",
        metadata=flag('the architecture: seed-cnn, ffnn, chunk-cnn, or any registered with recipe "network"'),
    )
    epochs: int = field(default=40, metadata=flag("passes of crops_per_clip crops per training clip"))
    batch_size: int = field(default=32, metadata=flag("crops per step and process"))
    lr: float = field(default=1e-3, metadata=flag("peak of the one-cycle learning rate"))
    weight_decay: float = field(default=1e-2, metadata=flag("AdamW's"))
    crops_per_clip: int = field(default=1, metadata=flag("training examples drawn per training clip per epoch"))
    mixup_alpha: float = field(default=0.0, metadata=flag("mixup's Beta(alpha, alpha); 0 = off"))
    patience: int = field(default=10, metadata=flag("epochs without a better valid score before stopping"))
    resume: bool = field(default=False, metadata=flag("continue an interrupted run from the checkpoint in --out"))


def random_crops(waves: list[Waveform], idx: np.ndarray, n_samples: int, rng: np.random.Generator) -> torch.Tensor:
    """One `random_crop` of each chosen clip: (len(idx), n_samples)."""
    return torch.from_numpy(np.stack([random_crop(waves[i].samples, n_samples, rng) for i in idx]))


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


Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]  # this process's (x (b, samples), soft targets (b, genres))


def mixed(x: torch.Tensor, y: torch.Tensor, alpha: float, rng: np.random.Generator) -> tuple[torch.Tensor, ...]:
    """Mixup (Zhang et al. 2018) of a batch with a shuffled copy of itself; ``alpha`` 0 = off."""
    if alpha <= 0:
        return x, y
    lam = float(rng.beta(alpha, alpha))
    perm = torch.from_numpy(rng.permutation(len(x)))
    return lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]


def memory_batches(
    waves: list[Waveform],
    labels: list[int],
    n_genres: int,
    cfg,
    n_samples: int,
    procs: Processes,
    rng: np.random.Generator,
) -> Batches:
    """Endless genre-balanced random crops of clips held in memory. Every process draws the same global batch
    (batch_size x processes: the same seeded crops and mixup) and yields its slice of it."""
    draw = balanced_draw(labels)
    labels_t, size = torch.tensor(labels), cfg.batch_size * procs.world_size
    mine = slice(procs.rank * cfg.batch_size, (procs.rank + 1) * cfg.batch_size)
    while True:
        idx = rng.choice(len(waves), size=size, p=draw)
        x, y = random_crops(waves, idx, n_samples, rng), F.one_hot(labels_t[idx], n_genres).float()
        x, y = mixed(x, y, cfg.mixup_alpha, rng)
        yield x[mine], y[mine]


def stream_batches(
    folder: str,
    genres: list[str],
    cfg,
    n_samples: int,
    sample_rate: int,
    first_pass: int,
    procs: Processes,
    rng: np.random.Generator,
) -> Batches:
    """Endless batches of this process's own stream of crops from the train shards in ``folder``
    (`train.shards.BalancedCrops`, decoded in DataLoader workers), mixed up."""
    loader = crop_loader(
        folder, sample_rate, genres, n_samples, cfg.crops_per_clip, cfg.batch_size, cfg.seed, procs, first_pass
    )
    for x, labels in loader:
        yield mixed(x, F.one_hot(labels, len(genres)).float(), cfg.mixup_alpha, rng)


def fit_network(
    model: GenreNet,
    cfg,
    train: tuple[list[Waveform], list[int]] | str,
    valid: tuple[list[Waveform], list[int]],
    device: torch.device,
    procs: Processes,
) -> tuple[list[dict], int]:
    """Train ``model`` (on ``device``) by ``cfg`` (a `train.fit.TrainConfig`) on ``train``: clips in memory, or a
    folder of tar shards whose train split is streamed; leaves it at its best valid epoch on rank 0. An epoch is
    ``crops_per_clip`` crops per training clip, over all processes. Returns the history and the best epoch (rank
    0's, broadcast)."""
    genres, win = model.config.genres, model.config.window_samples
    n_train = sum(split_counts(train, "train").values()) if isinstance(train, str) else len(train[0])
    steps = max(1, math.ceil(n_train * cfg.crops_per_clip / (cfg.batch_size * procs.world_size)))
    net = model
    if procs.distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    rng = np.random.default_rng(cfg.seed)
    run = {"epoch": 0, "history": [], "best": BestEpoch()}
    checkpoint = Path(cfg.out) / CHECKPOINT
    if cfg.resume:
        run = resume(checkpoint, model, optimizer, schedule, rng)
    t_start = time.perf_counter() - (run["history"][-1]["seconds"] if run["history"] else 0.0)
    if isinstance(train, str):  # a resumed stream starts from new passes, not from the crops of epoch 1 again
        batches = stream_batches(train, genres, cfg, win, model.config.sample_rate, run["epoch"], procs, rng)
    else:
        batches = memory_batches(*train, len(genres), cfg, win, procs, rng)

    epochs = range(run["epoch"] + 1, cfg.epochs + 1)
    for epoch in tqdm(epochs, desc=f"training {cfg.model}", unit="epoch", disable=not procs.is_main):
        net.train()
        loss_sum = torch.zeros(2)
        for _ in range(steps):
            x, y = next(batches)
            loss = train_step(net, optimizer, x.to(device), y.to(device))
            schedule.step()
            loss_sum += torch.tensor([loss * len(x), len(x)])
        train_loss = procs.mean(loss_sum)
        stop = False
        if procs.is_main:
            stop = _evaluate_epoch(model, cfg, valid, device, run, epoch, train_loss, time.perf_counter() - t_start)
            save_checkpoint(checkpoint, model, optimizer, schedule, rng, run)
        if procs.broadcast(stop):
            break
    if procs.is_main:
        run["best"].restore(model)
    return procs.broadcast(run["history"]), procs.broadcast(run["best"].epoch)


def _evaluate_epoch(
    model: GenreNet,
    cfg,
    valid: tuple[list[Waveform], list[int]],
    device: torch.device,
    run: dict,
    epoch: int,
    train_loss: float,
    seconds: float,
) -> bool:
    """Rank 0: score the epoch on valid, keep the best state in ``run``; returns whether to stop early."""
    scores, valid_loss, _ = evaluate_clips(model, *valid, device)
    run["epoch"] = epoch
    run["history"].append(
        {
            "epoch": epoch,
            "train_loss": train_loss,
            "valid_loss": valid_loss,
            "valid_accuracy": scores["accuracy"],
            "valid_balanced_accuracy": scores["balanced_accuracy"],
            "seconds": seconds,
        }
    )
    tqdm.write(
        f"epoch {epoch:3d}  train loss {train_loss:.3f}  valid loss {valid_loss:.3f}  "
        f"acc {scores['accuracy']:.1%}  balanced {scores['balanced_accuracy']:.1%}"
    )
    best = run["best"]
    best.offer(epoch, (scores["balanced_accuracy"], -valid_loss), model)
    if best.since >= cfg.patience:
        tqdm.write(f"early stop: no better valid score for {cfg.patience} epochs")
        return True
    return False


def save_checkpoint(path: Path, model: GenreNet, optimizer, schedule, rng: np.random.Generator, run: dict) -> None:
    """Everything an interrupted run needs to continue exactly (weights, optimizer, schedule, random states)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "schedule": schedule.state_dict(),
        "rng": json.dumps(rng.bit_generator.state),
        "torch_rng": torch.get_rng_state(),
        **run,
        "best": asdict(run["best"]),
    }
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
    return {**state, "best": BestEpoch(**state["best"])}


def streamed_scores(model: GenreNet, folder: str, device: torch.device, chunk: int = 64) -> dict:
    """Clip-level scores on the train shards, decoded and classified ``chunk`` clips at a time (bounded memory)."""
    labels, predicted, pairs = [], [], decoded_clips(folder, "train", model.config.sample_rate)
    while block := list(itertools.islice(pairs, chunk)):
        labels += [model.config.genres.index(clip.genre) for clip, _ in block]
        predicted += evaluate_clips(model, [w for _, w in block], labels[-len(block) :], device)[2].argmax(1).tolist()
    return summarize(labels, predicted, model.config.genres)


def train(cfg: NetworkConfig) -> dict:
    """Train, evaluate, save into ``cfg.out`` (rank 0 under torchrun); returns the metrics (other ranks: history)."""
    with processes() as procs:
        model, device, data = prepare(cfg, cfg.model, procs, stream=True)
        started = time.perf_counter()
        history, best_epoch = fit_network(model, cfg, data.train, data.valid, device, procs)
        run = {
            "world_size": procs.world_size,
            "device": str(device),
            "best_epoch": best_epoch,
            "epochs_run": len(history),
            "history": history,
        }
        if not procs.is_main:
            return run
        streamed = isinstance(data.train, str)
        scores = {
            "train": streamed_scores(model, cfg.data, device)
            if streamed
            else evaluate_clips(model, *data.train, device)[0]
        }
        scores["valid"], _, scores["valid_probs"] = evaluate_clips(model, *data.valid, device)
        return save(model, "network", cfg, data, run, scores, started, summary(cfg, model.config.window_s, run))


def summary(cfg: NetworkConfig, window_s: float, run: dict) -> str:
    """How the model was made, in words, for its card."""
    mixup = f", mixup alpha {cfg.mixup_alpha:g}" if cfg.mixup_alpha else ""
    return (
        f"Trained from scratch on random {window_s:g} s crops ({cfg.crops_per_clip} per clip per epoch, "
        f"genre-balanced{mixup}), AdamW with a one-cycle learning rate peaking at {cfg.lr:g}, weight decay "
        f"{cfg.weight_decay:g}, batch {cfg.batch_size}; the epoch with the best valid balanced accuracy was kept: "
        f"{run['best_epoch']} of {run['epochs_run']} run."
    )
