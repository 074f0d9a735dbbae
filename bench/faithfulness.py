"""Do the explanations point at what the model uses? Two checks, reported by ``python -m bench``:

- Deletion: set the 10% of log-mel bins with the most evidence for the predicted genre to the silence level and
  re-classify; its probability must fall much more than when 10% of the bins, chosen at random, are silenced.
- Difference: the maps of the top two genres (each against the other genres) must not be the same picture.

Each is measured for the app's map (the predicted genre against the runner-up, signed) and for the map the app
showed before (the predicted genre's log-odds, positive evidence only), on GTZAN valid clips where the team's copy
is there, else on the example clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genre_model.explain import OTHERS, Explanation, explain
from genre_model.inference import GenreClassifier

ROOT = Path(__file__).resolve().parents[1]
VALID = ROOT.parent / "shared" / "gtzan"
FRACTIONS = (0.01, 0.1)  # the 10%, and 1%: for this model silencing 10% of bins anywhere is already drastic


@torch.inference_mode()
def _probability_after_silencing(classifier: GenreClassifier, e: Explanation, genre: int, mask: np.ndarray) -> float:
    """The clip's probability of ``genre`` once the bins in ``mask`` (windows, mels, frames) are set to silence."""
    logmels = e.window_logmels.copy()
    floor = logmels.min(axis=(1, 2), keepdims=True)
    logmels = np.where(mask, floor, logmels)
    probs = torch.softmax(classifier.model.classify(torch.from_numpy(logmels).to(classifier.device)), dim=-1)
    return float(probs.mean(dim=0)[genre])


def _top(evidence: np.ndarray, fraction: float) -> np.ndarray:
    return evidence >= np.quantile(evidence, 1 - fraction)


def clip_checks(classifier: GenreClassifier, audio, rng: np.random.Generator) -> dict:
    app_map = explain(classifier, audio)  # the predicted genre against the runner-up
    genres = classifier.genres
    first, second = (g for g, _ in app_map.prediction.top(2))
    target = genres.index(first)
    log_odds = explain(classifier, audio, genre=first, versus=OTHERS)
    second_log_odds = explain(classifier, audio, genre=second, versus=OTHERS)
    before = np.clip(log_odds.window_evidence, 0, None)  # what the app showed before: positive evidence only
    p = app_map.prediction.probabilities[first]

    def drop(mask: np.ndarray) -> float:
        return p - _probability_after_silencing(classifier, app_map, target, mask)

    row = {"p": p}
    for f in FRACTIONS:
        row[f"top_app_{f}"] = drop(_top(app_map.window_evidence, f))
        row[f"top_before_{f}"] = drop(_top(before, f))
        row[f"random_{f}"] = float(np.mean([drop(rng.random(before.shape) < f) for _ in range(3)]))
    return {
        **row,
        "corr_top_two_app": float(np.corrcoef(log_odds.evidence.ravel(), second_log_odds.evidence.ravel())[0, 1]),
        "corr_top_two_before": float(
            np.corrcoef(before.ravel(), np.clip(second_log_odds.window_evidence, 0, None).ravel())[0, 1]
        ),
    }


def clips(n: int) -> tuple[str, list]:
    """Up to ``n`` GTZAN valid clips where the team's copy is there, else the committed examples."""
    if (VALID / "splits" / "valid_filtered.txt").exists():
        ids = [
            line.strip().split("/")[-1].rsplit(".", 1)[0]
            for line in (VALID / "splits" / "valid_filtered.txt").read_text().split()
        ]
        files = {p.name.rsplit(".", 1)[0]: p for p in (VALID / "audio").glob("*/*.*")}
        found = [files[i] for i in ids if i in files]
        return "GTZAN valid", found[:: max(1, len(found) // n)][:n]
    return "examples/", sorted((ROOT / "examples").glob("*.ogg"))[:n]


def faithfulness(classifier: GenreClassifier, n_clips: int = 12) -> dict:
    source, paths = clips(n_clips)
    rng = np.random.default_rng(0)
    rows = [clip_checks(classifier, str(path), rng) for path in paths]
    mean = {key: round(float(np.mean([r[key] for r in rows])), 4) for key in rows[0]}
    return {
        "clips": f"{len(rows)} from {source}",
        "mean_probability_of_predicted_genre": mean["p"],
        "probability_drop_when_silencing": {
            f"{f:.0%} of bins": {
                "top_evidence_app_map": mean[f"top_app_{f}"],
                "top_evidence_before": mean[f"top_before_{f}"],
                "random": mean[f"random_{f}"],
            }
            for f in FRACTIONS
        },
        "top_two_genre_maps_correlation": {
            "signed_each_against_the_others": mean["corr_top_two_app"],
            "before_positive_only": mean["corr_top_two_before"],
        },
    }
