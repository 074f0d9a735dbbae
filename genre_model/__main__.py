"""Command line: ``genre-model predict [--source auto|file|microphone | --model M] [--device D] [--json] FILE...`` (or
``python -m genre_model``). Without ``--model``, the source picks the committed clean or room model
(`genre_model.routing`), and each result says which answered and why.

Every file is processed even when some fail. Exit status: 0 all succeeded, 1 some failed (or a folder held no audio
file), 2 usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path

from .audio import AUDIO_SUFFIXES, AudioError
from .confidence import Verdict
from .distributed import Processes, processes
from .inference import GenreClassifier, Prediction
from .routing import SOURCES, Router


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genre-model", description="Classify music by genre.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser("predict", help="classify audio files")
    predict.add_argument("files", nargs="+", metavar="FILE", help="audio files, or folders of them (searched in depth)")
    predict.add_argument(
        "--source",
        choices=SOURCES,
        help="where the sound comes from: file (the clean model), microphone (the room model), auto (a detector "
        "of room recordings decides; the default)",
    )
    predict.add_argument("--model", default=None, help="one model for every file: folder, Hub repo id or architecture")
    predict.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available; torchrun: each GPU)")
    predict.add_argument("--json", action="store_true", help="one JSON object per file per line")
    args = parser.parse_args(argv)
    if args.model and args.source:
        parser.error("--source picks between the committed clean and room models; with --model, that model answers")
    with processes() as procs:  # under torchrun: the files are split by rank, rank 0 writes every line in input order
        return _predict(args, procs)


def audio_files(paths: list[str]) -> tuple[list[str], list[str]]:
    """``paths`` with each folder replaced by the audio files under it (sorted), other paths kept as given; and the
    folders that hold no audio file."""
    files, empty = [], []
    for path in paths:
        folder = Path(path)
        if folder.is_dir():
            found = sorted(str(f) for f in folder.rglob("*") if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file())
            files += found
            if not found:
                empty.append(path)
        else:
            files.append(path)
    return files, empty


def _predict(args: argparse.Namespace, procs: Processes) -> int:
    files, empty = audio_files(args.files)
    kinds = ", ".join(sorted(AUDIO_SUFFIXES))
    for folder in empty if procs.is_main else []:
        print(f"error: no audio file in '{folder}' (looked for {kinds})", file=sys.stderr)
    if not files:
        return 1
    device = procs.device(args.device) or args.device
    try:
        if args.model:
            chosen = GenreClassifier.from_pretrained(args.model, device=device)
            classify: Callable[[str], Prediction] = chosen.predict
            answered: Callable[[Prediction], GenreClassifier] = lambda _: chosen  # noqa: E731 - as the router's
        else:
            router = Router.from_pretrained(device=device)
            classify, answered = partial(router.predict, source=args.source or "auto"), router.answered
    except Exception as err:  # noqa: BLE001 - missing folder, unknown repo, no network: one line, no traceback
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"error: cannot load model: {reason}", file=sys.stderr)
        return 2
    lines = [_line(classify, answered, path, args.json, not procs.distributed) for path in procs.shard(files)]
    if procs.distributed:  # every line at the end, in order; one process prints as it goes
        lines = procs.gather(lines)
        if procs.is_main:
            for line, _ in lines:
                _emit(line, sys.stdout)
    failed = sum(not ok for _, ok in lines) + len(empty)
    return 1 if failed else 0


def _line(
    classify: Callable[[str], Prediction],
    answered: Callable[[Prediction], GenreClassifier],
    path: str,
    as_json: bool,
    alone: bool,
) -> tuple[dict | str, bool]:
    """The output line for one file and whether it was classified; printed at once when running ``alone``. The
    verdict ("Not sure: a or b?" when unsure) is by the confidence rule of the model that ``answered``."""
    try:
        p = classify(path)
        said = answered(p).verdict(p.probabilities)
        line, ok = (_as_json(path, p, said) if as_json else _as_row(path, p, said.headline)), True
    except Exception as err:  # noqa: BLE001 - one bad file must not stop the others or print a traceback
        message = str(err) if isinstance(err, AudioError) else f"could not classify this file ({type(err).__name__})"
        line, ok = ({"file": path, "error": message} if as_json else f"{path}: error: {message}"), False
    if alone:
        _emit(line, sys.stdout)
    return line, ok


def _as_json(path: str, p: Prediction, said: Verdict) -> dict:
    summary = p.to_dict()
    keys = ("genre", "probabilities", "segments", "duration_s", "elapsed_ms", "model_name")
    keys += ("tags",) * bool(p.tags) + ("route",) * bool(p.route)
    return {"file": path, **{k: summary[k] for k in keys}, **said.to_dict()}  # the app's and the API's words


def _as_row(path: str, p: Prediction, headline: str) -> str:
    top = "  ".join(f"{genre} {prob:5.1%}" for genre, prob in p.top(3))
    cut = f" (first {p.analyzed_s:.0f} s analyzed)" if p.analyzed_s < p.duration_s - 1e-3 else ""
    route = f", {p.route}" if p.route else ""
    return f"{path}: {headline:<18}  [{top}]  {p.duration_s:.1f} s{cut}, {p.elapsed_ms:.0f} ms, {p.model_name}{route}"


def _emit(item: dict | str, stream) -> None:
    print(json.dumps(item) if isinstance(item, dict) else item, file=stream, flush=True)


if __name__ == "__main__":
    sys.exit(main())
