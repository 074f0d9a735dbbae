"""The last stage of the musicnn recipe: distillation, so the genre holds when the music crosses a room.

Teacher-student distillation (Hinton, Vinyals & Dean 2015; the clean-teacher / noisy-student form of Li et al.,
"Robust speech recognition using generalized distillation", 2017): the model the probe made, frozen, hears a clean
window (the teacher); a copy of it (the student) hears the same window played through a fresh simulated room
(`train.rooms`: new room, devices, noise and level for every window of every epoch) and learns the teacher's genre
probabilities and MSD tags, plus the label. A share of each batch is heard clean, so clean accuracy holds.

The whole network trains with the head (the probe alone cannot help: the frozen backbone's features already move in
a room), in float, the int8 front end switched off until the end; batch norms keep their pretrained statistics (a few
hundred clips are too few to re-estimate them), dropout is on. The epoch with the best mean of clean and
simulated-room balanced accuracy on valid is kept; afterwards the int8 ranges are calibrated again.

Under torchrun the student is wrapped in DDP: each process draws its own windows and rooms (batch_windows each, the
epoch's steps divided among the processes), the gradients are averaged; valid is scored in shares and gathered, so
every process keeps the same epoch.
"""

from __future__ import annotations

import copy
import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.distributed import Processes
from genre_model.inference import GenreClassifier
from genre_model.models import MusicnnGenre

from .data import balanced_draw
from .metrics import BestEpoch, balanced_accuracy, summarize
from .probe import CPU, ONE, calibrate_int8_on_clips, room_copies, say
from .rooms import play_in_room


@dataclass
class DistillConfig:
    epochs: int = 4
    windows_per_clip: int = 4  # per training clip per epoch
    batch_windows: int = 16
    lr: float = 2e-5  # pretrained layers: small steps keep what musicnn learnt from a million songs
    head_lr: float = 2e-4
    weight_decay: float = 1e-2
    clean_share: float = 0.25  # of each batch, heard clean
    label_weight: float = 0.5  # cross-entropy with the label, beside the teacher's soft targets
    tag_weight: float = 0.5  # the MSD tags stay the teacher's, so the app can still show them
    context_s: float = 1.5  # audio before the window whose reverberation rings into it
    same_kind: float = 0.0  # share of rooms where one kind of device plays and hears (`train.rooms`)
    workers: int | None = None  # processes simulating the rooms beside training (None: the cores but one; 0: none)


def train_mode_keeping_statistics(model: nn.Module) -> None:
    model.eval()  # batch norms keep their pretrained statistics (too few clips to re-estimate them)...
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.train()  # ...dropout is on


