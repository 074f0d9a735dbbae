"""``python -m train pretrained ...``: a genre head on a pretrained backbone (musicnn's), made to hold in rooms.

The schedule: room copies of every training clip (`train.probe.room_copies`: each clip played through the room
simulator), the linear probe on the frozen backbone over clean clips and copies (`train.probe`), then distillation
of the whole network through fresh simulated rooms (`train.distill`). With ``refit_on_valid``, the schedule then
runs again from the start on train + valid with the choices valid made (the probe's weight decay, the kept
distillation epoch): more data for the published weights, while the valid scores reported stay those of the run
that never saw valid. Under torchrun every stage shares its work among the processes.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from genre_model.distributed import Processes, processes
from genre_model.models import MusicnnGenre

from .distill import DistillConfig, distill
from .fit import Labelled, RunConfig, flag, prepare, save
from .probe import WEIGHT_DECAYS, fit_head, load_backbone, room_copies, say


@dataclass
class PretrainedConfig(RunConfig):
    """The pretrained recipe; its defaults are the committed model's."""

    model: str = field(
        default="musicnn-genre",
        metadata=flag('the architecture: musicnn-genre, or any registered with recipe "pretrained"'),
    )
    room_copies: int = field(default=4, metadata=flag("room copies of each training clip for the probe (0 = none)"))
    same_kind: float = field(
        default=0.4,
        metadata=flag(
            "share of the room copies (and of distillation's rooms) "
            "where one kind of device plays and hears, phone to phone "
            "or laptop to laptop"
        ),
    )
    distill_epochs: int = field(default=4, metadata=flag("epochs of distillation after the probe (0 = none)"))
    refit_on_valid: bool = field(
        default=True,
        metadata=flag(
            "after choosing on valid, run the schedule again on "
            "train + valid; the valid scores reported are from "
            "before"
        ),
    )

    def __post_init__(self):
        if not 0 <= self.same_kind <= 1:
            raise SystemExit(f"error: --same-kind is a share from 0 to 1, not {self.same_kind:g}")


def schedule(
    model: MusicnnGenre, cfg: PretrainedConfig, train: Labelled, valid: Labelled, device: torch.device, procs: Processes
) -> tuple[list, dict]:
    """The whole schedule, refit included (see the module's docstring); returns the history and the scores."""
    if not cfg.init:
        load_backbone(model)
    refit = cfg.refit_on_valid and cfg.distill_epochs > 0
    start = copy.deepcopy(model.state_dict()) if refit else None
    history, scores = _once(model, cfg, train, valid, device, procs, refit_head=cfg.refit_on_valid and not refit)
    if refit:
        decay = next(row["chosen_weight_decay"] for row in history if "chosen_weight_decay" in row)
        epochs = history[-1]["best_epoch"]
        say(procs, f"refit on train + valid: weight decay {decay:g}, {epochs} distillation epoch(s)")
        model.load_state_dict(start)
        model.backbone.use_int8(False)  # quantized again from the restored weights by the probe's calibration
        both = (train[0] + valid[0], train[1] + valid[1])
        again, refitted = _once(model, replace(cfg, distill_epochs=epochs), both, None, device, procs, (decay,))
        history.append(
            {
                "refit_on": "train+valid",
                "weight_decay": decay,
                "distill_epochs": epochs,
                "train_and_valid": refitted["train"],
                "epochs": [row for row in again if "epoch" in row],
            }
        )
    return history, scores


def _once(
    model: MusicnnGenre,
    cfg: PretrainedConfig,
    train: Labelled,
    valid: Labelled | None,
    device: torch.device,
    procs: Processes,
    decays: tuple[float, ...] = WEIGHT_DECAYS,
    refit_head: bool = False,
) -> tuple[list, dict]:
    """The stages once. Without ``valid`` (the refit) the probe scores train in its place, which chooses nothing
    when ``decays`` holds one, and distillation runs all ``cfg.distill_epochs``."""
    clean, cache = train, Path(cfg.cache_dir).parent
    for j in range(cfg.room_copies):  # copy j of clip i: seed + 100 000 j + i
        more = room_copies(clean[0], cfg.seed + 100_000 * j, procs=procs, same_kind=cfg.same_kind)
        train = (train[0] + more, train[1] + clean[1])
    history, scores = fit_head(
        model, train, valid or clean, len(clean[0]), cfg.seed, refit_head, cache / "features", device, procs, decays
    )
    if cfg.distill_epochs:
        stage = DistillConfig(epochs=cfg.distill_epochs, same_kind=cfg.same_kind)
        more, scores = distill(model, clean, valid, cfg.seed, stage, device, procs)
        history += more
    return history, scores


def train(cfg: PretrainedConfig) -> dict:
    """Train, evaluate, save into ``cfg.out`` (rank 0 under torchrun); returns the metrics (other ranks: history)."""
    with processes() as procs:
        model, device, data = prepare(cfg, cfg.model, procs)
        started = time.perf_counter()
        history, scores = schedule(model, cfg, data.train, data.valid, device, procs)
        best_epoch = next((row["best_epoch"] for row in reversed(history) if "best_epoch" in row), 0)
        run = {"world_size": procs.world_size, "device": str(device), "best_epoch": best_epoch, "history": history}
        if not procs.is_main:
            return run
        return save(model, "pretrained", cfg, data, run, scores, started, summary(cfg, history))


def summary(cfg: PretrainedConfig, history: list[dict]) -> str:
    """How the model was made, in words, for its card."""
    start = f"the trained model in `{cfg.init}`" if cfg.init else "the pretrained backbone"
    text = f"A linear genre head fitted on the frozen features of {start}"
    if cfg.room_copies:
        text += (
            f", over the training clips and {cfg.room_copies} room copies of each (the room simulator: speaker, "
            f"room, noise, microphone; {cfg.same_kind:.0%} of them one kind of device end to end)"
        )
    decay = next((row["chosen_weight_decay"] for row in history if "chosen_weight_decay" in row), None)
    text += f"; weight decay {decay:g} chosen on valid." if decay is not None else "."
    distilled = next((row for row in history if "distill" in row), None)
    if distilled:
        text += (
            " Then the whole network was distilled through simulated rooms: the model so far, on the clean "
            "window, taught a copy of itself hearing that window through a fresh simulated room (best valid "
            f"epoch {distilled['best_epoch']} of {distilled['distill']['epochs']} by the mean of clean and "
            "simulated-room balanced accuracy; epoch 0 is the head alone)."
        )
    if any("refit_on" in row for row in history):
        text += (
            " All of it then ran again from the start on train + valid with those choices, so the valid scores "
            "below are those of the run that chose them, before valid joined training."
        )
    return text
