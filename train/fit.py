"""What every training recipe shares: its common settings (`RunConfig`, and the command-line flags made from a
recipe's dataclass), its data (`prepare`) and the saved model with its metrics (`save`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from genre_model.audio import Waveform
from genre_model.base import GenreNet
from genre_model.confidence import calibrate
from genre_model.distributed import Processes
from genre_model.inference import pick_device
from genre_model.loading import load_model
from genre_model.registry import build_model

from .data import Clip, WaveformCache, genre_counts, genres_of, scan_dataset, split_clips
from .shards import is_shard_folder, load_split, split_counts, split_genres

Labelled = tuple[list[Waveform], list[int]]


CHECKPOINT = "checkpoint.pt"  # an unfinished run's state in its output folder (`train.network`)


def flag(text: str, **argparse_kwargs) -> dict:
    """A dataclass field's metadata: its ``--flag``'s help (and any other `add_argument` keyword)."""
    return {"help": text, **argparse_kwargs}


@dataclass
class RunConfig:
    data: str = field(
        metadata=flag("folder of <genre>/<genre>.NNNNN.<ext> clips, or of tar shards (python -m train.shards pack)")
    )
    out: str = field(metadata=flag("output folder, e.g. weights/chunk-cnn"))
    split_dir: str | None = field(
        default=None, metadata=flag("folder with {train,valid,test}_filtered.txt (else a seeded random split)")
    )
    seed: int = field(default=0, metadata=flag("of the random split, the initial weights and every draw"))
    device: str | None = field(
        default=None, metadata=flag("cpu, cuda, mps (default: the best available; under torchrun each rank's GPU)")
    )
    cache_dir: str = field(default=".cache/waveforms", metadata=flag("where decoded waveforms are cached"))
    init: str | None = field(
        default=None, metadata=flag("start from this trained model folder (same architecture and genres)")
    )


def add_flags(parser: argparse.ArgumentParser, config: type) -> None:
    """One ``--flag`` per field of the dataclass ``config`` that has help metadata; fields without a default are
    required. A flag not given is left out of the parsed namespace (its default is the dataclass's)."""
    for f in dataclasses.fields(config):
        if "help" not in f.metadata:
            continue
        kwargs = {k: v for k, v in f.metadata.items() if k != "help"}
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        shown = "" if required or f.default is None else f" (default: {f.default})"
        name = "--" + f.name.replace("_", "-")
        if "bool" in str(f.type):
            parser.add_argument(
                name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=f.metadata["help"] + shown
            )
            continue
        kind = int if str(f.type) == "int" else float if str(f.type) == "float" else str
        parser.add_argument(
            name, type=kind, required=required, default=argparse.SUPPRESS, help=f.metadata["help"] + shown, **kwargs
        )


def command(recipe: str, cfg: RunConfig) -> str:
    """The ``python -m train`` command line that makes ``cfg``: the recipe's own settings all written out (an
    architecture's registered defaults may differ from the dataclass's), the common ones where not the default."""
    words, common = ["python", "-m", "train", recipe], {f.name for f in dataclasses.fields(RunConfig)}
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        if "help" not in f.metadata or value is None or (value == f.default and (f.name in common or value is False)):
            continue
        name = "--" + f.name.replace("_", "-")
        words += [name] if value is True else [f"--no-{name[2:]}"] if value is False else [name, str(value)]
    return shlex.join(words)


@dataclass
class Data:
    """A run's clips: ``train`` and ``valid`` decoded and labelled (``train`` is a shard folder when it streams)."""

    genres: list[str]
    train: Labelled | str
    valid: Labelled
    counts: dict[str, dict[str, int]]
    missing: dict[str, int]


def prepare(cfg: RunConfig, arch: str, procs: Processes, stream: bool = False) -> tuple[GenreNet, torch.device, Data]:
    """The model to train (new, or ``cfg.init``'s), its device, and the data: a GTZAN-layout folder split by
    ``cfg.split_dir`` (else a seeded random split), or tar shards; with ``stream``, shards' train split is left to
    stream from its folder."""
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    device = procs.device(cfg.device) or pick_device(cfg.device)
    packed = is_shard_folder(cfg.data)
    if packed and cfg.split_dir:
        raise SystemExit("error: --split-dir does not apply to shards: `python -m train.shards pack` fixed the split.")
    if packed:
        missing, genres = {}, split_genres(cfg.data)
    else:
        splits, missing = split_clips(scan_dataset(cfg.data), cfg.split_dir, cfg.seed)
        genres = genres_of(splits["train"] + splits["valid"])  # the data's labels, not a constant
    model = initial_model(cfg.init, arch, genres) if cfg.init else build_model(arch, genres=genres)
    model = model.to(device)
    torch.manual_seed(cfg.seed + procs.rank)  # dropout and augmentation: each rank its own draws
    sr, streamed = model.config.sample_rate, packed and stream
    cache = WaveformCache(cfg.cache_dir)
    loaded: dict[str, tuple[list[Clip], list[Waveform]]] = {
        name: load_split(cfg.data, name, sr) if packed else cache.load_all(splits[name], sr, f"decoding {name}")
        for name in (("valid",) if streamed else ("train", "valid"))
    }
    counts = {name: genre_counts(clips) for name, (clips, _) in loaded.items()}
    if streamed:
        counts["train"] = split_counts(cfg.data, "train")
    if min(sum(counts["train"].values()), len(loaded["valid"][0])) < procs.world_size:
        raise SystemExit(
            f"error: need at least {procs.world_size} readable clip(s) in both the train and the valid "
            "split (one per process)."
        )
    labelled = {name: (waves, [genres.index(c.genre) for c in clips]) for name, (clips, waves) in loaded.items()}
    if procs.is_main:
        print(f"clips: {counts}; listed but absent: {missing}" + (" (train streamed from shards)" * streamed))
    train = cfg.data if streamed else labelled["train"]
    return model, device, Data(genres, train, labelled["valid"], counts, missing)


def initial_model(folder: str, arch: str, genres: list[str]) -> GenreNet:
    """``--init``: the trained model in ``folder``, checked to be the architecture and genres being trained."""
    model = load_model(folder)
    if model.config.arch != arch or list(model.config.genres) != genres:
        raise SystemExit(
            f"error: --init {folder} is a {model.config.arch} for {', '.join(model.config.genres)}; "
            f"this run trains a {arch} for {', '.join(genres)}."
        )
    return model


def save(
    model: GenreNet, recipe: str, cfg: RunConfig, data: Data, run: dict, scores: dict, started: float, summary: str
) -> dict:
    """Write ``model`` into ``cfg.out`` with its card and ``metrics.json``: the settings, the clips, ``run`` (the
    recipe's history, best epoch, world size...), the ``scores`` (with ``valid_probs``, which set the confidence
    rule and are not kept) and ``summary``, the card's words for how it was trained."""
    seconds = time.perf_counter() - started
    if not cfg.split_dir:  # the card's data paragraph names the artist-filtered split
        summary += f" Its split was a seeded random one (seed {cfg.seed}), not the artist-filtered lists."
    # valid's predictions come from before any refit on train + valid: clips it never trained on
    measured_on = f"valid: {len(data.valid[1])} clips it never trained on"
    model.config.confidence = calibrate(data.valid[1], scores.pop("valid_probs"), measured_on).to_dict()
    metrics = {
        "model": model.config.arch,
        "command": command(recipe, cfg),
        "summary": summary,
        "config": asdict(cfg),
        "clips": data.counts,
        "listed_but_absent": data.missing,
        "train_seconds": seconds,
        **run,
        **scores,  # train, valid (after a refit on train + valid: those of the run that chose its settings)
    }
    out = Path(cfg.out)
    (out / "README.md").unlink(missing_ok=True)  # save_pretrained keeps an existing card: replace it
    model.cpu().save_pretrained(out, model_card_kwargs={"metrics": metrics})
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    (out / CHECKPOINT).unlink(missing_ok=True)  # finished: the saved model is the result
    valid = metrics["valid"]
    print(
        f"saved {out}: train acc {scores['train']['accuracy']:.1%}, valid acc {valid['accuracy']:.1%} "
        f"(balanced {valid['balanced_accuracy']:.1%}), {seconds:.0f} s"
    )
    return metrics
