"""``python -m bench.rooms [--clips N] [--seconds S]``: how fast the room simulator makes room copies on one worker
process and on every core (`train.probe.room_copies`), as JSON."""

from __future__ import annotations

import argparse
import json
import os
import time

from genre_model.audio import Waveform
from genre_model.synth import SR, four_on_the_floor
from train.probe import room_copies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=24)
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each generated clip")
    args = parser.parse_args(argv)
    waves = [
        Waveform(four_on_the_floor(args.seconds, seed=i), SR, args.seconds, args.seconds) for i in range(args.clips)
    ]
    result = {"clips": args.clips, "seconds": args.seconds, "cpu_count": os.cpu_count()}
    for workers in sorted({1, os.cpu_count() or 1}):
        start = time.perf_counter()
        room_copies(waves, 0, workers=workers)
        result[f"clips_per_s_{workers}_workers"] = round(args.clips / (time.perf_counter() - start), 2)
    result["speed_up"] = round(
        result[f"clips_per_s_{os.cpu_count() or 1}_workers"] / result["clips_per_s_1_workers"], 2
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
