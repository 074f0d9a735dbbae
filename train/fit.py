"""Train a model on a GTZAN-layout folder: random crops, balanced sampling, best checkpoint on validation."""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partialmethod
from pathlib import Path

import torch
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.base import GenreNet
from genre_model.distributed import Processes, processes
from genre_model.explain import calibrate_entropy_threshold
from genre_model.inference import pick_device
from genre_model.loading import load_model
from genre_model.models import MusicnnGenre
from genre_model.registry import architecture, architectures, build_model

from .classroom import TRAINED as CLASSROOM_LAYERS
from .classroom import ClassroomConfig, classroom_finetune
from .data import Clip, WaveformCache, genre_counts, genres_of, scan_dataset, split_clips
from .finetune import UNFROZEN, FinetuneConfig, finetune
from .metrics import summarize
from .network import CHECKPOINT, evaluate_clips, fit_network
from .probe import WEIGHT_DECAYS, degraded_copies, fit_head, load_backbone
from .shards import decoded_clips, is_shard_folder, load_split, split_counts, split_genres

# Which flags each recipe (`genre_model.registry.Architecture.recipe`) reads; any other given flag is refused.
NETWORK_FLAGS = ("epochs", "batch_size", "lr", "weight_decay", "crops_per_clip", "mixup_alpha", "patience", "resume")
PROBE_FLAGS = ("augment", "copies", "same_kind", "refit_on_valid", "unfreeze", "classroom_epochs", "classroom_layers",
               "classroom_features", "classroom_mixes")  # fmt: skip
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
    augment: bool = True  # musicnn-genre: add classroom-degraded copies of every training clip...
    copies: int = 1  # ...this many
    same_kind: float = 0.0  # share of them (and of distillation's classrooms) one kind of device plays and hears
    init: str | None = None  # a trained model folder to start from (same architecture and genres)
    refit_on_valid: bool = False  # musicnn-genre: after choosing on valid, refit on train + valid (fit_pretrained)
    unfreeze: str | None = None  # musicnn-genre: after the probe, fine-tune these pretrained layers (finetune.py)
    finetune: dict = field(default_factory=dict)  # musicnn-genre with unfreeze: FinetuneConfig fields given as flags
    classroom_epochs: int = 0  # musicnn-genre: then distil into a classroom-robust model (classroom.py); 0 = off
    classroom_layers: str = "all"  # which backbone layers the distillation trains (classroom.TRAINED)
    classroom_features: float = 0.0  # weight of matching the teacher's pooled backbone features (classroom.py)
    classroom_mixes: float = 0.0  # share of distillation's windows that mix in a second clip (classroom.py)
    resume: bool = False  # network recipe: continue from the checkpoint in ``out`` (train.network)


def fit_pretrained(model: MusicnnGenre, cfg: TrainConfig, train: tuple[list[Waveform], list[int]],
                   valid: tuple[list[Waveform], list[int]], device: torch.device,
                   procs: Processes) -> tuple[list, dict]:  # fmt: skip
    """The musicnn-genre schedule: the linear probe on the frozen backbone (pretrained, or ``cfg.init``'s), then
    (``cfg.unfreeze``) fine-tuning, with ``cfg.copies`` classroom-degraded copies of every training clip unless
    ``cfg.augment`` is off; then (``cfg.classroom_epochs``) classroom distillation of the whole network. With
    ``cfg.refit_on_valid`` and distillation, the schedule then runs again from the start on train + valid with the
    choices valid made (the probe's weight decay, the kept distillation epoch): more data for the published weights,
    while the returned valid scores stay those of the run that never saw valid. Under torchrun every stage shares
    its work among the processes."""
    if not cfg.init:
        load_backbone(model)
    refit_schedule = cfg.refit_on_valid and cfg.classroom_epochs > 0
    start = copy.deepcopy(model.state_dict()) if refit_schedule else None
    history, scores = _schedule(model, cfg, train, valid, device, procs, refit_head=not refit_schedule)
    if refit_schedule:
        decay = next(row["chosen_weight_decay"] for row in history if "chosen_weight_decay" in row)
        epochs = history[-1]["best_epoch"]
        tqdm.write(f"refit on train + valid: weight decay {decay:g}, {epochs} distillation epoch(s)")
        model.load_state_dict(start)
        model.backbone.use_int8(False)  # quantized again from the restored weights by the probe's calibration
        both = (train[0] + valid[0], train[1] + valid[1])
        again, refit = _schedule(model, replace(cfg, classroom_epochs=epochs), both, None, device, procs, (decay,))
        distilled = [row for row in again if "epoch" in row]  # train losses; the probe's rows scored train
        history.append({"refit_on": "train+valid", "weight_decay": decay, "classroom_epochs": epochs,
                        "train_and_valid": refit["train"], "epochs": distilled})  # fmt: skip
    return history, scores


