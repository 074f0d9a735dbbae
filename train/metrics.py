"""Clip-level scores with honest uncertainty: accuracy (Wilson 95% CI), balanced accuracy (bootstrap 95% CI),
per-genre precision/recall/F1 and the confusion matrix; and `BestEpoch`, the early-stopping choice every
training loop makes."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch


def wilson_interval(correct: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (0.0, 0.0)
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean recall over the classes present in ``y_true``."""
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def summarize(y_true: list[int], y_pred: list[int], genres: list[str], n_boot: int = 1000) -> dict:
    """All scores for one set of clip predictions (indices into ``genres``)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    n, correct = len(t), int((t == p).sum())
    confusion = np.zeros((len(genres), len(genres)), dtype=int)
    np.add.at(confusion, (t, p), 1)
    rng = np.random.default_rng(0)
    boot = [balanced_accuracy(t[i], p[i]) for i in (rng.integers(0, n, n) for _ in range(n_boot))] if n else [0.0]
    per_genre = {}
    for k, genre in enumerate(genres):
        tp, support, predicted = confusion[k, k], confusion[k].sum(), confusion[:, k].sum()
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_genre[genre] = {
            "precision": float(precision),
            "recall": float(recall),
            "f1": float(f1),
            "support": int(support),
        }
    return {
        "n_clips": n,
        "accuracy": correct / n if n else 0.0,
        "accuracy_ci95": list(wilson_interval(correct, n)),
        "balanced_accuracy": balanced_accuracy(t, p) if n else 0.0,
        "balanced_accuracy_ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "per_genre": per_genre,
        "confusion": confusion.tolist(),
    }


def format_report(scores: dict, genres: list[str]) -> str:
    """A plain-text report: headline numbers, per-genre table, confusion matrix (rows = truth)."""
    lo, hi = scores["accuracy_ci95"]
    blo, bhi = scores["balanced_accuracy_ci95"]
    lines = [
        f"clips: {scores['n_clips']}",
        f"accuracy:          {scores['accuracy']:.1%}  (95% CI {lo:.1%} - {hi:.1%})",
        f"balanced accuracy: {scores['balanced_accuracy']:.1%}  (95% CI {blo:.1%} - {bhi:.1%})",
        "",
        f"{'genre':<10}{'precision':>10}{'recall':>8}{'f1':>7}{'n':>5}",
    ]
    for genre, s in scores["per_genre"].items():
        lines.append(f"{genre:<10}{s['precision']:>10.2f}{s['recall']:>8.2f}{s['f1']:>7.2f}{s['support']:>5}")
    lines += ["", "confusion (rows: true, columns: predicted)", " " * 10 + "".join(f"{g[:5]:>6}" for g in genres)]
    for genre, row in zip(genres, scores["confusion"]):
        lines.append(f"{genre:<10}" + "".join(f"{v:>6}" for v in row))
    return "\n".join(lines)


@dataclass
class BestEpoch:
    """The best-scoring epoch so far and its weights: each training loop keeps its choice here (a score compares
    as a tuple, so ties can fall to a second key). ``since`` counts the epochs without a better score."""

    score: tuple | None = None
    epoch: int = 0
    state: dict | None = None
    since: int = 0

    def offer(self, epoch: int, score: tuple, model: torch.nn.Module) -> bool:
        """Keep ``model``'s weights if ``score`` beats the best so far; returns whether it did."""
        if self.score is None or score > self.score:
            self.score, self.epoch, self.state, self.since = score, epoch, copy.deepcopy(model.state_dict()), 0
            return True
        self.since += 1
        return False

    def restore(self, model: torch.nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)
