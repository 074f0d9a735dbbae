"""``python -m train.evaluate --model weights/NAME --data DIR [--split-dir DIR] [--split valid] [--rooms | --grid]``

Clip-level accuracy (95% CI), balanced accuracy, per-genre P/R/F1 and the confusion matrix (printed and
saved as a plotly HTML figure). Clips are predicted exactly as users' files are: `GenreClassifier.predict`.
Without ``--split-dir``, ``--split`` is the seeded random split ``python -m train`` draws, and no ``--split`` scores
every clip. ``--rooms`` plays each clip through a random simulated room; ``--grid`` scores the room grid (RT60 x
distance x SNR x device, `train.rooms.GRID`), or the cells named with ``--cell``; ``--effects`` takes one cell
apart (speaker, room, noise, microphone: each alone and all but each).
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genre_model.audio import AudioError, load_audio
from genre_model.card import refit_on_valid
from genre_model.inference import GenreClassifier
from genre_model.plots import confusion_figure

from .calibrate import save_predictions
from .data import scan_dataset, split_clips
from .metrics import balanced_accuracy, format_report, summarize
from .rooms import EFFECTS, GRID, grid_condition, play_in_room

KEY_CELL = (0.8, 3.0, 10.0, "phone")  # the grid cell the README reports: a phone at the back of a classroom


def _seed(clip) -> int:
    return zlib.crc32(clip.id.encode())  # by clip id: every run plays each clip through the same room


def evaluate(classifier: GenreClassifier, clips, rooms: bool = False) -> tuple[dict, list[str], dict]:
    """Scores over ``clips`` (unreadable ones are skipped and listed), optionally each through a random simulated
    room (`train.rooms`), and the predictions: each clip's label and probabilities."""
    genres, sr = classifier.genres, classifier.sample_rate
    y_true, y_pred, skipped, probs = [], [], [], []
    for clip in tqdm(clips, desc="evaluating", unit="clip", file=sys.stderr):
        try:
            audio = load_audio(clip.path, sr)
            if rooms:
                audio = (sr, play_in_room(audio.samples, sr, seed=_seed(clip), bank=1))
            prediction = classifier.predict(audio)
        except AudioError:
            skipped.append(clip.id)
            continue
        y_true.append(genres.index(clip.genre))
        y_pred.append(genres.index(prediction.genre))
        probs.append(list(prediction.probabilities.values()))
    return summarize(y_true, y_pred, genres), skipped, {"labels": y_true, "probabilities": probs}


def cell_name(rt60_s: float, distance_m: float, snr_db: float, device: str) -> str:
    return f"RT60 {rt60_s:g} s, {distance_m:g} m, {snr_db:g} dB, {device}"


KEY = cell_name(*KEY_CELL)


def _decoded(classifier: GenreClassifier, clips) -> tuple[list, np.ndarray]:
    waves, labels = [], []
    for clip in tqdm(clips, desc="decoding", unit="clip", file=sys.stderr):
        try:
            waves.append((clip, load_audio(clip.path, classifier.sample_rate).samples))
            labels.append(classifier.genres.index(clip.genre))
        except AudioError:
            continue
    return waves, np.asarray(labels)


def _score(
    classifier: GenreClassifier, waves: list, labels: np.ndarray, cell: tuple | None, effects: tuple[str, ...] = EFFECTS
) -> dict:
    """Balanced accuracy and accuracy with every clip through ``cell`` (None: clean). The room's shape comes from the
    clip (one of ``GRID.rooms`` per cell), the noise and device details from its id."""
    sr, probs = classifier.sample_rate, []
    for clip, samples in waves:
        if cell is not None:
            condition = grid_condition(*cell, seed=_seed(clip) % GRID.rooms)
            samples = play_in_room(samples, sr, _seed(clip), condition, effects=effects)
        probs.append(list(classifier.predict((sr, samples)).probabilities.values()))
    pred = np.argmax(probs, axis=1)
    return {
        "balanced_accuracy": balanced_accuracy(labels, pred),
        "accuracy": float((labels == pred).mean()),
        "predictions": {"labels": labels.tolist(), "probabilities": probs},
    }


def evaluate_grid(classifier: GenreClassifier, clips, cells: list[tuple], clean: bool = True) -> dict[str, dict]:
    """Balanced accuracy and accuracy, clean (unless ``clean=False``) and in each cell of the room grid (rt60,
    distance, snr, device)."""
    waves, labels = _decoded(classifier, clips)
    results = {"clean": _score(classifier, waves, labels, None)} if clean else {}
    for cell in tqdm(cells, desc="room grid", unit="cell", file=sys.stderr):
        results[cell_name(*cell)] = _score(classifier, waves, labels, cell)
        tqdm.write(f"{cell_name(*cell)}: {results[cell_name(*cell)]['balanced_accuracy']:.1%}", file=sys.stderr)
    return results