def _schedule(model: MusicnnGenre, cfg: TrainConfig, train: tuple[list[Waveform], list[int]],
              valid: tuple[list[Waveform], list[int]] | None, device: torch.device, procs: Processes,
              decays: tuple[float, ...] = WEIGHT_DECAYS, refit_head: bool = False) -> tuple[list, dict]:  # fmt: skip
    """`fit_pretrained`'s stages once. Without ``valid`` (the refit) the probe scores train in its place, which
    chooses nothing when ``decays`` holds one, and distillation runs all ``cfg.classroom_epochs``."""
    n_clean, cache, clean = len(train[0]), Path(cfg.cache_dir).parent, train
    if cfg.augment:
        for j in range(cfg.copies):  # copy j of clip i: seed + 100 000 j + i
            more = degraded_copies(clean[0], cfg.seed + 100_000 * j, procs=procs, same_kind=cfg.same_kind)
            train = (train[0] + more, train[1] + clean[1])
    history, scores = fit_head(model, train, valid or clean, n_clean, cfg.seed, refit_head and cfg.refit_on_valid,
                               cache / "features", device, procs, decays)  # fmt: skip
    if cfg.unfreeze:
        stage = FinetuneConfig(cfg.unfreeze, **cfg.finetune)
        more, scores = finetune(model, train, valid, n_clean, cfg.seed, cache / "front", stage, device, procs)
        history += more
    if cfg.classroom_epochs:
        stage = ClassroomConfig(epochs=cfg.classroom_epochs, trained=cfg.classroom_layers, same_kind=cfg.same_kind,
                                feature_weight=cfg.classroom_features, mix_share=cfg.classroom_mixes)  # fmt: skip
        more, scores = classroom_finetune(model, clean, valid, cfg.seed, stage, device, procs)
        history += more
    return history, scores


def initial_model(folder: str, arch: str, genres: list[str]) -> GenreNet:
    """``--init``: the trained model in ``folder``, checked to be the architecture and genres being trained."""
    model = load_model(folder)
    if model.config.arch != arch or list(model.config.genres) != genres:
        raise SystemExit(f"error: --init {folder} is a {model.config.arch} for {', '.join(model.config.genres)}; "
                         f"this run trains a {arch} for {', '.join(genres)}.")  # fmt: skip
    return model


def streamed_scores(model: GenreNet, folder: str, device: torch.device, chunk: int = 64) -> dict:
    """Clip-level scores on the train shards, decoded and classified ``chunk`` clips at a time (bounded memory)."""
    labels, predicted, pairs = [], [], decoded_clips(folder, "train", model.config.sample_rate)
    while block := list(itertools.islice(pairs, chunk)):
        labels += [model.config.genres.index(clip.genre) for clip, _ in block]
        predicted += evaluate_clips(model, [w for _, w in block], labels[-len(block) :], device)[2].argmax(1).tolist()
    return summarize(labels, predicted, model.config.genres)


def train(cfg: TrainConfig) -> dict:
    """Train, evaluate, save into ``cfg.out`` (rank 0 under torchrun); returns the metrics (other ranks: history)."""
    with processes() as procs:
        if not procs.is_main:  # one set of progress bars and messages: rank 0's
            tqdm.__init__ = partialmethod(tqdm.__init__, disable=True)
            tqdm.write = lambda *args, **kwargs: None
        return _train(cfg, procs)


