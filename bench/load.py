"""``python -m bench.load [--users 16] [--requests 20] [--model M]``: start the app on a free port, drive it with
concurrent `gradio_client` users calling ``/classify`` on generated 30 s clips (plus one junk upload each), and
print one JSON document: errors, latency p50/p95, throughput, the server's peak memory, and whether it is still up.
The app is stopped however this ends.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from genre_model.synth import EXAMPLES

from .serve import running_app


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20, help="per user")
    parser.add_argument("--model", default=None)
    parser.add_argument("--live", action="store_true", help="a class on Live instead (bench/live_load.py)")
    parser.add_argument("--listeners", type=int, default=30, help="with --live")
    parser.add_argument("--seconds", type=int, default=20, help="with --live: of music per listener")
    args = parser.parse_args(argv)
    if args.live:
        from .live_load import main as live_main

        return live_main(args.listeners, args.seconds, args.model)
    from gradio_client import Client, handle_file

    with tempfile.TemporaryDirectory() as tmp, running_app(args.model) as app:
        url = app.url
        clips = []
        for i, make in enumerate(list(EXAMPLES.values()) * 2):
            path = Path(tmp) / f"clip{i}.wav"
            sf.write(path, make(seconds=30.0, seed=i), 22_050)
            clips.append(path)
        junk = Path(tmp) / "junk.mp3"
        junk.write_bytes(np.random.default_rng(0).bytes(50_000))
        client = Client(url, verbose=False)

        def user(u: int) -> tuple[list[float], int, int]:
            c = Client(url, verbose=False)
            times, errors, refused = [], 0, 0
            try:
                c.predict(handle_file(str(junk)), api_name="/classify")
            except Exception:  # noqa: BLE001 - expected: junk must be refused, not crash anything
                refused += 1
            for r in range(args.requests):
                t0 = time.perf_counter()
                try:
                    c.predict(handle_file(str(clips[(u + r) % len(clips)])), api_name="/classify")
                    times.append(time.perf_counter() - t0)
                except Exception:  # noqa: BLE001 - counted, reported
                    errors += 1
            return times, errors, refused

        t0 = time.perf_counter()
        with ThreadPoolExecutor(args.users) as pool:
            results = list(pool.map(user, range(args.users)))
        wall = time.perf_counter() - t0
        times = [t for r in results for t in r[0]]
        alive = client.predict(handle_file(str(clips[0])), api_name="/classify") is not None
        report = {
            "users": args.users,
            "requests_per_user": args.requests,
            "ok": len(times),
            "errors": sum(r[1] for r in results),
            "junk_uploads_refused": sum(r[2] for r in results),
            "latency_p50_s": round(statistics.median(times), 3) if times else None,
            "latency_p95_s": round(float(np.percentile(times, 95)), 3) if times else None,
            "throughput_req_per_s": round(len(times) / wall, 2),
            "server_peak_rss_mb": round(_peak_rss_mb(app.pid), 1),
            "server_alive_after": alive,
        }
    print(json.dumps(report, indent=2))
    return 0 if report["errors"] == 0 and alive else 1


if __name__ == "__main__":
    raise SystemExit(main())
