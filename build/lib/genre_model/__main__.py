"""Command line: ``genre-model predict [--model M] [--device D] [--json] FILE...`` (or ``python -m genre_model``).

Every file is processed even when some fail. Exit status: 0 all succeeded, 1 some failed, 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys

from .audio import AudioError
from .inference import GenreClassifier, Prediction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genre-model", description="Classify music by genre.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify audio files")
    predict.add_argument("files", nargs="+", metavar="FILE")
    predict.add_argument(
        "--model", default=None, help="model folder, Hub repo id or architecture (default: weights/musicnn-genre)"
    )
    predict.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    predict.add_argument("--json", action="store_true", help="one JSON object per file per line")
    args = parser.parse_args(argv)

    try:
        classifier = GenreClassifier.from_pretrained(args.model, device=args.device)
    except Exception as err:  # noqa: BLE001 - missing folder, unknown repo, no network: one line, no traceback
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: cannot load model: {reason}", file=sys.stderr)
        return 2

    failed = 0
    for path in args.files:
        try:
            prediction = classifier.predict(path)
        except Exception as err:  # noqa: BLE001 - one bad file must not stop the others or print a traceback
            failed += 1
            message = (
                str(err) if isinstance(err, AudioError) else f"could not classify this file ({type(err).__name__})"
            )
            _emit({"file": path, "error": message} if args.json else f"{path}: error: {message}", sys.stdout)
            continue
        _emit(_as_json(path, prediction) if args.json else _as_row(path, prediction), sys.stdout)
    return 1 if failed else 0


def _as_json(path: str, p: Prediction) -> dict:
    summary = p.to_dict()
    keys = ("genre", "probabilities", "segments", "duration_s", "elapsed_ms") + (("tags",) if p.tags else ())
    return {"file": path, **{k: summary[k] for k in keys}}


def _as_row(path: str, p: Prediction) -> str:
    top = "  ".join(f"{genre} {prob:5.1%}" for genre, prob in p.top(3))
    cut = f" (first {p.analyzed_s:.0f} s analyzed)" if p.analyzed_s < p.duration_s - 1e-3 else ""
    return f"{path}: {p.genre:<9}  [{top}]  {p.duration_s:.1f} s{cut}, {p.elapsed_ms:.0f} ms"


def _emit(item: dict | str, stream) -> None:
    print(json.dumps(item) if isinstance(item, dict) else item, file=stream, flush=True)


if __name__ == "__main__":
    sys.exit(main())
