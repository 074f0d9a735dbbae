"""``python -m bench.load --live --listeners N [--seconds S]``: a class on Live. Starts the app on a free port and
drives its Live endpoint as the browser does: one streaming event per listener through Gradio's queue, and every
second the next 1 s chunk of 48 kHz music (uploaded, then posted to the event's stream). Prints one JSON document:
the answer delay after each second (p50, p95), the gaps between a listener's updates, chunks the server never
processed, errors, the server's CPU and peak memory; and the same class in one process, without Gradio
(``live_step`` once a second per listener), so the two can be compared. The app is stopped however this ends.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import statistics
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np
import soundfile as sf

from genre_model.synth import EXAMPLES

from .serve import running_app

RATE = 48_000  # what browsers record at
DRIVERS = 2  # processes posting the listeners' chunks
HEARD = re.compile(r"heard (\d+):(\d\d)")  # the Live status says how much it has heard ("heard 0:14")


def music(listener: int, seconds: float) -> np.ndarray:
    """A different generated piece per listener, 48 kHz int16."""
    make = list(EXAMPLES.values())[listener % len(EXAMPLES)]
    wave = make(seconds=seconds, seed=listener)
    at_48k = np.interp(np.arange(int(seconds * RATE)) / RATE, np.arange(len(wave)) / 22_050, wave)
    return (np.clip(at_48k, -1, 1) * 32767).astype(np.int16)


def wav_bytes(samples: np.ndarray) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, RATE, format="WAV")
    return out.getvalue()


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values else None


@dataclass
class Listener:
    sent_at: list[float] = field(default_factory=list)  # when each chunk went out
    answers: list[tuple[float, float]] = field(default_factory=list)  # (arrival, audio seconds heard)
    errors: list[str] = field(default_factory=list)
    posted_late: list[float] = field(default_factory=list)  # chunk posted, seconds after its second ended


async def _listen(client: httpx.AsyncClient, url: str, index: int, chunks: list[bytes], fn: int, t0: float) -> Listener:
    me, session = Listener(), uuid.uuid4().hex[:10]

    async def read_stream() -> None:
        async with client.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}) as lines:
            async for line in lines.aiter_lines():
                if not line.startswith("data:"):
                    continue
                msg = json.loads(line[5:])
                if msg.get("msg") in ("process_streaming", "process_completed"):
                    if not msg.get("success", True):
                        me.errors.append(str(msg.get("output"))[:200])
                    texts = [d for d in msg.get("output", {}).get("data", []) if isinstance(d, str)]
                    heard = next((HEARD.search(t) for t in texts if HEARD.search(t)), None)
                    if heard and msg["msg"] == "process_streaming":  # the closing message repeats the last one
                        me.answers.append((time.monotonic(), int(heard[1]) * 60 + int(heard[2])))
                    if msg["msg"] == "process_completed":
                        return

    async def post_chunk(k: int, event: str | None) -> str:
        files = {"files": (f"chunk{k}.wav", chunks[k], "audio/wav")}
        uploaded = (await client.post(f"{url}gradio_api/upload", files=files)).json()[0]
        audio = {"path": uploaded, "meta": {"_type": "gradio.FileData"}, "orig_name": f"chunk{k}.wav"}
        body = {"data": [None, audio, "the microphone"], "fn_index": fn, "session_hash": session, "event_data": None}
        if event is None:  # the first chunk starts the streaming event
            return (await client.post(f"{url}gradio_api/queue/join", json=body)).json()["event_id"]
        (await client.post(f"{url}gradio_api/stream/{event}", json=body)).raise_for_status()
        return event

    reader, event = None, None
    try:
        await asyncio.sleep(index * 1.0 / 30)  # listeners press Start at different moments
        for k in range(len(chunks)):
            await asyncio.sleep(max(0.0, t0 + index / 30 + k + 1 - time.monotonic()))  # the k-th second ends
            me.sent_at.append(time.monotonic())
            event = await post_chunk(k, event)
            me.posted_late.append(time.monotonic() - (t0 + index / 30 + k + 1))
            reader = reader or asyncio.create_task(read_stream())  # Gradio streams a session's messages once joined
        await asyncio.sleep(3.0)  # the last answers
        await client.post(f"{url}gradio_api/stream/{event}/close")
        await asyncio.wait_for(reader, 10)
    except Exception as error:  # noqa: BLE001 - counted, reported
        me.errors.append(repr(error)[:200])
    finally:
        if reader:
            reader.cancel()
    return me


def _summary(listeners: list[Listener], seconds: int) -> dict:
    delays, gaps, updated_every = [], [], []
    for me in listeners:
        times = [t for t, _ in me.answers]
        for arrival, heard in me.answers:
            # the answer covers `heard` seconds: the chunk that completed them went out at sent_at[heard - 1]
            if 1 <= heard <= len(me.sent_at):
                delays.append(arrival - me.sent_at[heard - 1])
        steps = np.diff(times).tolist()
        gaps += steps
        updated_every.append(max(steps) if steps else seconds)
    return {
        "answer_delay_p50_s": pct(delays, 50),
        "answer_delay_p95_s": pct(delays, 95),
        "update_gap_p50_s": pct(gaps, 50),
        "update_gap_p95_s": pct(gaps, 95),
        "longest_gap_any_listener_s": round(max(updated_every), 2) if updated_every else None,
        "chunk_posted_late_p95_s": pct([x for m in listeners for x in m.posted_late], 95),
        "answers": sum(len(m.answers) for m in listeners),
        "listeners_never_answered": sum(not m.answers for m in listeners),
        "errors": sum(len(m.errors) for m in listeners),
        "first_errors": [e for m in listeners for e in m.errors][:3],
    }


async def _some(url: str, indices: list[int], seconds: int, t0: float) -> list[Listener]:
    chunks = {i: [wav_bytes(c) for c in music(i, seconds).reshape(seconds, RATE)] for i in indices}
    limits = httpx.Limits(max_connections=4 * len(indices) + 8, max_keepalive_connections=4 * len(indices) + 8)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:
        config = (await client.get(f"{url}config")).json()
        fn = next(i for i, d in enumerate(config["dependencies"]) if d.get("api_name") == "live")
        return list(await asyncio.gather(*(_listen(client, url, i, chunks[i], fn, t0) for i in indices)))


def _drive(url: str, indices: list[int], seconds: int, t0: float) -> list[Listener]:
    return asyncio.run(_some(url, indices, seconds, t0))


def _class(url: str, listeners: int, seconds: int) -> list[Listener]:
    """The class's phones, spread over processes (one Python process cannot post a class's chunks on time)."""
    procs = max(1, min(DRIVERS, listeners // 10))
    t0 = time.monotonic() + 5.0  # every process has made its music by then
    with ProcessPoolExecutor(procs) as pool:
        parts = pool.map(_drive, *zip(*[(url, list(range(p, listeners, procs)), seconds, t0) for p in range(procs)]))
        return [me for part in parts for me in part]


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / 100  # utime + stime, in clock ticks of 1/100 s


def _peak_rss_mb(pid: int) -> float:
    status = open(f"/proc/{pid}/status").read()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM"))) / 1024


def through_app(listeners: int, seconds: int, model: str | None = None) -> dict:
    with running_app(model) as app:
        cpu0, mine0, t0 = _cpu_seconds(app.pid), os.times(), time.monotonic()
        result = _class(app.url, listeners, seconds)
        wall = time.monotonic() - t0
        cpu, peak = _cpu_seconds(app.pid) - cpu0, _peak_rss_mb(app.pid)
        mine = sum(os.times()[:4]) - sum(mine0[:4])  # this process and its driver processes
    paces = [line.split("Live: ", 1)[1] for line in app.output.splitlines() if "Live: " in line]
    return {
        **_summary(result, seconds),
        "pace_changes": paces,  # the server's own log: when every listener began reading less (or more) often
        "server_cpu_cores_busy": round(cpu / wall, 2),
        "server_peak_rss_mb": round(peak),
        "driver_cpu_cores_busy": round(mine / wall, 2),  # this process, the class's browsers, on the same cores
    }


def in_process(listeners: int, seconds: int) -> dict:
    """The class without Gradio: `live_step` once a second per listener, one after another, in this process."""
    import live_view
    from genre_model.inference import GenreClassifier

    classifier = GenreClassifier.from_pretrained("musicnn-room", device="cpu")
    pcms = [music(i, seconds) for i in range(listeners)]
    states, steps, late = [None] * listeners, [], []
    t0 = time.monotonic()
    for k in range(seconds):
        due = t0 + k + 1
        time.sleep(max(0.0, due - time.monotonic()))
        for i in range(listeners):
            s = time.monotonic()
            states[i], *_ = live_view.live_step(classifier, states[i], (RATE, pcms[i][k * RATE : (k + 1) * RATE]))
            steps.append(time.monotonic() - s)
            late.append(time.monotonic() - due)
    return {
        "step_p50_ms": round(statistics.median(steps) * 1000, 1),
        "answer_delay_p50_s": pct(late, 50),
        "answer_delay_p95_s": pct(late, 95),
        f"{seconds}_s_of_audio_took_s": round(time.monotonic() - t0, 1),
    }


def main(listeners: int, seconds: int, model: str | None = None) -> int:
    report = {"listeners": listeners, "seconds": seconds, "through_app": through_app(listeners, seconds, model)}
    report["in_process"] = in_process(listeners, seconds)
    print(json.dumps(report, indent=2))
    return 0
