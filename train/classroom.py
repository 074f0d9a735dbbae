"""Stage three of the musicnn-genre schedule: keep the genre when the music crosses a classroom.

Teacher-student distillation (Hinton, Vinyals & Dean 2015; the clean-teacher / noisy-student form of Li et al.,
"Robust speech recognition using generalized distillation", 2017): the model the probe made, frozen, hears a clean
window (the teacher); a copy of it (the student) hears the same window played through a freshly simulated classroom
(`train.degrade`: new room, devices, noise and level for every window of every epoch) and learns the teacher's genre
probabilities and MSD tags, plus the label; with ``feature_weight``, also the teacher's pooled backbone features of
the clean window (an intermediate "hint", Romero et al., "FitNets", ICLR 2015). A quarter of each batch is heard
clean, so clean accuracy holds.

The backbone's layers train with the head (the probe alone cannot help: the frozen backbone's features already move in
a room): the whole network by default (in float, the int8 front end switched off until the end), or only the mid
and back end (``trained="midend"``, 3-4x faster: the front end runs as the probe left it); batch norms keep their
pretrained statistics (350 clips are too few to re-estimate them), dropout is on.
The epoch with the best mean of clean and classroom balanced accuracy on valid is kept; afterwards the int8 ranges
are recalibrated on the new front end.

Under torchrun the student is wrapped in DDP: each process draws its own windows and classrooms (batch_windows each,
the epoch's steps divided among the processes), the gradients are averaged; valid is scored in shares and gathered,
so every process keeps the same epoch.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from genre_model.audio import Waveform
from genre_model.distributed import Processes
from genre_model.inference import GenreClassifier
from genre_model.models import MusicnnGenre

from .degrade import degrade
from .finetune import set_trainable, train_mode_keeping_statistics, trained_forward
from .metrics import balanced_accuracy, summarize
from .probe import CPU, ONE, calibrate_int8, degraded_copies

TRAINED = {  # the backbone's layers each setting trains (the genre head always trains)
    "backend": ("pool_bn", "dense", "dense_bn"),
    "midend": ("midend", "pool_bn", "dense", "dense_bn"),
    "all": ("input_bn", "frontend", "midend", "pool_bn", "dense", "dense_bn"),
}


@dataclass
class ClassroomConfig:
    epochs: int = 6
    trained: str = "all"  # see TRAINED
    windows_per_clip: int = 4  # per training clip per epoch
    batch_windows: int = 16
    lr: float = 2e-5  # pretrained layers: small steps keep what musicnn learnt from a million songs
    head_lr: float = 2e-4
    weight_decay: float = 1e-2
    clean_share: float = 0.25  # of each batch, heard clean
    label_weight: float = 0.5  # cross-entropy with the label, beside the teacher's soft targets
    tag_weight: float = 0.5  # the MSD tags stay the teacher's, so the app can still show them
    feature_weight: float = 0.0  # mean squared distance of the student's pooled backbone features from the teacher's
    context_s: float = 1.5  # audio before the window whose reverberation rings into it
    same_kind: float = 0.0  # share of classrooms where one kind of device plays and hears (`train.degrade`)
    mix_share: float = 0.0  # share of windows that mix in a second clip (`_mixed`): more distinct inputs to distil


def _mixed(first: np.ndarray, second: np.ndarray, share: float) -> np.ndarray:
    """The last samples the two have in common, ``second`` mixed into ``first`` at ``share`` of the amplitude (each
    scaled to unit RMS first), at ``first``'s level. The teacher hears such a mix clean and answers for it; the label
    stays ``first``'s, the louder."""
    n = min(len(first), len(second))
    first, second = first[len(first) - n :], second[len(second) - n :]
    rms = [max(float(np.sqrt(np.mean(x**2))), 1e-6) for x in (first, second)]
    return ((1 - share) * first + share * second * rms[0] / rms[1]).astype(np.float32)


