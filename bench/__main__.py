"""``python -m bench``: one JSON document of speed and memory numbers measured now, on this machine.

Uses generated audio only. Models: the committed ``weights/`` (missing ones are reported, not faked).
"""

from __future__ import annotations

import json
import platform
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from threadpoolctl import threadpool_info

from genre_model.audio import load_audio
from genre_model.explain import explain
from genre_model.inference import GenreClassifier
from genre_model.loading import DEFAULT_MODEL, WEIGHTS_DIR
from genre_model.plots import prediction_figures
from genre_model.registry import architectures, build_model
from genre_model.synth import EXAMPLES

from .faithfulness import faithfulness
from .serve import running_app


def timed(fn: Callable[[], object], repeat: int, between: Callable[[], object] | None = None) -> dict:
    """p50/p95 in ms over ``repeat`` calls after one warm-up call; ``between``, if given, runs (untimed) before each."""
    fn()
    times = []
    for _ in range(repeat):
        if between is not None:
            between()
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": round(statistics.median(times), 2), "p95_ms": round(float(np.percentile(times, 95)), 2)}


def clip_30s(seed: int = 0) -> np.ndarray:
    makers = list(EXAMPLES.values())
    return makers[seed % len(makers)](seconds=30.0, seed=seed)


def stages(classifier: GenreClassifier, path: Path) -> dict:
    """Where the time goes for one 30 s file (44.1 kHz stereo wav)."""
    import librosa

    cfg = classifier.model.config
    raw, sr = sf.read(path, dtype="float32")
    wave = load_audio(path, cfg.sample_rate)
    windows = torch.from_numpy(classifier.all_windows(wave.samples))
    to_logmel = classifier.model.to_logmel
    logmel = to_logmel(windows)
    prediction = classifier.predict(wave, with_features=True)
    y = wave.samples

    def librosa_logmel():
        mel = librosa.feature.melspectrogram(
            y=y, sr=cfg.sample_rate, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels, fmax=cfg.f_max
        )
        librosa.power_to_db(mel, ref=np.max, top_db=cfg.top_db)

    with torch.inference_mode():
        out = {
            "decode_file": timed(lambda: sf.read(path, dtype="float32"), 10),
            "downmix_resample_44k1_stereo": timed(lambda: load_audio((sr, raw), cfg.sample_rate), 10),
            "load_audio_total": timed(lambda: load_audio(path, cfg.sample_rate), 10),
            "logmel_ours": timed(lambda: to_logmel(torch.from_numpy(y)[None]), 20),
            "logmel_librosa": timed(librosa_logmel, 5),
            "network_all_windows": timed(lambda: classifier.model.classify(logmel), 20),
            "figures": timed(lambda: prediction_figures(prediction, y, cfg.sample_rate, to_logmel), 10),
        }
    out["logmel_ratio_ours_over_librosa"] = round(out["logmel_ours"]["p50_ms"] / out["logmel_librosa"]["p50_ms"], 3)
    return out


def predict_interleaved(classifier: GenreClassifier) -> dict:
    """predict of a 30 s clip as a user's script or the app calls it: alone, and with other numeric work between calls
    (a librosa mel spectrogram, BLAS-heavy; a numpy FFT)."""
    import librosa

    clip, other = (22_050, clip_30s(2)), clip_30s(3)

    def predict():
        classifier.predict(clip)

    def mel():
        librosa.feature.melspectrogram(y=other, sr=22_050)

    return {
        "alone": timed(predict, 20),
        "librosa_mel_between": timed(predict, 20, mel),
        "numpy_fft_between": timed(predict, 20, lambda: np.fft.rfft(other)),
    }


def live_handler(classifier: GenreClassifier) -> dict:
    import live_view

    pcm = (clip_30s(1)[: 22_050 * 20] * 32767).astype(np.int16)
    pcm48 = (load_audio((22_050, pcm), 48_000).samples * 32767).astype(np.int16)
    state, times = None, []
    for i in range(0, len(pcm48), 48_000):
        t0 = time.perf_counter()
        state, *_ = live_view.live_step(classifier, state, (48_000, pcm48[i : i + 48_000]))
        times.append((time.perf_counter() - t0) * 1000)
    steady = times[6:]  # once the live buffer is full
    return {"per_1s_chunk_p50_ms": round(statistics.median(steady), 1), "p95_ms": round(np.percentile(steady, 95), 1)}