def evaluate_effects(classifier: GenreClassifier, clips, cell: tuple) -> dict[str, dict]:
    """One cell of the room grid taken apart: clean, each effect of the chain alone, all but each, and all of them."""
    waves, labels = _decoded(classifier, clips)
    runs = {
        "clean": (),
        **{f"{e} alone": (e,) for e in EFFECTS},
        **{f"all but {e}": tuple(x for x in EFFECTS if x != e) for e in EFFECTS},
        "all": EFFECTS,
    }
    results = {}
    for name, effects in tqdm(runs.items(), desc=cell_name(*cell), unit="run", file=sys.stderr):
        results[name] = _score(classifier, waves, labels, cell if effects else None, effects)
        tqdm.write(f"{name}: {results[name]['balanced_accuracy']:.1%}", file=sys.stderr)
    return results


def effects_table(results: dict[str, dict]) -> str:
    """`evaluate_effects` as markdown: balanced accuracy with each effect alone and with all but it."""

    def cell(name: str) -> str:
        return f"{results[name]['balanced_accuracy']:.1%}"

    lines = [
        f"clean: {cell('clean')} balanced; all effects: {cell('all')}",
        "",
        "| effect | alone | all but it |",
        "|---|---|---|",
    ]
    return "\n".join(lines + [f"| {e} | {cell(f'{e} alone')} | {cell(f'all but {e}')} |" for e in EFFECTS])


def grid_table(results: dict[str, dict]) -> str:
    """The grid as markdown: rows RT60 x distance, columns SNR x device, balanced accuracy per cell."""
    columns = [(snr, device) for snr in GRID.snr_db for device in GRID.devices]
    lines = [
        f"clean: {results['clean']['balanced_accuracy']:.1%} balanced ({results['clean']['accuracy']:.1%})",
        "",
        "| RT60, distance | " + " | ".join(f"{snr:g} dB, {device}" for snr, device in columns) + " |",
        "|---" * (len(columns) + 1) + "|",
    ]
    for rt60 in GRID.rt60_s:
        for distance in GRID.distance_m:
            cells = [results.get(cell_name(rt60, distance, snr, device)) for snr, device in columns]
            if any(cells):
                values = [f"{c['balanced_accuracy']:.1%}" if c else "-" for c in cells]
                lines.append(f"| {rt60:g} s, {distance:g} m | " + " | ".join(values) + " |")
    return "\n".join(lines)


