"""What a laptop microphone hears when music plays from a speaker across a classroom, as a random but seeded
transform of a clean clip (same length, same sample rate).

Chain: level change -> speaker (band limits + uneven EQ, a little overdrive) -> room (synthetic exponential-decay
impulse response) -> background noise (pink, fan hum, speech-like murmur) at an SNR -> microphone (band limits)
-> automatic gain control -> occasional clipping -> 48 kHz capture resampled back to the clip's rate.
Filters, resampling and convolution come from ``torchaudio.functional`` (tested, vectorised, no extra dependency);
only the impulse response, the noises and the AGC envelope are written here, as they are a few lines each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF


@dataclass(frozen=True)
class Severity:
    snr_db: tuple[float, float]  # background noise level relative to the music
    rt60_s: tuple[float, float]  # room reverberation time
    wet: tuple[float, float]  # reverberant share of the sound reaching the mic
    highpass_hz: tuple[float, float]  # small speakers lose the bass
    lowpass_hz: tuple[float, float]  # and the top end
    eq_db: float  # max gain of each of three random peaking filters
    clip_probability: float


SEVERITIES = {
    "light": Severity((25, 35), (0.2, 0.4), (0.1, 0.25), (60, 120), (10_000, 11_000), 3.0, 0.0),
    "moderate": Severity((12, 20), (0.4, 0.7), (0.25, 0.45), (120, 250), (6_000, 9_000), 6.0, 0.2),
    "severe": Severity((3, 10), (0.7, 1.2), (0.4, 0.65), (200, 400), (3_500, 6_000), 9.0, 0.5),
}


def degrade(samples: np.ndarray, sample_rate: int, severity: str = "moderate", seed: int = 0) -> np.ndarray:
    """A degraded copy of mono ``samples`` (float32, same length); deterministic for a given ``seed``."""
    if severity not in SEVERITIES:
        raise ValueError(f"Unknown severity '{severity}': choose one of {', '.join(SEVERITIES)}.")
    s, rng = SEVERITIES[severity], np.random.default_rng(seed)
    x = torch.from_numpy(np.asarray(samples, dtype=np.float32)).clone()
    n, sr = len(x), sample_rate

    def pick(bounds: tuple[float, float]) -> float:
        return float(rng.uniform(*bounds))

    x = x * 10 ** (rng.uniform(-12, 0) / 20)  # the teacher's volume knob
    # speaker: band-limited, uneven response, slightly driven
    x = AF.highpass_biquad(x, sr, pick(s.highpass_hz))
    x = AF.lowpass_biquad(x, sr, min(pick(s.lowpass_hz), 0.45 * sr))
    for centre in np.exp(rng.uniform(np.log(300), np.log(min(6_000, 0.4 * sr)), size=3)):
        x = AF.equalizer_biquad(x, sr, float(centre), float(rng.uniform(-s.eq_db, s.eq_db)), Q=1.0)
    x = torch.tanh(1.5 * x) / 1.5
    # room
    wet = AF.fftconvolve(x, torch.from_numpy(_impulse_response(pick(s.rt60_s), sr, rng)))[:n]
    share = pick(s.wet)
    x = (1 - share) * x + share * wet * (x.pow(2).mean() / wet.pow(2).mean().clamp_min(1e-12)).sqrt()
    # background noise at the chosen SNR
    noise = torch.from_numpy(_background(n, sr, rng))
    snr = pick(s.snr_db)
    x = x + noise * (x.pow(2).mean() / noise.pow(2).mean().clamp_min(1e-12) / 10 ** (snr / 10)).sqrt()
    # microphone, then automatic gain control
    x = AF.lowpass_biquad(AF.highpass_biquad(x, sr, 80.0), sr, min(9_000.0, 0.45 * sr))
    x = _agc(x, sr)
    if rng.random() < s.clip_probability:
        limit = float(rng.uniform(0.3, 0.7)) * float(x.abs().max())
        x = x.clamp(-limit, limit)
    # browsers capture at 48 kHz; the app resamples back
    x = AF.resample(AF.resample(x, sr, 48_000), 48_000, sr)[:n]
    return torch.nn.functional.pad(x, (0, n - len(x))).numpy().astype(np.float32)


def _impulse_response(rt60_s: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Direct sound plus exponentially decaying noise (-60 dB at ``rt60_s``), unit energy."""
    t = np.arange(int(rt60_s * sr)) / sr
    ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60_s)
    ir[: int(0.003 * sr)] = 0  # a few ms before the first reflection
    ir[0] = 1.0
    return (ir / np.sqrt(np.sum(ir**2))).astype(np.float32)


def _background(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A random mix of pink noise, fan hum and a speech-like murmur."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / sr)
    pink = np.fft.irfft(spectrum / np.sqrt(np.maximum(f, 20.0)), n)
    t = np.arange(n) / sr
    mains = rng.choice([50.0, 60.0])
    hum = sum(np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 6))
    babble_band = np.fft.irfft(spectrum * ((f > 200) & (f < 3_000)), n)
    syllables = 0.5 + 0.5 * np.sin(2 * np.pi * 4.0 * t + rng.uniform(0, 6.3))  # ~4 syllables a second
    parts = [p / (np.std(p) + 1e-12) for p in (pink, hum, babble_band * syllables)]
    weights = rng.dirichlet(np.ones(3))
    return sum(w * p for w, p in zip(weights, parts)).astype(np.float32)


def _agc(x: torch.Tensor, sr: int, target_rms: float = 0.1, max_gain_db: float = 30.0) -> torch.Tensor:
    """Laptop-style automatic gain: follow a smoothed 50 ms RMS envelope towards ``target_rms``."""
    hop = int(0.05 * sr)
    frames = torch.nn.functional.pad(x, (0, (-len(x)) % hop)).reshape(-1, hop)
    rms = frames.pow(2).mean(dim=1).sqrt().clamp_min(1e-6)
    gain = (target_rms / rms).clamp(max=10 ** (max_gain_db / 20))
    smooth = AF.lfilter(gain[None], torch.tensor([[1.0, -0.9]]), torch.tensor([[0.1, 0.0]]), clamp=False)[0]
    return x * torch.repeat_interleave(smooth, hop)[: len(x)]
