"""Train a model on a GTZAN-layout folder: random crops, balanced sampling, best checkpoint on validation."""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.base import GenreNet
from genre_model.explain import calibrate_entropy_threshold
from genre_model.inference import GenreClassifier, pick_device
from genre_model.models import MusicnnGenre
from genre_model.registry import architecture, architectures, build_model

from .classroom import TRAINED as CLASSROOM_LAYERS
from .classroom import ClassroomConfig, classroom_finetune
from .data import Clip, WaveformCache, genre_counts, genres_of, scan_dataset, split_clips
from .finetune import UNFROZEN, FinetuneConfig, finetune
from .metrics import summarize
from .probe import degraded_copies, fit_head

# Which flags each recipe (`genre_model.registry.Architecture.recipe`) reads; any other given flag is refused.
NETWORK_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "crops_per_clip", "mixup_alpha", "patience")
PROBE_FLAGS = ("augment", "refit_on_valid", "unfreeze", "classroom_epochs", "classroom_layers")
NETWORK_DEFAULTS = dict(epochs=40, batch_size=32, lr=1e-3, weight_decay=1e-2, crops_per_clip=1, mixup_alpha=0.0,
                        patience=10)  # under each architecture's registered `training` defaults  # fmt: skip
FINETUNE_FLAGS = {"epochs": "epochs", "batch_size": "batch_clips", "lr": "lr", "weight_decay": "weight_decay",
                  "patience": "patience"}  # probe recipe with --unfreeze: flag -> FinetuneConfig field  # fmt: skip


@dataclass
class TrainConfig:
    model: str
    data: str
    out: str
    split_dir: str | None = None
    # the network recipe's settings (None under the probe recipe, which does not read them; see NETWORK_DEFAULTS)
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    weight_decay: float | None = None
    crops_per_clip: int | None = None  # training examples drawn per training clip per epoch
    mixup_alpha: float | None = None  # 0 = off
    patience: int | None = None  # epochs without a better valid score before stopping
    seed: int = 0
    device: str | None = None
    cache_dir: str = ".cache/waveforms"
    augment: bool = True  # musicnn-genre: add a classroom-degraded copy of every training clip
    refit_on_valid: bool = False  # musicnn-genre: after choosing on valid, refit the head on train + valid
    unfreeze: str | None = None  # musicnn-genre: after the probe, fine-tune these pretrained layers (finetune.py)
    finetune: dict = field(default_factory=dict)  # musicnn-genre with unfreeze: FinetuneConfig fields given as flags
    classroom_epochs: int = 0  # musicnn-genre: then distil into a classroom-robust model (classroom.py); 0 = off
    classroom_layers: str = "all"  # which backbone layers the distillation trains (classroom.TRAINED)


def random_crops(waves: list[Waveform], idx: np.ndarray, n_samples: int, rng: np.random.Generator) -> torch.Tensor:
    """One random ``n_samples`` crop per chosen clip, zero-padded when the clip is shorter."""
    out = np.zeros((len(idx), n_samples), dtype=np.float32)
    for row, i in enumerate(idx):
        samples = waves[i].samples
        start = rng.integers(0, max(1, len(samples) - n_samples + 1))
        chunk = samples[start : start + n_samples]
        out[row, : len(chunk)] = chunk
    return torch.from_numpy(out)


