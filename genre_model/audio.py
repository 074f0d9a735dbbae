"""Turn whatever a user has (a file path or a Gradio ``(sample_rate, array)`` pair) into a checked,
mono float32 waveform at the model's sample rate.

Memory is bounded by design: files are decoded block by block, down-mixed and resampled as they stream,
and decoding stops at the *analysis limit* (``limit_s``, default 5 minutes). Peak memory is thus
about ``limit_s * sample_rate * 4`` bytes (26 MB at 22 050 Hz) plus one block, whatever the file's
length, channel count or sample rate.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

SAMPLE_RATE = 22_050
ANALYSIS_LIMIT_S = 300.0  # the analysis limit: analyze at most the first 5 minutes
MIN_SECONDS = 0.5
SILENCE_PEAK = 10 ** (-80 / 20)  # -80 dBFS: below this there is nothing for the model to hear
_BLOCK_FRAMES = 1 << 16
# what we offer to read (libsndfile formats; .m4a and others need ffmpeg)
AUDIO_SUFFIXES = {".wav", ".au", ".snd", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".m4a"}


class AudioError(ValueError):
    """Raised for any input we cannot analyze; the message says what is wrong and what to do. ``message`` is for
    whoever chose the audio; ``hint`` is for whoever runs the code (a browser user cannot install software)."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(f"{message} ({hint})" if hint else message)
        self.message = message


@dataclass(frozen=True)
class Waveform:
    """A mono float32 signal ready for the model, and what was done to get it."""

    samples: np.ndarray  # (n,) float32, in [-1, 1] for integer sources
    sample_rate: int
    duration_s: float  # length of the whole input
    analyzed_s: float  # length of ``samples``: the input, cut to the analysis limit

    @property
    def truncated(self) -> bool:
        return self.analyzed_s < self.duration_s - 1e-3


AudioInput = str | os.PathLike | tuple[int, np.ndarray]


def load_audio(
    source: AudioInput,
    sample_rate: int = SAMPLE_RATE,
    limit_s: float = ANALYSIS_LIMIT_S,
    min_seconds: float = MIN_SECONDS,
) -> Waveform:
    """Decode, down-mix, resample (soxr HQ) and validate ``source``.

    ``source`` is a path (wav, flac, ogg/vorbis, opus, mp3, au, aiff via libsndfile; anything else through
    ``ffmpeg`` when it is installed) or a ``(sample_rate, array)`` pair as Gradio gives it (int16, int32 or
    float; shape ``(n,)`` or ``(n, channels)``). Only the first ``limit_s`` seconds (the analysis limit) are kept.
    Raises :class:`AudioError` for unreadable, empty, too short, silent or non-finite input.
    """
    if isinstance(source, tuple):
        samples, duration_s = _from_array(source, sample_rate, limit_s)
    elif isinstance(source, (str, os.PathLike)):
        samples, duration_s = _from_file(Path(source), sample_rate, limit_s)
    else:
        raise AudioError(
            f"Cannot read audio from a {type(source).__name__}: give a file path or a (sample_rate, array) pair."
        )
    validate(samples, sample_rate, min_seconds)
    return Waveform(samples, sample_rate, duration_s, len(samples) / sample_rate)


def _from_array(pair: tuple[int, np.ndarray], sample_rate: int, limit_s: float) -> tuple[np.ndarray, float]:
    if len(pair) != 2:
        raise AudioError("Expected a (sample_rate, samples) pair.")
    rate, data = pair
    if not isinstance(rate, (int, np.integer)) or not 1_000 <= rate <= 768_000:
        raise AudioError(f"Sample rate {rate!r} is not valid: expected an integer between 1000 and 768000 Hz.")
    data = np.asarray(data)
    if data.ndim == 2 and data.shape[0] < data.shape[1] and data.shape[0] <= 8:
        data = data.T  # (channels, n) -> (n, channels)
    if data.ndim not in (1, 2):
        raise AudioError(f"Audio array has shape {data.shape}: expected (samples,) or (samples, channels).")
    duration_s = data.shape[0] / rate
    data = data[: int(limit_s * rate)]
    return _resample(to_mono_float(data), rate, sample_rate), duration_s


