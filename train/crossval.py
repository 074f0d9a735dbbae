"""``python -m train.crossval --folds 4 --out runs/cv RECIPE [flags of python -m train RECIPE]``: k-fold
cross-validation over train + valid, a signal that can rank recipes where valid alone (138 clips) cannot.

Folds are genre-balanced and made of contiguous ids within each genre: GTZAN keeps an artist's clips together, so a
fold holds whole artists, much as the artist-filtered split does. Each fold trains the recipe on the others, with the
held-out fold as its valid (it picks the probe's weight decay and the kept epoch, as valid does; no refit), and is
scored clean and through random simulated rooms (`train.evaluate --rooms`). Prints and saves
``OUT/crossval.json``: each fold's balanced accuracy, their mean and spread; and ``OUT/predictions.json``: every clip's
label and probabilities while held out, for ``python -m train.calibrate``. A fold finished once is read back from
``OUT/foldN/held_out.json`` when the same command runs again, so a stopped run goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from dataclasses import replace
from pathlib import Path

from genre_model.inference import GenreClassifier

from .calibrate import save_predictions
from .cli import parse_args, run
from .data import Clip, scan_dataset, split_clips
from .evaluate import evaluate


def folds(clips: list[Clip], k: int) -> list[list[Clip]]:
    """``k`` folds: each genre's clips in id order cut into ``k`` contiguous runs, run i of every genre in fold i."""
    out: list[list[Clip]] = [[] for _ in range(k)]
    for genre in sorted({c.genre for c in clips}):
        members = sorted((c for c in clips if c.genre == genre), key=lambda c: c.id)
        for i in range(k):
            out[i] += members[i * len(members) // k : (i + 1) * len(members) // k]
    return out


def write_split(folder: Path, train: list[Clip], valid: list[Clip]) -> Path:
    """The split as ``python -m train --split-dir`` reads it (ids by line; test empty)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, members in (("train", train), ("valid", valid), ("test", [])):
        (folder / f"{name}_filtered.txt").write_text("".join(f"{c.genre}/{c.id}.wav\n" for c in members))
    return folder


def summary(scores: list[float]) -> dict:
    return {"folds": scores, "mean": statistics.mean(scores), "spread": statistics.pstdev(scores)}


def held_out_scores(cfg, recipe: list[str], out: Path, split_dir: Path, held_out: list[Clip]) -> dict:
    """The fold trained on ``split_dir``'s train and scored on ``held_out``, or read back from ``out/held_out.json``
    where an earlier run of the same command finished it: a recipe of hours a fold can run over several sittings."""
    saved = out / "held_out.json"
    if saved.exists():
        scored = json.loads(saved.read_text())
        if scored["command"] != recipe:
            raise SystemExit(
                f"{out} holds a fold of another command ({' '.join(scored['command'])}): use another --out"
            )
        print(f"{out.name}: read back from {saved}")
        return scored
    fold_cfg = replace(cfg, out=str(out), split_dir=str(split_dir))
    if hasattr(fold_cfg, "refit_on_valid"):
        fold_cfg = replace(fold_cfg, refit_on_valid=False)  # the held-out fold must stay held out
    run(fold_cfg)
    classifier = GenreClassifier.from_pretrained(out, device=cfg.device)
    scored = {"command": recipe, "predictions": {}}
    for name in ("clean", "rooms"):
        fold_scores, _, scored["predictions"][name] = evaluate(classifier, held_out, rooms=name == "rooms")
        scored[name] = fold_scores["balanced_accuracy"]
    saved.write_text(json.dumps(scored, default=float))
    return scored


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.crossval", description=__doc__.split("\n\n")[0])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--out", required=True, help="each fold's model goes to OUT/foldN, the scores to OUT")
    args, recipe = parser.parse_known_args(argv)
    cfg = parse_args([*recipe, "--out", str(Path(args.out) / "fold0")])
    if args.folds < 2:
        parser.error("--folds needs at least 2")
    splits, _ = split_clips(scan_dataset(cfg.data), cfg.split_dir, cfg.seed)
    parts = folds(splits["train"] + splits["valid"], args.folds)
    clean, rooms = [], []
    held_out_predictions = {f"k-fold, {name}": {"labels": [], "probabilities": []} for name in ("clean", "rooms")}
    with tempfile.TemporaryDirectory() as lists:
        for i, held_out in enumerate(parts):
            rest = [c for j, part in enumerate(parts) if j != i for c in part]
            split_dir = write_split(Path(lists) / f"fold{i}", rest, held_out)
            out = Path(args.out) / f"fold{i}"
            scored = held_out_scores(cfg, recipe, out, split_dir, held_out)
            clean.append(scored["clean"])
            rooms.append(scored["rooms"])
            for name in ("clean", "rooms"):
                for key, values in scored["predictions"][name].items():
                    held_out_predictions[f"k-fold, {name}"][key] += values
            print(f"fold {i}: clean {clean[-1]:.1%}, random simulated rooms {rooms[-1]:.1%}")
    classifier = GenreClassifier.from_pretrained(out, device=cfg.device)
    result = {"command": recipe, "folds": args.folds, "clean": summary(clean), "rooms": summary(rooms)}
    Path(args.out, "crossval.json").write_text(json.dumps(result, indent=1))
    save_predictions(Path(args.out, "predictions.json"), classifier, held_out_predictions)
    for name in ("clean", "rooms"):
        print(f"{name}: {result[name]['mean']:.1%} ± {result[name]['spread']:.1%} over {args.folds} folds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