def train_step(model: GenreNet, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One optimisation step on waveforms ``x`` (batch, samples) with soft targets ``y`` (batch, genres)."""
    loss = torch.sum(-y * F.log_softmax(model(x), dim=-1), dim=-1).mean()
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


def fit_network(model: GenreNet, cfg: TrainConfig, train_waves: list[Waveform], train_labels: list[int],
                valid_waves: list[Waveform], valid_labels: list[int], device: torch.device,
                rng: np.random.Generator) -> tuple[list[dict], int]:  # fmt: skip
    """Train the whole network on random crops; leaves ``model`` at its best valid epoch."""
    genres = model.config.genres
    # balanced sampling: every genre is drawn equally often whatever its clip count
    freq = np.bincount(train_labels, minlength=len(genres))
    weights = 1.0 / freq[train_labels]
    weights /= weights.sum()
    steps = max(1, math.ceil(len(train_waves) * cfg.crops_per_clip / cfg.batch_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, total_steps=cfg.epochs * steps)
    labels_t = torch.tensor(train_labels)
    t_start = time.perf_counter()

    history, best, best_state, since_best, best_epoch = [], None, None, 0, 0
    for epoch in tqdm(range(1, cfg.epochs + 1), desc=f"training {cfg.model}", unit="epoch"):
        model.train()
        running, seen = 0.0, 0
        for _ in range(steps):
            idx = rng.choice(len(train_waves), size=cfg.batch_size, p=weights)
            x = random_crops(train_waves, idx, model.config.window_samples, rng).to(device)
            y = F.one_hot(labels_t[idx], len(genres)).float().to(device)
            if cfg.mixup_alpha > 0:
                lam = float(rng.beta(cfg.mixup_alpha, cfg.mixup_alpha))
                perm = torch.from_numpy(rng.permutation(len(idx))).to(device)
                x, y = lam * x + (1 - lam) * x[perm], lam * y + (1 - lam) * y[perm]
            loss = train_step(model, optimizer, x, y)
            schedule.step()
            running, seen = running + loss * len(idx), seen + len(idx)

        scores, valid_loss, _ = evaluate_clips(model, valid_waves, valid_labels, device)
        row = {
            "epoch": epoch,
            "train_loss": running / seen,
            "valid_loss": valid_loss,
            "valid_accuracy": scores["accuracy"],
            "valid_balanced_accuracy": scores["balanced_accuracy"],
            "seconds": time.perf_counter() - t_start,
        }
        history.append(row)
        tqdm.write(
            f"epoch {epoch:3d}  train loss {row['train_loss']:.3f}  valid loss {valid_loss:.3f}  "
            f"acc {scores['accuracy']:.1%}  balanced {scores['balanced_accuracy']:.1%}"
        )
        key = (scores["balanced_accuracy"], -valid_loss)
        if best is None or key > best:
            best, best_state, since_best = key, copy.deepcopy(model.state_dict()), 0
            best_epoch = epoch
        else:
            since_best += 1
            if since_best >= cfg.patience:
                tqdm.write(f"early stop: no better valid score for {cfg.patience} epochs")
                break
    model.load_state_dict(best_state)
    return history, best_epoch


def fit_pretrained(model: MusicnnGenre, cfg: TrainConfig, train: tuple[list[Waveform], list[int]],
                   valid: tuple[list[Waveform], list[int]], device: torch.device) -> tuple[list, dict]:  # fmt: skip
    """The musicnn-genre schedule: the linear probe on the frozen backbone, then (``cfg.unfreeze``) fine-tuning,
    with a classroom-degraded copy of every training clip unless ``cfg.augment`` is off; then (``cfg.classroom_epochs``)
    classroom distillation of the whole network."""
    n_clean, cache, clean = len(train[0]), Path(cfg.cache_dir).parent, train
    if cfg.augment:
        train = (train[0] + degraded_copies(train[0], cfg.seed), train[1] * 2)
    history, scores = fit_head(model, train, valid, n_clean, cfg.seed, cfg.refit_on_valid, cache / "features", device)
    if cfg.unfreeze:
        stage = FinetuneConfig(cfg.unfreeze, **cfg.finetune)
        more, scores = finetune(model, train, valid, n_clean, cfg.seed, cache / "front", stage, device)
        history += more
    if cfg.classroom_epochs:
        stage = ClassroomConfig(epochs=cfg.classroom_epochs, trained=cfg.classroom_layers)
        more, scores = classroom_finetune(model, clean, valid, cfg.seed, stage, device)
        history += more
    return history, scores


def train(cfg: TrainConfig) -> dict:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    device = pick_device(cfg.device)
    splits, missing = split_clips(scan_dataset(cfg.data), cfg.split_dir, cfg.seed)
    genres = genres_of(splits["train"] + splits["valid"])  # the data's labels, not a constant
    model = build_model(cfg.model, genres=genres).to(device)
    sr = model.config.sample_rate

    cache = WaveformCache(cfg.cache_dir)
    data: dict[str, tuple[list[Clip], list[Waveform]]] = {
        name: cache.load_all(splits[name], sr, f"decoding {name}") for name in ("train", "valid")
    }
    (train_clips, train_waves), (valid_clips, valid_waves) = data["train"], data["valid"]
    if not train_clips or not valid_clips:
        raise SystemExit("error: need at least one readable clip in both the train and the valid split.")
    train_labels = [genres.index(c.genre) for c in train_clips]
    valid_labels = [genres.index(c.genre) for c in valid_clips]
    counts = {name: genre_counts(data[name][0]) for name in data}
    print(f"clips: train {len(train_waves)}, valid {len(valid_clips)}; listed but absent: {missing}")

    t0 = time.perf_counter()
    if architecture(cfg.model).recipe == "probe":  # pretrained backbone: fit the genre head on cached features first
        history, scores = fit_pretrained(model, cfg, (train_waves, train_labels), (valid_waves, valid_labels), device)
        best_epoch = history[-1].get("best_epoch", 0)  # 0: the probe, no fine-tuning epoch
    else:
        history, best_epoch = fit_network(model, cfg, train_waves, train_labels, valid_waves, valid_labels, device, rng)
        scores = {"train": evaluate_clips(model, train_waves, train_labels, device)[0]}
        scores["valid"], _, scores["valid_probs"] = evaluate_clips(model, valid_waves, valid_labels, device)
    train_seconds = time.perf_counter() - t0

    valid_probs = scores.pop("valid_probs")
    model.config.entropy_threshold = calibrate_entropy_threshold(valid_probs)  # for the app's confidence note
    metrics = {
        "model": cfg.model,
        "config": asdict(cfg),
        "device": str(device),
        "clips": counts,
        "listed_but_absent": missing,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "train_seconds": train_seconds,
        "seconds_per_epoch": train_seconds / len(history),
        **scores,  # train, valid (with --refit-on-valid: the head chosen before valid joined training)
        "history": history,
    }
    out = Path(cfg.out)
    (out / "README.md").unlink(missing_ok=True)  # save_pretrained keeps an existing card: replace it
    model.cpu().save_pretrained(out, model_card_kwargs={"metrics": metrics})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(
        f"saved {out}: train acc {scores['train']['accuracy']:.1%}, valid acc {metrics['valid']['accuracy']:.1%} "
        f"(balanced {metrics['valid']['balanced_accuracy']:.1%}), best epoch {best_epoch}, {train_seconds:.0f} s"
    )
    return metrics


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The command line as a `TrainConfig`: the architecture's registered defaults, then the flags given. A flag the
    architecture's recipe does not read is refused with a one-line message (exit status 2), never ignored."""
    parser = argparse.ArgumentParser(prog="python -m train", description="Train a genre model on GTZAN-layout data.")
    parser.add_argument("--model", required=True, choices=list(architectures()))
    parser.add_argument("--data", required=True, help="folder with <genre>/<genre>.NNNNN.<ext> clips")
    parser.add_argument("--out", required=True, help="output folder, e.g. weights/chunk-cnn")
    parser.add_argument("--split-dir", help="folder with {train,valid,test}_filtered.txt (else a random split)")
    for name in ("epochs", "batch_size", "crops_per_clip", "patience", "seed", "classroom_epochs"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("lr", "weight_decay", "mixup_alpha"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help="musicnn-genre: train on clean audio only")  # fmt: skip
    parser.add_argument(
        "--refit-on-valid",
        action="store_true",
        default=None,
        help="musicnn-genre: refit the chosen head on train + valid (valid scores reported before)",
    )
    parser.add_argument("--unfreeze", choices=list(UNFROZEN),
                        help="musicnn-genre: after the linear probe, fine-tune these pretrained layers with the head "
                        "(--epochs --batch-size --lr --weight-decay --patience then set that stage)")  # fmt: skip
    parser.add_argument(
        "--classroom-layers",
        choices=list(CLASSROOM_LAYERS),
        help="musicnn-genre with --classroom-epochs: the backbone layers distillation trains",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--cache-dir", help="where decoded waveforms are cached (default: .cache/waveforms)")
    args = {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}
    entry = architecture(args["model"])

    def refuse(flag: str, why: str) -> None:
        parser.error(f"--{flag.replace('_', '-')} {why}")

    if entry.recipe == "network":
        for flag in PROBE_FLAGS:
            if flag in args:
                refuse(flag, f"applies to models on a pretrained backbone (musicnn-genre), not {entry.name}")
        return TrainConfig(**{**NETWORK_DEFAULTS, **entry.training, **args})
    for flag in NETWORK_FLAGS:
        if flag in FINETUNE_FLAGS and flag in args and "unfreeze" not in args:
            refuse(flag, f"applies to {entry.name} only with --unfreeze (the fine-tuning stage); the probe has none")
        elif flag in args and flag not in FINETUNE_FLAGS:
            refuse(flag, f"does not apply to {entry.name}: its head is fitted by a linear probe, not on crops")
    if "classroom_layers" in args and "classroom_epochs" not in args:
        refuse("classroom_layers", "needs --classroom-epochs")
    if args.get("refit_on_valid") and ("unfreeze" in args or "classroom_epochs" in args):
        refuse("refit-on-valid", "refits the linear probe only; leave out --unfreeze and --classroom-epochs with it")
    finetune = {FINETUNE_FLAGS[f]: args.pop(f) for f in list(args) if f in FINETUNE_FLAGS}
    return TrainConfig(**{**entry.training, **args, "finetune": finetune})
