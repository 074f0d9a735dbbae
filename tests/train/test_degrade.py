import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from genre_model.synth import four_on_the_floor, waltz
from tests.conftest import SR
from train.degrade import SEVERITIES, degrade


def band_energy_db(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return 10 * np.log10(spectrum[(f >= lo) & (f < hi)].sum() / spectrum.sum())


def residual_snr_db(clean: np.ndarray, degraded: np.ndarray) -> float:
    """SNR of ``degraded`` against the best scaled copy of ``clean`` (filters make this a lower bound)."""
    gain = np.dot(degraded, clean) / np.dot(clean, clean)
    return 10 * np.log10(np.sum((gain * clean) ** 2) / np.sum((degraded - gain * clean) ** 2))


@pytest.mark.parametrize("severity", list(SEVERITIES))
def test_deterministic_same_length_finite(severity):
    x = waltz(4.0)
    a, b = degrade(x, SR, severity, seed=7), degrade(x, SR, severity, seed=7)
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, degrade(x, SR, severity, seed=8))


def test_it_actually_degrades_and_more_with_severity():
    x = four_on_the_floor(6.0)
    snr = {s: np.mean([residual_snr_db(x, degrade(x, SR, s, seed=k)) for k in range(3)]) for s in SEVERITIES}
    assert snr["light"] > snr["moderate"] > snr["severe"]
    assert snr["moderate"] < 10  # clearly not the clean signal any more
    # the bass below 100 Hz (the kick) is mostly lost through a small speaker
    assert band_energy_db(degrade(x, SR, "severe", seed=0), 20, 100) < band_energy_db(x, 20, 100) - 6


def test_unknown_severity():
    with pytest.raises(ValueError, match="choose one of"):
        degrade(waltz(1.0), SR, "apocalyptic")


def test_evaluate_with_degrade_on_generated_audio(random_model_dir, tmp_path):
    for genre, make in (("classical", waltz), ("disco", four_on_the_floor)):
        (tmp_path / genre).mkdir()
        for i in range(2):
            sf.write(tmp_path / genre / f"{genre}.{i:05d}.wav", make(4.0, seed=i), SR)
    cmd = [sys.executable, "-m", "train.evaluate", "--model", str(random_model_dir), "--data", str(tmp_path),
           "--degrade", "moderate", "--json", "--confusion-html", str(tmp_path / "c.html")]  # fmt: skip
    runs = [subprocess.run(cmd, capture_output=True, text=True, timeout=300) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["degrade"] == "moderate" and first["n_clips"] == 4
    assert first["confusion"] == second["confusion"]  # same degradation every run


def test_live_stream_of_a_degraded_clip_agrees_with_offline(classifier):
    """The Live tab's path (48 kHz int16 chunks -> rolling window) sees what offline analysis sees."""
    from genre_model.live import LiveListener

    degraded = degrade(four_on_the_floor(9.0), SR, "moderate", seed=3)
    pcm48 = (np.clip(soxr_48k(degraded), -1, 1) * 32767).astype(np.int16)
    listener = LiveListener(classifier.sample_rate, window_s=6.0)
    for i in range(0, len(pcm48), 48_000):
        listener.push(48_000, pcm48[i : i + 48_000])
        if listener.heard_s >= 3.0:
            live = listener.classify(classifier)
            end = int(listener.heard_s * 48_000)
            offline = classifier.predict((48_000, pcm48[max(0, end - 6 * 48_000) : end]))
            assert live.genre == offline.genre
            np.testing.assert_allclose(list(live.probabilities.values()), list(offline.probabilities.values()),
                                       atol=0.03)  # fmt: skip


def soxr_48k(x: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(x, SR, 48_000)
