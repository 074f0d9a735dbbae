"""``python -m train.detector --model weights/musicnn-genre --data DIR --split-dir DIR``: fit the room detector
(`genre_model.routing.RoomDetector`) on the train clips (clean) and room copies of them (the room simulator), check
it on valid (clean, and room copies from rooms training never drew) and save it beside the clean model, which
``auto`` routing reads it from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from genre_model.audio import Waveform
from genre_model.inference import GenreClassifier
from genre_model.routing import RoomDetector, band_statistics

from .data import WaveformCache, scan_dataset, split_clips
from .probe import fit_logistic, room_copies


@torch.inference_mode()
def window_statistics(classifier: GenreClassifier, waves: list[Waveform]) -> list[np.ndarray]:
    """`band_statistics` of every model window of each clip, as the classifier's front end hears it."""
    stats = []
    for wave in waves:
        windows = torch.from_numpy(classifier.all_windows(wave.samples))
        stats.append(band_statistics(classifier.model.to_logmel(windows).float().numpy()))
    return stats


def fit_detector(arch: str, clean: list[np.ndarray], rooms: list[np.ndarray], seed: int = 0) -> RoomDetector:
    """A `RoomDetector` from the windows' statistics of clean clips and of room recordings."""
    x = np.concatenate(clean + rooms)
    y = np.r_[np.zeros(sum(map(len, clean)), np.int64), np.ones(sum(map(len, rooms)), np.int64)]
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    weights = np.where(y == 1, len(y) / (2 * y.sum()), len(y) / (2 * (len(y) - y.sum())))  # both kinds weigh alike
    head = fit_logistic(((x - mean) / scale).astype(np.float32), y, weights, 1e-3, seed, 2)
    w, b = head.weight.detach().numpy(), head.bias.detach().numpy()  # two-class softmax -> one logistic
    return RoomDetector(arch, mean.tolist(), scale.tolist(), (w[1] - w[0]).tolist(), float(b[1] - b[0]))


def rates(detector: RoomDetector, clean: list[np.ndarray], rooms: list[np.ndarray]) -> dict:
    """How often clean clips are called room recordings, and room recordings caught: per clip and per window."""

    def called(stats: list[np.ndarray]) -> tuple[float, float]:
        probs = [detector.window_probabilities(s) for s in stats]
        clips = np.mean([p.mean() >= detector.threshold for p in probs])
        return float(clips), float(np.mean(np.concatenate(probs) >= detector.threshold))

    (clean_clips, clean_windows), (room_clips, room_windows) = called(clean), called(rooms)
    return {
        "clean_called_room": {"clips": clean_clips, "windows": clean_windows},
        "room_caught": {"clips": room_clips, "windows": room_windows},
        "n_clips": len(clean),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.detector", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="weights/musicnn-genre", help="the clean model's folder (it gets the file)")
    parser.add_argument("--data", required=True, help="folder with <genre>/<genre>.NNNNN.<ext> clips")
    parser.add_argument("--split-dir", help="folder with {train,valid,test}_filtered.txt (else a seeded random split)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--same-kind", type=float, default=0.4, help="as the room model's room copies")
    parser.add_argument("--cache-dir", default=".cache/waveforms")
    args = parser.parse_args(argv)

    classifier = GenreClassifier.from_pretrained(args.model, device="cpu")
    splits, _ = split_clips(scan_dataset(args.data), args.split_dir, args.seed)
    cache = WaveformCache(args.cache_dir)
    waves = {
        name: cache.load_all(splits[name], classifier.sample_rate, f"decoding {name}")[1] for name in ("train", "valid")
    }
    copies = {
        "train": room_copies(waves["train"], args.seed, same_kind=args.same_kind),
        "valid": room_copies(waves["valid"], 10_000 + args.seed, bank=1),  # rooms unlike training's
    }
    stats = {
        (name, kind): window_statistics(classifier, (waves if kind == "clean" else copies)[name])
        for name in ("train", "valid")
        for kind in ("clean", "rooms")
    }
    detector = fit_detector(classifier.model.config.arch, stats["train", "clean"], stats["train", "rooms"], args.seed)
    scores = {name: rates(detector, stats[name, "clean"], stats[name, "rooms"]) for name in ("train", "valid")}
    path = detector.save(args.model)
    (Path(args.model) / "valid-detector.eval.json").write_text(json.dumps(scores, indent=1))
    print(json.dumps(scores, indent=1))
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