def _classroom_windows(waves: list[Waveform], clips: np.ndarray, cfg: ClassroomConfig, win: int,
                       rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A random window of each chosen clip, clean (B, win), and as heard in a fresh random classroom (B, win)
    for all but the first ``clean_share`` of them. A ``mix_share`` of the windows, drawn at random, first mix in a
    window of another clip at 15-45% (`_mixed`; each window ends its segment, so they are aligned at the end)."""
    sr = waves[0].sample_rate
    context = int(cfg.context_s * sr)
    clean, heard = np.zeros((len(clips), win), np.float32), np.zeros((len(clips), win), np.float32)
    n_clean = int(round(cfg.clean_share * len(clips)))

    def segment_of(samples: np.ndarray) -> tuple[np.ndarray, int]:  # (context + window, the window's length)
        start = int(rng.integers(0, max(1, len(samples) - win + 1)))
        return samples[max(0, start - context) : start + win], min(win, len(samples) - start)

    for row, c in enumerate(clips):
        segment, n = segment_of(waves[c].samples)
        if cfg.mix_share and rng.random() < cfg.mix_share:  # (no draw when off: the same classrooms as before)
            other, m = segment_of(waves[int(rng.integers(len(waves)))].samples)
            segment, n = _mixed(segment, other, float(rng.uniform(0.15, 0.45))), min(n, m)
        clean[row, :n] = segment[len(segment) - n :]
        if row < n_clean:
            heard[row] = clean[row]
        else:
            played = degrade(segment, sr, seed=int(rng.integers(2**31)), same_kind=cfg.same_kind)
            heard[row, :n] = played[len(segment) - n :]
    return clean, heard


def _clip_probabilities(model: MusicnnGenre, waves: list[Waveform], procs: Processes) -> np.ndarray:
    """(clips, genres), as the app computes them (with the int8 front end if it is switched on); each process
    scores its share, every process gets all."""
    classifier = GenreClassifier(model.eval(), model.config.arch, model.head[1].weight.device)
    mine = procs.shard(waves)
    return np.array(procs.gather([list(p.probabilities.values()) for i in range(0, len(mine), 16)
                                  for p in classifier.predict_many(mine[i : i + 16])]))  # fmt: skip


def _predicted(model: MusicnnGenre, waves: list[Waveform], procs: Processes) -> np.ndarray:
    return _clip_probabilities(model, waves, procs).argmax(axis=1)


def _outputs(
    model: MusicnnGenre, windows: torch.Tensor, front_trained: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Windows (B, samples) -> genre logits (B, genres), tag logits (B, 50) and the pooled backbone features
    (B, 1506). A front end that is not trained runs without gradients, as at inference (int8 where it can): the
    ranges calibrated for it still hold."""
    with torch.set_grad_enabled(front_trained and torch.is_grad_enabled()):
        front = model.backbone.front_end(model.to_logmel(windows))
    pooled = model.backbone.pooled(front)
    tags, penultimate = model.backbone.from_pooled(pooled)
    return model.head(penultimate), tags, pooled


def classroom_finetune(model: MusicnnGenre, train: tuple[list[Waveform], list[int]],
                       valid: tuple[list[Waveform], list[int]] | None, seed: int, cfg: ClassroomConfig,
                       device: torch.device = CPU, procs: Processes = ONE) -> tuple[list, dict]:  # fmt: skip
    """Distil ``model`` (its head fitted by the probe) into a classroom-robust version of itself, in place.
    ``train`` holds clean clips only. Returns per-epoch history and the scores of the kept epoch. Without ``valid``
    (the refit on train + valid, `train.fit`) every epoch runs, the last is kept and only train is scored."""
    if cfg.trained not in TRAINED:
        raise ValueError(f"trained must be one of {list(TRAINED)}, not {cfg.trained!r}")
    waves, y = train[0], np.asarray(train[1])
    n_genres, win = len(model.config.genres), model.config.window_samples
    rng = np.random.default_rng(seed + procs.rank)
    torch.manual_seed(seed + procs.rank)
    teacher = copy.deepcopy(model).eval()  # keeps the int8 front end, if on: it needs no gradient
    if valid:
        valid_y = np.asarray(valid[1])
        valid_classroom = degraded_copies(valid[0], 10_000 + seed, bank=1, procs=procs)  # rooms unlike training's

    def valid_scores() -> dict:
        if not valid:
            return {}
        clean = balanced_accuracy(valid_y, _predicted(model, valid[0], procs))
        room = balanced_accuracy(valid_y, _predicted(model, valid_classroom, procs))
        return {"valid_balanced_accuracy": clean, "valid_classroom_balanced_accuracy": room, "mean": (clean + room) / 2}

    pretrained = set_trainable(model, TRAINED[cfg.trained])
    frozen_front = "frontend" not in TRAINED[cfg.trained]
    if not frozen_front:
        model.backbone.use_int8(False)  # the student's front end learns: float, with gradients
    student = trained_forward(model, partial(_outputs, front_trained=not frozen_front), device, procs)
    optimizer = torch.optim.AdamW(
        [{"params": pretrained, "lr": cfg.lr}, {"params": model.head.parameters(), "lr": cfg.head_lr}],
        weight_decay=cfg.weight_decay,
    )
    # genre-balanced: every genre is drawn equally often, whatever its clip count
    counts = np.bincount(y, minlength=n_genres)
    draw = 1.0 / counts[y]
    draw /= draw.sum()
    steps = max(1, len(waves) * cfg.windows_per_clip // (cfg.batch_windows * procs.world_size))

    first = valid_scores()
    history = [{"epoch": 0, **first}]
    best = (first["mean"], 0, copy.deepcopy(model.state_dict())) if valid else None
    tqdm.write(f"classroom epoch 0 (the probe): {first}")
    for epoch in tqdm(range(1, cfg.epochs + 1), desc="classroom distillation", unit="epoch"):
        train_mode_keeping_statistics(model)
        losses = []
        for _ in tqdm(range(steps), desc=f"epoch {epoch}", unit="batch", leave=False):
            clips = rng.choice(len(waves), size=cfg.batch_windows, p=draw)
            clean, heard = (torch.from_numpy(a).to(device) for a in _classroom_windows(waves, clips, cfg, win, rng))
            with torch.no_grad():
                teacher_logits, teacher_tags, teacher_pooled = _outputs(teacher, clean)
            logits, tags, pooled = student(heard)
            loss = F.kl_div(F.log_softmax(logits, -1), F.softmax(teacher_logits, -1), reduction="batchmean")
            loss = loss + cfg.label_weight * F.cross_entropy(logits, torch.from_numpy(y[clips]).to(device))
            loss = loss + cfg.feature_weight * F.mse_loss(pooled, teacher_pooled)
            if model.tag_names:
                loss = loss + cfg.tag_weight * F.binary_cross_entropy_with_logits(tags, torch.sigmoid(teacher_tags))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        train_loss = procs.mean(torch.tensor([sum(losses), len(losses)], dtype=torch.float64))
        row = {"epoch": epoch, "train_loss": train_loss, **valid_scores()}
        history.append(row)
        tqdm.write(f"classroom epoch {epoch}: {row}")
        if best and row["mean"] > best[0]:
            best = (row["mean"], epoch, copy.deepcopy(model.state_dict()))
    if best:
        model.load_state_dict(best[2])  # else (no valid): the last epoch, as it is
    for p in model.parameters():
        p.requires_grad_(True)
    model.eval()
    if not frozen_front:  # the front end moved: new int8 ranges
        calibrate_int8(model, waves + degraded_copies(waves, seed, procs=procs), device, procs=procs)
    genres = model.config.genres
    history.append({"classroom": asdict(cfg), "best_epoch": best[1] if best else cfg.epochs})
    scores = {"train": summarize(y.tolist(), _predicted(model, waves, procs).tolist(), genres)}
    if not valid:
        return history, scores
    valid_probs = _clip_probabilities(model, valid[0], procs)
    return history, {
        **scores,
        "valid": summarize(valid_y.tolist(), valid_probs.argmax(axis=1).tolist(), genres),
        "valid_classroom": summarize(valid_y.tolist(), _predicted(model, valid_classroom, procs).tolist(), genres),
        "valid_probs": valid_probs,
    }
