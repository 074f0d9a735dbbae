"""``python -m train.evaluate --model weights/NAME --data DIR [--split-dir DIR --split valid] [--json]``

Clip-level accuracy (95% CI), balanced accuracy, per-genre P/R/F1 and the confusion matrix (printed and
saved as a plotly HTML figure). Clips are predicted exactly as users' files are: `GenreClassifier.predict`.
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
from genre_model.explain import calibrate_entropy_threshold
from genre_model.inference import GenreClassifier
from genre_model.plots import confusion_figure

from .data import scan_dataset, split_clips
from .degrade import SEVERITIES, degrade
from .metrics import format_report, summarize


def evaluate(classifier: GenreClassifier, clips, degrade_severity: str | None = None) -> tuple[dict, list[str], list]:
    """Scores over ``clips`` (unreadable ones are skipped and listed), optionally through the microphone
    degradation of `train.degrade` (seeded by clip id, so every run degrades each clip the same way)."""
    genres, sr = classifier.genres, classifier.sample_rate
    y_true, y_pred, skipped, probs = [], [], [], []
    for clip in tqdm(clips, desc="evaluating", unit="clip", file=sys.stderr):
        try:
            audio = load_audio(clip.path, sr)
            if degrade_severity:
                audio = (sr, degrade(audio.samples, sr, degrade_severity, seed=zlib.crc32(clip.id.encode())))
            prediction = classifier.predict(audio)
        except AudioError:
            skipped.append(clip.id)
            continue
        y_true.append(genres.index(clip.genre))
        y_pred.append(genres.index(prediction.genre))
        probs.append(list(prediction.probabilities.values()))
    return summarize(y_true, y_pred, genres), skipped, probs


def store_entropy_threshold(model_dir: Path, probs: list) -> float:
    """Store the confidence note's threshold, calibrated on these predictions, in the model's config.json."""
    threshold = calibrate_entropy_threshold(np.asarray(probs))
    config_file = model_dir / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "entropy_threshold": threshold}, indent=2, sort_keys=True))
    return threshold


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.split("\n\n")[1])
    parser.add_argument("--model", required=True, help="model folder, Hub repo id or architecture name")
    parser.add_argument("--data", required=True, help="folder with <genre>/<genre>.NNNNN.<ext> clips")
    parser.add_argument("--split-dir", help="folder with {train,valid,test}_filtered.txt; without it: all clips")
    parser.add_argument("--split", default="valid", choices=["train", "valid", "test"])
    parser.add_argument("--device", default=None)
    parser.add_argument("--confusion-html", default=None, help="where to save the figure (default: beside the model)")
    parser.add_argument("--degrade", choices=list(SEVERITIES), help="play every clip through a simulated classroom")
    parser.add_argument(
        "--calibrate",
        action="store_true",
        help="store the confidence note's entropy threshold (95th percentile here) in config.json",
    )
    parser.add_argument("--json", action="store_true", help="print the scores as one JSON object instead")
    args = parser.parse_args(argv)

    classifier = GenreClassifier.from_pretrained(args.model, device=args.device)
    clips = scan_dataset(args.data)
    if args.split_dir:
        clips = split_clips(clips, args.split_dir)[0][args.split]
    scores, skipped, probs = evaluate(classifier, clips, args.degrade)
    if args.calibrate:
        if not Path(args.model).is_dir() or args.degrade:
            parser.error("--calibrate needs a local model folder and clean (not --degrade) audio")
        scores["entropy_threshold"] = store_entropy_threshold(Path(args.model), probs)
    split = args.split if args.split_dir else "all"
    scores.update(model=classifier.name, split=split, degrade=args.degrade, skipped=skipped)

    name = f"confusion-{split}" + (f"-{args.degrade}" if args.degrade else "") + ".html"
    default_html = Path(args.model) / name if Path(args.model).is_dir() else None
    html = Path(args.confusion_html) if args.confusion_html else default_html
    if html:
        condition = f", {args.degrade} classroom degradation" if args.degrade else ""
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
        print(f"{classifier.name} on {split} ({args.data})" + (f", degraded: {args.degrade}" if args.degrade else ""))
        print(format_report(scores, classifier.genres))
        if skipped:
            print(f"skipped (unreadable): {', '.join(skipped)}")
        if html:
            print(f"confusion matrix figure: {html}")
        if "entropy_threshold" in scores:
            print(f"entropy threshold for the confidence note, stored in config.json: {scores['entropy_threshold']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