def trained_on_valid(model: str) -> bool:
    """Whether the model folder's training run fitted it on train + valid (``python -m train --refit-on-valid``)."""
    metrics = Path(model) / "metrics.json"
    return metrics.is_file() and refit_on_valid(json.loads(metrics.read_text()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("--model", required=True, help="model folder, Hub repo id or architecture name")
    parser.add_argument("--data", required=True, help="folder with <genre>/<genre>.NNNNN.<ext> clips")
    parser.add_argument("--split-dir", help="folder with {train,valid,test}_filtered.txt")
    parser.add_argument(
        "--split",
        choices=["train", "valid", "test"],
        help="default: valid with --split-dir; without it, a split of the seeded random split, and "
        "no --split scores every clip",
    )
    parser.add_argument("--seed", type=int, default=0, help="of the random split (as given to python -m train)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--confusion-html", default=None, help="where to save the figure (default: beside the model)")
    parser.add_argument("--rooms", action="store_true", help="play every clip through a random simulated room")
    parser.add_argument("--grid", action="store_true", help="score the room grid (clean and every cell)")
    parser.add_argument(
        "--cell",
        nargs=4,
        action="append",
        metavar=("RT60_S", "DISTANCE_M", "SNR_DB", "DEVICE"),
        help="score only this cell of the grid (repeatable), e.g. --cell 0.8 3 10 phone",
    )
    parser.add_argument(
        "--effects",
        action="store_true",
        help=f"take one cell (--cell; default: {KEY}) apart: each of {', '.join(EFFECTS)} alone and all but each",
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        help="also save every clip's label and probabilities here (for python -m train.calibrate)",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object instead")
    args = parser.parse_args(argv)

    classifier = GenreClassifier.from_pretrained(args.model, device=args.device)
    if args.split_dir and args.split != "test" and trained_on_valid(args.model):
        print(
            f"note: {args.model} was trained on train + valid (--refit-on-valid), so these {args.split} scores are "
            "not held out; its metrics.json holds the valid scores of the run that chose its settings, before "
            "valid joined training.",
            file=sys.stderr,
        )
    clips = scan_dataset(args.data)
    if args.split_dir and not args.split:
        args.split = "valid"
    if args.split:
        clips = split_clips(clips, args.split_dir, args.seed)[0][args.split]
    unknown = sorted({c.genre for c in clips} - set(classifier.genres))
    if unknown:
        print(f"skipping clips of genres the model does not know: {', '.join(unknown)}", file=sys.stderr)
        clips = [c for c in clips if c.genre in classifier.genres]
    if args.grid or args.cell or args.effects:
        return _print_grid(args, classifier, clips)
    scores, skipped, predictions = evaluate(classifier, clips, args.rooms)
    split = split_name(args)
    if args.predictions:
        save_predictions(args.predictions, classifier, {f"{split}, {'rooms' if args.rooms else 'clean'}": predictions})
    scores.update(model=classifier.name, split=split, rooms=args.rooms, skipped=skipped)

    name = f"confusion-{split}" + ("-rooms" if args.rooms else "") + ".html"
    default_html = Path(args.model) / name if Path(args.model).is_dir() else None
    html = Path(args.confusion_html) if args.confusion_html else default_html
    if html:
        condition = ", through simulated rooms" if args.rooms else ""
        title = f"{classifier.name} on {split}{condition}: accuracy {scores['accuracy']:.1%}"
        figure = confusion_figure(scores["confusion"], classifier.genres, title)
        figure.write_html(html, include_plotlyjs=True)  # self-contained: opens offline
        scores["confusion_html"] = str(html)
    if Path(args.model).is_dir():  # kept beside the model for `python -m train.report`
        (Path(args.model) / f"{name.removeprefix('confusion-').removesuffix('.html')}.eval.json").write_text(
            json.dumps(scores, indent=1)
        )
    if args.json:
        print(json.dumps(scores))
    else:
        where = ", through simulated rooms" if args.rooms else ""
        print(f"{classifier.name} on {split} ({args.data}){where}")
        print(format_report(scores, classifier.genres))
        if skipped:
            print(f"skipped (unreadable): {', '.join(skipped)}")
        if html:
            print(f"confusion matrix figure: {html}")
    return 0


def split_name(args: argparse.Namespace) -> str:
    """ "valid" (the filtered split's), "random-valid" (the seeded random split's) or "all"."""
    if not args.split:
        return "all"
    return args.split if args.split_dir else f"random{args.seed}-{args.split}"


def _keep_predictions(args: argparse.Namespace, classifier: GenreClassifier, split: str, results: dict) -> None:
    """Take each run's predictions out of ``results`` (not printed), saved to ``--predictions`` if given."""
    predictions = {f"{split}, {name}": r.pop("predictions") for name, r in results.items()}
    if args.predictions:
        save_predictions(args.predictions, classifier, predictions)


def _print_grid(args: argparse.Namespace, classifier: GenreClassifier, clips) -> int:
    try:
        cells = [(float(r), float(d), float(s), device) for r, d, s, device in args.cell] if args.cell else GRID.cells()
        if any(device not in GRID.devices for *_, device in cells):
            raise ValueError
    except ValueError:
        raise SystemExit(f"error: --cell takes RT60_S DISTANCE_M SNR_DB DEVICE, DEVICE one of {GRID.devices}") from None
    split = split_name(args)
    if args.effects:
        if args.grid or len(args.cell or []) > 1:
            raise SystemExit("error: --effects takes one cell apart: give at most one --cell, and no --grid")
        cell = cells[0] if args.cell else KEY_CELL
        results = evaluate_effects(classifier, clips, cell)
        _keep_predictions(args, classifier, split, results)
        print(
            json.dumps({"model": classifier.name, "split": split, "cell": cell_name(*cell), "effects": results})
            if args.json
            else f"{cell_name(*cell)}\n\n{effects_table(results)}"
        )
        return 0
    results = evaluate_grid(classifier, clips, cells)
    _keep_predictions(args, classifier, split, results)
    if Path(args.model).is_dir() and not args.cell:
        (Path(args.model) / f"{split}-grid.eval.json").write_text(json.dumps(results, indent=1))
    print(json.dumps({"model": classifier.name, "split": split, "grid": results}) if args.json else grid_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
