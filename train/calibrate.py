"""``python -m train.calibrate --model weights/NAME PREDICTIONS.json... [--fit-on SET...]``: measure a model's
confidence rule (`genre_model.confidence`) on predictions of clips it never trained on, store it in the model's
config.json, and print the calibration table: for each set of predictions, how often each answer is given and how
often it is right.

Predictions come from ``python -m train.evaluate --predictions FILE`` (of a run that did not train on the split it
scores, e.g. a ``--no-refit-on-valid`` run on valid) or from ``python -m train.crossval`` (every clip held out once,
``OUT/predictions.json``); made by another model (such a run of the committed weights' recipe), the rule says so.
``--fit-on`` picks the sets the rule is fitted on (default: all of them); the table shows every set, so a rule fitted
on clean audio can be read on rooms too.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from genre_model.confidence import ConfidenceRule, calibrate, tally
from genre_model.inference import GenreClassifier

ANSWERS = {"clear": "clearly X", "probable": "probably X", "pair": "not sure: A or B?", "unknown": "can't tell"}


def save_predictions(path: Path, classifier: GenreClassifier, sets: dict[str, dict]) -> None:
    """``sets``: name -> {"labels": genre indices, "probabilities": one row per clip}, as `load_predictions` reads."""
    rounded = {
        name: {"labels": list(map(int, s["labels"])), "probabilities": np.round(s["probabilities"], 5).tolist()}
        for name, s in sets.items()
    }
    Path(path).write_text(json.dumps({"model": classifier.name, "genres": classifier.genres, "sets": rounded}))


def load_predictions(paths: list[Path], genres: list[str]) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], set]:
    """Every set of every file: name -> (labels, probabilities), checked to be over ``genres`` in that order; and
    the names of the models that made them."""
    sets, models = {}, set()
    for path in paths:
        saved = json.loads(Path(path).read_text())
        if saved["genres"] != genres:
            raise SystemExit(f"error: {path} holds predictions over {saved['genres']}, not this model's genres")
        models.add(saved["model"])
        for name, s in saved["sets"].items():
            sets[name] = (np.asarray(s["labels"]), np.asarray(s["probabilities"]))
    return sets, models


def table(rule: ConfidenceRule, sets: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Markdown: per set, each answer's share of the clips and how often it was right (for "not sure: A or B?":
    the truth among the two)."""
    lines = ["| clips | " + " | ".join(ANSWERS.values()) + " |", "|---" * (len(ANSWERS) + 1) + "|"]
    for name, (labels, probs) in sets.items():
        counts = tally(rule, labels, probs)
        shown = [
            f"{n / len(labels):.0%} of clips" + (f", right {hit / n:.0%}" if n and k != "unknown" else "")
            for k, (hit, n) in counts.items()
        ]
        lines.append(f"| {name} ({len(labels)}) | " + " | ".join(shown) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.calibrate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="the model folder whose config.json gets the rule")
    parser.add_argument("predictions", nargs="+", type=Path, help="files of predictions (see above)")
    parser.add_argument("--fit-on", nargs="+", metavar="SET", help="the sets to fit the rule on (default: all)")
    args = parser.parse_args(argv)
    classifier = GenreClassifier.from_pretrained(args.model)
    sets, models = load_predictions(args.predictions, classifier.genres)
    fit_on = args.fit_on or list(sets)
    if unknown := sorted(set(fit_on) - set(sets)):
        parser.error(f"no set named {', '.join(unknown)}; the files hold: {', '.join(sets)}")
    labels = np.concatenate([sets[name][0] for name in fit_on])
    probs = np.concatenate([sets[name][1] for name in fit_on])
    # weights refit on every clip the team has are measured by a run of their recipe that left the clips out
    clips = f"{', '.join(fit_on)}: {len(labels)} clips"
    by = " it never trained on" if models == {classifier.name} else ", scored by its recipe trained without them"
    rule = calibrate(labels, probs, clips + by)
    config_file = Path(args.model) / "config.json"
    config = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**config, "confidence": rule.to_dict()}, indent=2, sort_keys=True) + "\n")
    print(
        f"{classifier.name}: clearly at {rule.clear_at:.2f}, probably at {rule.probable_at:.2f}, not sure at "
        f"{rule.pair_at:.2f} (fitted on {', '.join(fit_on)}), stored in {config_file}\n"
    )
    print(table(rule, sets))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