def _room_windows(
    waves: list[Waveform], clips: np.ndarray, cfg: DistillConfig, win: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """A random window of each chosen clip, clean (B, win), and as heard in a fresh simulated room (B, win) for all
    but the first ``clean_share`` of them."""
    sr = waves[0].sample_rate
    context = int(cfg.context_s * sr)
    clean, heard = np.zeros((len(clips), win), np.float32), np.zeros((len(clips), win), np.float32)
    n_clean = int(round(cfg.clean_share * len(clips)))
    for row, c in enumerate(clips):
        samples = waves[c].samples
        start = int(rng.integers(0, max(1, len(samples) - win + 1)))
        segment, n = samples[max(0, start - context) : start + win], min(win, len(samples) - start)
        clean[row, :n] = segment[len(segment) - n :]
        if row < n_clean:
            heard[row] = clean[row]
        else:
            played = play_in_room(segment, sr, seed=int(rng.integers(2**31)), same_kind=cfg.same_kind)
            heard[row, :n] = played[len(segment) - n :]
    return clean, heard


class _RoomBatches(torch.utils.data.IterableDataset):
    """Every step's batch of the run, (clips, clean windows, windows heard in rooms), each drawn from its own
    seed (run seed, step): the same batches whether DataLoader workers share the steps or the training loop makes
    them itself, so the room simulator runs on the spare cores without changing what is learnt."""

    def __init__(self, waves: list[Waveform], draw: np.ndarray, cfg: DistillConfig, win: int, seed: int, steps: int):
        super().__init__()
        self.waves, self.draw, self.cfg, self.win, self.seed, self.steps = waves, draw, cfg, win, seed, steps

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        first, every = (worker.id, worker.num_workers) if worker else (0, 1)
        for step in range(first, self.steps, every):  # the loader takes the workers in turn: steps stay in order
            rng = np.random.default_rng([self.seed, step])
            clips = rng.choice(len(self.waves), size=self.cfg.batch_windows, p=self.draw)
            clean, heard = _room_windows(self.waves, clips, self.cfg, self.win, rng)
            yield clips, torch.from_numpy(clean), torch.from_numpy(heard)


def clip_probabilities(model: MusicnnGenre, waves: list[Waveform], procs: Processes = ONE) -> np.ndarray:
    """(clips, genres), as the app computes them (with the int8 front end if it is switched on); each process
    scores its share, every process gets all."""
    classifier = GenreClassifier(model.eval(), model.config.arch, model.head[1].weight.device)
    mine = procs.shard(waves)
    return np.array(
        procs.gather(
            [
                list(p.probabilities.values())
                for i in range(0, len(mine), 16)
                for p in classifier.predict_many(mine[i : i + 16])
            ]
        )
    )


class _Student(nn.Module):
    """Windows (B, samples) -> genre logits and tag logits: one module, so DDP synchronises all its gradients."""

    def __init__(self, model: MusicnnGenre):
        super().__init__()
        self.model = model

    def forward(self, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return _outputs(self.model, windows)


def _outputs(model: MusicnnGenre, windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    tags, penultimate = model.backbone(model.to_logmel(windows))
    return model.head(penultimate), tags


def distill(
    model: MusicnnGenre,
    train: tuple[list[Waveform], list[int]],
    valid: tuple[list[Waveform], list[int]] | None,
    seed: int,
    cfg: DistillConfig,
    device: torch.device = CPU,
    procs: Processes = ONE,
) -> tuple[list, dict]:
    """Distil ``model`` (its head fitted by the probe) into a room-robust version of itself, in place. ``train``
    holds clean clips only. Returns per-epoch history and the scores of the kept epoch. Without ``valid`` (the refit
    on train + valid, `train.pretrained`) every epoch runs, the last is kept and only train is scored."""
    waves, y = train[0], np.asarray(train[1])
    win = model.config.window_samples
    torch.manual_seed(seed + procs.rank)
    teacher = copy.deepcopy(model).eval()  # keeps the int8 front end, if on: it needs no gradient
    if valid:
        valid_y = np.asarray(valid[1])
        valid_rooms = room_copies(valid[0], 10_000 + seed, bank=1, procs=procs)  # rooms unlike training's

    def valid_scores() -> dict:
        if not valid:
            return {}
        clean = balanced_accuracy(valid_y, clip_probabilities(model, valid[0], procs).argmax(axis=1))
        room = balanced_accuracy(valid_y, clip_probabilities(model, valid_rooms, procs).argmax(axis=1))
        return {"valid_balanced_accuracy": clean, "valid_rooms_balanced_accuracy": room, "mean": (clean + room) / 2}

    model.backbone.use_int8(False)  # the student's front end learns: float, with gradients
    model.backbone.tags.requires_grad_(False)  # the MSD tag layer stays; the layers under it keep its tags
    pretrained = [p for p in model.backbone.parameters() if p.requires_grad]
    student = _Student(model)
    if procs.distributed:
        student = DistributedDataParallel(student, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = torch.optim.AdamW(
        [{"params": pretrained, "lr": cfg.lr}, {"params": model.head.parameters(), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    steps = max(1, len(waves) * cfg.windows_per_clip // (cfg.batch_windows * procs.world_size))
    batches = _RoomBatches(waves, balanced_draw(y), cfg, win, seed + procs.rank, cfg.epochs * steps)
    workers = max(0, (os.cpu_count() or 1) // procs.world_size - 1) if cfg.workers is None else cfg.workers
    stream = iter(torch.utils.data.DataLoader(batches, batch_size=None, num_workers=workers))

    first = valid_scores()
    history, best = [{"epoch": 0, **first}], BestEpoch()
    if valid:
        best.offer(0, (first["mean"],), model)
    say(procs, f"distillation epoch 0 (the probe): {first}")
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="distillation", unit="epoch", disable=not procs.is_main):
        train_mode_keeping_statistics(model)
        losses = []
        for _ in tqdm(range(steps), desc=f"epoch {epoch}", unit="batch", leave=False, disable=not procs.is_main):
            clips, clean, heard = next(stream)
            clips, clean, heard = clips.numpy(), clean.to(device), heard.to(device)
            with torch.no_grad():
                teacher_logits, teacher_tags = _outputs(teacher, clean)
            logits, tags = student(heard)
            loss = F.kl_div(F.log_softmax(logits, -1), F.softmax(teacher_logits, -1), reduction="batchmean")
            loss = loss + cfg.label_weight * F.cross_entropy(logits, torch.from_numpy(y[clips]).to(device))
            if model.tag_names:
                loss = loss + cfg.tag_weight * F.binary_cross_entropy_with_logits(tags, torch.sigmoid(teacher_tags))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        train_loss = procs.mean(torch.tensor([sum(losses), len(losses)], dtype=torch.float64))
        row = {"epoch": epoch, "train_loss": train_loss, **valid_scores()}
        history.append(row)
        say(procs, f"distillation epoch {epoch}: {row}")
        if valid:
            best.offer(epoch, (row["mean"],), model)
    best.restore(model)  # without valid: the last epoch, as it is
    model.backbone.tags.requires_grad_(True)
    model.eval()
    calibrate_int8_on_clips(model, waves + room_copies(waves, seed, procs=procs), device, procs=procs)
    genres = model.config.genres
    history.append({"distill": asdict(cfg), "best_epoch": best.epoch if valid else cfg.epochs})
    scores = {"train": summarize(y.tolist(), clip_probabilities(model, waves, procs).argmax(axis=1).tolist(), genres)}
    if not valid:
        return history, scores
    valid_probs = clip_probabilities(model, valid[0], procs)
    rooms_pred = clip_probabilities(model, valid_rooms, procs).argmax(axis=1)
    return history, {
        **scores,
        "valid": summarize(valid_y.tolist(), valid_probs.argmax(axis=1).tolist(), genres),
        "valid_rooms": summarize(valid_y.tolist(), rooms_pred.tolist(), genres),
        "valid_probs": valid_probs,
    }