def to_mono_float(data: np.ndarray) -> np.ndarray:
    """Integer PCM -> float in [-1, 1]; (n, channels) -> (n,) by averaging channels."""
    if data.dtype.kind == "i":
        data = data.astype(np.float32) / float(np.iinfo(data.dtype).max + 1)
    elif data.dtype.kind == "u":  # 8-bit PCM is unsigned, centred on 128
        half = float(np.iinfo(data.dtype).max + 1) / 2
        data = (data.astype(np.float32) - half) / half
    elif data.dtype.kind == "f":
        data = data.astype(np.float32, copy=False)
    else:
        raise AudioError(f"Audio samples of type {data.dtype} are not supported: use integer or float PCM.")
    return downmix(data) if data.ndim == 2 else data


def downmix(data: np.ndarray) -> np.ndarray:
    """(n, channels) float32 -> (n,) channel average, as a matrix-vector product: numpy's mean over a short last
    axis runs one small reduction per frame; a product is one BLAS call."""
    return data @ np.full(data.shape[1], 1 / data.shape[1], dtype=np.float32)


def _resample(samples: np.ndarray, rate: int, sample_rate: int) -> np.ndarray:
    if rate == sample_rate or samples.size == 0:
        return np.ascontiguousarray(samples, dtype=np.float32)
    return soxr.resample(samples, rate, sample_rate, quality="HQ").astype(np.float32, copy=False)


def _from_file(path: Path, sample_rate: int, limit_s: float) -> tuple[np.ndarray, float]:
    if not path.is_file():
        raise AudioError(f"File '{path.name}' does not exist or is not a file.")
    if path.stat().st_size == 0:
        raise AudioError(f"File '{path.name}' is empty (0 bytes): upload a recording that contains audio.")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return _from_ffmpeg(path, sample_rate, limit_s)
    duration_s = info.frames / info.samplerate if info.frames > 0 else 0.0
    blocks = []
    resampler = soxr.ResampleStream(info.samplerate, sample_rate, 1, dtype="float32", quality="HQ")
    remaining = int(limit_s * info.samplerate)
    try:
        with sf.SoundFile(str(path)) as f:
            while remaining > 0:
                block = f.read(min(_BLOCK_FRAMES, remaining), dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                remaining -= len(block)
                mono = downmix(block)
                blocks.append(resampler.resample_chunk(mono, last=False) if info.samplerate != sample_rate else mono)
    except (sf.LibsndfileError, RuntimeError):
        raise AudioError(
            f"File '{path.name}' is damaged or truncated and could not be decoded. "
            "Re-export it as WAV, FLAC, OGG or MP3 and try again."
        ) from None
    if info.samplerate != sample_rate:
        blocks.append(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    samples = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return samples, max(duration_s, len(samples) / sample_rate)


def _from_ffmpeg(path: Path, sample_rate: int, limit_s: float) -> tuple[np.ndarray, float]:
    """Formats libsndfile cannot read (m4a, aac, wma, video files...) via ffmpeg, when installed."""
    ffmpeg = shutil.which("ffmpeg")
    not_audio = (
        f"File '{path.name}' is not an audio file this app can read. Use WAV, FLAC, OGG/Vorbis, Opus, MP3, AIFF or AU"
    )
    if ffmpeg is None:
        raise AudioError(not_audio + ".", hint="install ffmpeg to read other formats")
    cmd = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-t",
        str(limit_s),
        "-i",
        str(path),
        "-ac",
        "1",
        "-ar",
        str(sample_rate),
        "-f",
        "f32le",
        "-",
    ]
    try:
        out = subprocess.run(cmd, capture_output=True, timeout=120, check=True).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
        raise AudioError(not_audio + ".") from None
    samples = np.frombuffer(out, dtype="<f4").copy()
    return samples, len(samples) / sample_rate  # ffmpeg stops at limit_s: the full length is unknown


def validate(samples: np.ndarray, sample_rate: int, min_seconds: float = MIN_SECONDS) -> None:
    """Raise `AudioError` for samples the model cannot analyze: empty, non-finite, too short or silent."""
    if samples.size == 0:
        raise AudioError("The audio is empty: it contains no samples. Record or upload a longer clip.")
    if not np.isfinite(samples).all():
        raise AudioError("The audio contains invalid samples (NaN or infinity). Re-export the file and try again.")
    seconds = samples.size / sample_rate
    if seconds < min_seconds:
        raise AudioError(
            f"The audio is too short ({seconds:.2f} s): at least {min_seconds:g} s is needed, 3 s or more is better."
        )
    if np.abs(samples).max() < SILENCE_PEAK:
        raise AudioError("The audio is silent (peak below -80 dBFS): check the microphone or the file's volume.")
