"""``python -m train.crossval --folds 4 --out runs/cv RECIPE [flags of python -m train RECIPE]``: k-fold
cross-validation over train + valid, a signal that can rank recipes where valid alone (138 clips) cannot.

Folds are genre-balanced and made of contiguous ids within each genre: GTZAN keeps an artist's clips together, so a
fold holds whole artists, much as the artist-filtered split does. Each fold trains the recipe on the others, with the
held-out fold as its valid (it picks the probe's weight decay and the kept epoch, as valid does; no refit), and is
scored clean, through random simulated rooms (`train.evaluate --rooms`) and through the room grid's key cell
(`train.evaluate --cell 0.8 3 10 phone`). Prints and saves
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
from .evaluate import KEY, KEY_CELL, evaluate, evaluate_grid

CONDITIONS = ("clean", "rooms", KEY)  # how each held-out fold is heard: as recorded, random rooms, the key cell


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


def score(classifier: GenreClassifier, clips: list[Clip], condition: str) -> tuple[float, dict]:
    """Balanced accuracy of ``clips`` heard in ``condition`` (one of `CONDITIONS`), and the predictions."""
    if condition == KEY:
        result = evaluate_grid(classifier, clips, [KEY_CELL], clean=False)[KEY]  # clean is scored on its own
        return result["balanced_accuracy"], result["predictions"]
    scores, _, predictions = evaluate(classifier, clips, rooms=condition == "rooms")
    return scores["balanced_accuracy"], predictions


def held_out_scores(cfg, recipe: list[str], out: Path, split_dir: Path, held_out: list[Clip]) -> dict:
    """The fold trained on ``split_dir``'s train and scored on ``held_out`` in every condition. Kept in
    ``out/held_out.json``: a later run of the same command reads a finished fold back (a recipe of hours a fold can
    run over several sittings) and scores only the conditions it lacks."""
    saved = out / "held_out.json"
    scored = json.loads(saved.read_text()) if saved.exists() else None
    if scored and scored["command"] != recipe:
        other = " ".join(scored["command"])
        raise SystemExit(f"{out} holds a fold of another command ({other}): give another --out")
    if scored is None:
        fold_cfg = replace(cfg, out=str(out), split_dir=str(split_dir))
        if hasattr(fold_cfg, "refit_on_valid"):
            fold_cfg = replace(fold_cfg, refit_on_valid=False)  # the held-out fold must stay held out
        run(fold_cfg)
        scored = {"command": recipe, "predictions": {}}
    missing = [c for c in CONDITIONS if c not in scored]
    if not missing:
        print(f"{out.name}: read back from {saved}")
        return scored
    classifier = GenreClassifier.from_pretrained(out, device=cfg.device)
    for condition in missing:
        scored[condition], scored["predictions"][condition] = score(classifier, held_out, condition)
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
    by_fold = {c: [] for c in CONDITIONS}
    held_out_predictions = {f"k-fold, {c}": {"labels": [], "probabilities": []} for c in CONDITIONS}
    with tempfile.TemporaryDirectory() as lists:
        for i, held_out in enumerate(parts):
            rest = [c for j, part in enumerate(parts) if j != i for c in part]
            split_dir = write_split(Path(lists) / f"fold{i}", rest, held_out)
            scored = held_out_scores(cfg, recipe, Path(args.out) / f"fold{i}", split_dir, held_out)
            for c in CONDITIONS:
                by_fold[c].append(scored[c])
                for key, values in scored["predictions"][c].items():
                    held_out_predictions[f"k-fold, {c}"][key] += values
            print(f"fold {i}: " + ", ".join(f"{c} {scored[c]:.1%}" for c in CONDITIONS))
    result = {"command": recipe, "folds": args.folds, **{c: summary(by_fold[c]) for c in CONDITIONS}}
    Path(args.out, "crossval.json").write_text(json.dumps(result, indent=1))
    classifier = GenreClassifier.from_pretrained(Path(args.out) / "fold0", device=cfg.device)
    save_predictions(Path(args.out, "predictions.json"), classifier, held_out_predictions)
    for c in CONDITIONS:
        print(f"{c}: {result[c]['mean']:.1%} ± {result[c]['spread']:.1%} over {args.folds} folds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