def training_step_seconds(arch: str, batch_size: int, steps_per_epoch: int) -> dict:
    from train.network import train_step

    torch.manual_seed(0)
    model = build_model(arch).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = 0.1 * torch.randn(batch_size, model.config.window_samples)
    y = torch.nn.functional.one_hot(torch.arange(batch_size) % 10, 10).float()
    train_step(model, optimizer, x, y)
    t0 = time.perf_counter()
    for _ in range(3):
        train_step(model, optimizer, x, y)
    step = (time.perf_counter() - t0) / 3
    return {
        "seconds_per_step": round(step, 3),
        "batch_size": batch_size,
        "steps_per_epoch": steps_per_epoch,
        "seconds_per_epoch_estimate": round(step * steps_per_epoch, 1),
    }


def cold_start_seconds() -> float:
    with running_app() as app:
        return round(app.start_seconds, 2)


def main() -> None:
    t_start = time.perf_counter()
    torch.manual_seed(0)
    machine = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads()}
    report: dict = {"machine": {**machine, "cpu": platform.processor() or platform.machine()}}
    # what a plain script gets: the library sets no allocator option, and neither does this benchmark
    report["machine"]["allocator"] = "defaults (no process-wide setting)"
    models = [DEFAULT_MODEL] + [name for name in architectures() if name != DEFAULT_MODEL]
    available = [m for m in models if (WEIGHTS_DIR / m / "model.safetensors").exists()]
    report["missing_models"] = [m for m in models if m not in available]
    with tempfile.TemporaryDirectory() as tmp:
        x = clip_30s(0)
        stereo44 = Path(tmp) / "clip30_44k.wav"
        sf.write(stereo44, np.stack([load_audio((22_050, x), 44_100).samples] * 2, axis=1), 44_100)
        classifiers = {m: GenreClassifier.from_pretrained(m, device="cpu") for m in available}
        # what the classifiers hold numpy's BLAS to (see `GenreClassifier`)
        blas = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
        report["machine"]["blas_threads"] = blas
        if classifiers:
            default = classifiers[available[0]]
            report["stages_30s_clip"] = {"model": available[0], **stages(default, stereo44)}
            report["predict_30s_file"] = {m: timed(lambda c=c: c.predict(stereo44), 20) for m, c in classifiers.items()}
            report["predict_30s_interleaved"] = {"model": available[0], **predict_interleaved(default)}
            clips = [(22_050, clip_30s(i)) for i in range(100)]
            t0 = time.perf_counter()
            for start in range(0, 100, 20):
                default.predict_many(clips[start : start + 20])
            report["predict_many_100_clips"] = {
                "model": available[0],
                "clips_per_s": round(100 / (time.perf_counter() - t0), 1),
            }
            report["live_handler"] = live_handler(default)
        report["weights_mb"] = {
            m: round((WEIGHTS_DIR / m / "model.safetensors").stat().st_size / 1e6, 2) for m in available
        }
    report["training_cpu"] = {
        "chunk-cnn": training_step_seconds("chunk-cnn", 32, 45),  # 353 clips x 4 crops / 32
        "seed-cnn": training_step_seconds("seed-cnn", 16, 23),  # 353 clips / 16
    }
    if classifiers:  # the Explain tab's cost over the Analyze tab's on the same decoded clip
        wave = default.load((22_050, x))
        predict_ms = timed(lambda: default.predict(wave, with_features=True), 5)
        explain_ms = timed(lambda: explain(default, wave), 5)
        extra = round(explain_ms["p50_ms"] - predict_ms["p50_ms"], 2)
        report["explain_30s_clip"] = {
            "model": available[0],
            "predict": predict_ms,
            "explain": explain_ms,
            "extra_p50_ms": extra,
        }
        report["explanation_faithfulness"] = {"model": available[0], **faithfulness(default)}
    report["app_cold_start_s"] = cold_start_seconds()
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    report["bench_seconds"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