def _train(cfg: TrainConfig, procs: Processes) -> dict:
    recipe = architecture(cfg.model).recipe
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    device = procs.device(cfg.device) or pick_device(cfg.device)
    packed = is_shard_folder(cfg.data)  # tar shards (python -m train.data pack), else a GTZAN-layout folder
    if packed:
        if cfg.split_dir:
            raise SystemExit(
                "error: --split-dir does not apply to shards: `python -m train.data pack` fixed the split."
            )
        missing, genres = {}, split_genres(cfg.data)
    else:
        splits, missing = split_clips(scan_dataset(cfg.data), cfg.split_dir, cfg.seed)
        genres = genres_of(splits["train"] + splits["valid"])  # the data's labels, not a constant
    model = (initial_model(cfg.init, cfg.model, genres) if cfg.init else build_model(cfg.model, genres=genres)).to(
        device
    )
    torch.manual_seed(cfg.seed + procs.rank)  # dropout and augmentation: each rank its own draws
    sr = model.config.sample_rate

    streamed = packed and recipe == "network"  # its train shards stream; anything else is loaded whole
    cache = WaveformCache(cfg.cache_dir)
    data: dict[str, tuple[list[Clip], list[Waveform]]] = {
        name: load_split(cfg.data, name, sr) if packed else cache.load_all(splits[name], sr, f"decoding {name}")
        for name in (("valid",) if streamed else ("train", "valid"))
    }
    counts = {name: genre_counts(clips) for name, (clips, _) in data.items()}
    if streamed:
        counts["train"] = split_counts(cfg.data, "train")
    if min(sum(counts["train"].values()), len(data["valid"][0])) < procs.world_size:
        raise SystemExit(f"error: need at least {procs.world_size} readable clip(s) in both the train and the valid "
                         "split (one per process).")  # fmt: skip
    labelled = {name: (waves, [genres.index(c.genre) for c in clips]) for name, (clips, waves) in data.items()}
    if procs.is_main:
        print(f"clips: {counts}; listed but absent: {missing}" + (" (train streamed from shards)" * streamed))

    t0 = time.perf_counter()
    if recipe == "probe":  # pretrained backbone: fit the genre head on cached features first
        history, scores = fit_pretrained(model, cfg, labelled["train"], labelled["valid"], device, procs)
        best_epoch = next((row["best_epoch"] for row in reversed(history) if "best_epoch" in row), 0)  # 0: the probe
    else:
        train = cfg.data if streamed else labelled["train"]
        history, best_epoch = fit_network(model, cfg, train, labelled["valid"], device, procs)
    if not procs.is_main:
        return {"history": history, "best_epoch": best_epoch}
    if recipe == "network":  # rank 0 scores the kept epoch
        scores = {"train": streamed_scores(model, cfg.data, device) if streamed else
                  evaluate_clips(model, *labelled["train"], device)[0]}  # fmt: skip
        scores["valid"], _, scores["valid_probs"] = evaluate_clips(model, *labelled["valid"], device)
    train_seconds = time.perf_counter() - t0

    valid_probs = scores.pop("valid_probs")
    model.config.entropy_threshold = calibrate_entropy_threshold(valid_probs)  # for the app's confidence note
    metrics = {
        "model": cfg.model,
        "config": asdict(cfg),
        "device": str(device),
        "world_size": procs.world_size,
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
    (out / CHECKPOINT).unlink(missing_ok=True)  # finished: the saved model is the result
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
    parser.add_argument(
        "--data",
        required=True,
        help="folder with <genre>/<genre>.NNNNN.<ext> clips, or of tar shards (python -m train.data pack)",
    )
    parser.add_argument("--out", required=True, help="output folder, e.g. weights/chunk-cnn")
    parser.add_argument("--split-dir", help="folder with {train,valid,test}_filtered.txt (else a random split)")
    for name in ("epochs", "batch_size", "crops_per_clip", "patience", "seed", "classroom_epochs"):
        parser.add_argument("--" + name.replace("_", "-"), type=int)
    for name in ("lr", "weight_decay", "mixup_alpha"):
        parser.add_argument("--" + name.replace("_", "-"), type=float)
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help="musicnn-genre: train on clean audio only")  # fmt: skip
    parser.add_argument("--copies", type=int, help="musicnn-genre: classroom copies of each training clip (1)")
    parser.add_argument("--same-kind", type=float,
                        help="musicnn-genre: share of the classroom copies (and distillation's classrooms) that "
                        "one kind of device plays and hears, phone to phone or laptop to laptop (0)")  # fmt: skip
    parser.add_argument("--init", help="start from this trained model folder (same architecture and genres)")
    parser.add_argument(
        "--refit-on-valid",
        action="store_true",
        default=None,
        help="musicnn-genre: after choosing on valid, fit the head (and, with --classroom-epochs, distil as many "
        "epochs as valid kept) again on train + valid; the valid scores reported are from before",
    )
    parser.add_argument("--unfreeze", choices=list(UNFROZEN),
                        help="musicnn-genre: after the linear probe, fine-tune these pretrained layers with the head "
                        "(--epochs --batch-size --lr --weight-decay --patience then set that stage)")  # fmt: skip
    parser.add_argument(
        "--classroom-layers",
        choices=list(CLASSROOM_LAYERS),
        help="musicnn-genre with --classroom-epochs: the backbone layers distillation trains",
    )
    parser.add_argument("--classroom-features", type=float,
                        help="musicnn-genre with --classroom-epochs: weight of the student matching the teacher's "
                        "pooled backbone features (mean squared distance), beside its genre and tag answers (0)",
                        )  # fmt: skip
    parser.add_argument("--classroom-mixes", type=float,
                        help="musicnn-genre with --classroom-epochs: share of distillation's windows that mix in a "
                        "window of another training clip at 15-45%%, which the teacher hears clean (0)")  # fmt: skip
    parser.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue an interrupted run from the checkpoint in --out (networks trained from scratch)",
    )
    parser.add_argument("--device", help="cpu, cuda, mps (default: best available; under torchrun each rank's GPU)")
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
            refuse(
                flag, f"does not apply to {entry.name}: its head is fitted by a linear probe, not by epochs of crops"
            )
    for flag in ("same_kind", "classroom_mixes"):  # shares: a percentage given as 50 would mix every window
        if not 0 <= args.get(flag, 0) <= 1:
            refuse(flag, f"is a share from 0 to 1, not {args[flag]:g}")
    for flag in ("classroom_layers", "classroom_features", "classroom_mixes"):
        if flag in args and "classroom_epochs" not in args:
            refuse(flag, "needs --classroom-epochs")
    if args.get("refit_on_valid") and "unfreeze" in args:
        refuse("refit-on-valid", "refits the probe and the distillation, not --unfreeze's fine-tuning: leave one out")
    finetune = {FINETUNE_FLAGS[f]: args.pop(f) for f in list(args) if f in FINETUNE_FLAGS}
    return TrainConfig(**{**entry.training, **args, "finetune": finetune})
