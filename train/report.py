"""``python -m train.report [--weights weights]``: rewrite the results tables in ``weights/README.md`` and the
project's ``README.md`` from each model's ``metrics.json`` (so the tables only ever show measured numbers)."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
from safetensors import safe_open

from genre_model.registry import architecture

from .crossval import CONDITIONS
from .evaluate import KEY

START, END = "<!-- results:start -->", "<!-- results:end -->"


def _ci(scores: dict, key: str) -> str:
    lo, hi = scores[f"{key}_ci95"]
    return f"{scores[key]:.1%} ({lo:.0%}-{hi:.0%})"


def results_table(weights: Path) -> str:
    rows = [
        "| model | stored values | size | train acc | valid acc (95% CI) | valid balanced acc (95% CI) "
        "| paper train / test | training time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for metrics_file in sorted(weights.glob("*/metrics.json")):
        m = json.loads(metrics_file.read_text())
        config = json.loads((metrics_file.parent / "config.json").read_text())
        weights_file = metrics_file.parent / "model.safetensors"
        with safe_open(weights_file, "np") as f:
            n_params = sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
        size_mb = weights_file.stat().st_size / 1e6
        rows.append(
            f"| `{metrics_file.parent.name}` | {n_params:,} | {size_mb:.1f} MB | {_ci(m['train'], 'accuracy')} "
            f"| {_ci(m['valid'], 'accuracy')} | {_ci(m['valid'], 'balanced_accuracy')} "
            f"| {architecture(config['arch']).paper or '-'} "
            f"| {m['train_seconds'] / 60:.0f} min ({m['device']}) |"
        )
    return "\n".join(rows)


def robustness_table(weights: Path) -> str:
    """Valid balanced accuracy, clean and through simulated rooms (``train.evaluate --rooms`` and ``--grid``)."""
    rows = [
        f"| model | clean | random simulated rooms | grid: mean of 36 cells | grid: {KEY} |",
        "|---|---|---|---|---|",
    ]

    def scores(file: Path) -> dict | None:
        return json.loads(file.read_text()) if file.exists() else None

    for model_dir in sorted(p for p in weights.iterdir() if (p / "valid-rooms.eval.json").exists()):
        clean, random = scores(model_dir / "valid.eval.json"), scores(model_dir / "valid-rooms.eval.json")
        grid = scores(model_dir / "valid-grid.eval.json") or {}
        cells = [v["balanced_accuracy"] for k, v in grid.items() if k != "clean"]
        values = [
            clean["balanced_accuracy"] if clean else None,
            random["balanced_accuracy"],
            float(np.mean(cells)) if cells else None,
            grid.get(KEY, {}).get("balanced_accuracy"),
        ]
        rows.append(f"| `{model_dir.name}` | " + " | ".join("-" if v is None else f"{v:.1%}" for v in values) + " |")
    return "\n".join(rows)


def kfold_table(weights: Path) -> str:
    """Each model's recipe by k-fold (``weights/MODEL/crossval.json``, as ``python -m train.crossval`` writes it):
    balanced accuracy on the held-out folds, mean and spread over folds."""
    rows = [f"| model | folds | clean | random simulated rooms | {KEY} |", "|---|---|---|---|---|"]
    for file in sorted(weights.glob("*/crossval.json")):
        cv = json.loads(file.read_text())
        cells = [f"{cv[c]['mean']:.1%} ± {cv[c]['spread']:.1%}" if c in cv else "-" for c in CONDITIONS]
        rows.append(f"| `{file.parent.name}` | {cv['folds']} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default="weights")
    parser.add_argument(
        "--readme",
        nargs="+",
        default=["weights/README.md", "README.md"],
        help="the files whose results block (between the markers) is rewritten",
    )
    args = parser.parse_args(argv)
    weights = Path(args.weights)
    block = (
        f"{START}\n{results_table(weights)}\n\nThrough simulated rooms (`train.rooms`, the room simulator: speaker, "
        f"room, noise, microphone), valid balanced accuracy:\n\n{robustness_table(weights)}\n\n"
        f"Each recipe by k-fold (`python -m train.crossval`, whole artists held out in turn from train + valid):\n\n"
        f"{kfold_table(weights)}\n{END}"
    )
    for readme in map(Path, args.readme):
        text = readme.read_text()
        if START not in text:
            raise SystemExit(f"error: {readme} has no {START} ... {END} block to rewrite")
        readme.write_text(re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
