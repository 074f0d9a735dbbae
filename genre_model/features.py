"""The log-mel front ends, as modules inside every model so the preprocessing ships with the weights."""

from __future__ import annotations

import numpy as np
import torch
import torchaudio
from torch import nn


def mel_band_centres(scale: torchaudio.transforms.MelScale) -> torch.Tensor:
    """Centre frequency in Hz of each (Slaney) mel band, lowest first: for plot axes."""
    import librosa  # imported here: only plots need it, and it is slow to import

    f_max = scale.f_max if scale.f_max is not None else scale.sample_rate / 2
    edges = librosa.mel_frequencies(scale.n_mels + 2, fmin=scale.f_min, fmax=f_max)
    return torch.from_numpy(edges[1:-1]).float()


def not_saved(front_end: nn.Module) -> None:
    """Re-register every buffer of ``front_end`` (torchaudio's STFT window and mel filters) as non-persistent: they
    follow from the config, so they are rebuilt, not stored with the weights."""
    for module in front_end.modules():
        for name, buffer in list(module.named_buffers(recurse=False)):
            module.register_buffer(name, buffer, persistent=False)


def slaney_mel_power(sample_rate: int, n_fft: int, hop_length: int, n_mels: int, **kwargs) -> nn.Module:
    """The mel power spectrogram both front ends start from (librosa's defaults: Slaney mel scale and norm)."""
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=n_fft,
        hop_length=hop_length,
        n_mels=n_mels,
        power=2.0,
        center=True,
        pad_mode="constant",
        norm="slaney",
        mel_scale="slaney",
        **kwargs,
    )


class LogMel(nn.Module):
    """Waveform ``(batch, samples)`` -> log-mel ``(batch, n_mels, frames)`` in dB relative to each item's peak.

    Equivalent to ``librosa.power_to_db(librosa.feature.melspectrogram(y, sr, n_fft=..., hop_length=...,
    n_mels=..., fmin=..., fmax=...), ref=np.max, top_db=top_db)``: Slaney mel scale and norm, centred
    frames, zero padding. Values lie in ``[-top_db, 0]``; referencing each item's peak makes the features
    independent of the recording level (a classroom mic is never at GTZAN's level).
    ``frames = samples // hop_length + 1``.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        n_mels: int,
        f_min: float = 0.0,
        f_max: float | None = None,
        top_db: float = 80.0,
    ):
        super().__init__()
        self.top_db = top_db
        self.melspec = slaney_mel_power(sample_rate, n_fft, hop_length, n_mels, f_min=f_min, f_max=f_max)
        self.power_to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)
        not_saved(self)

    @staticmethod
    def loudness_db(logmel: np.ndarray) -> np.ndarray:
        """This front end's output in dB (for figures): it already is, relative to the clip's peak."""
        return logmel

    @property
    def mel_frequencies(self) -> torch.Tensor:
        return mel_band_centres(self.melspec.mel_scale)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        db = self.power_to_db(self.melspec(waveform))  # (batch, n_mels, frames)
        db = db - db.amax(dim=(-2, -1), keepdim=True)  # per item, not across the batch
        return db.clamp(min=-self.top_db)


class LogCompressedMel(nn.Module):
    """Waveform (batch, samples) -> ``log10(1 + 10000 * mel power)`` (batch, n_mels, frames): musicnn's input,
    computed in float32 (the wheel rounds to float16 first, which overflows on real music)."""

    @staticmethod
    def loudness_db(logmel: np.ndarray) -> np.ndarray:
        """This front end's output, log10(1 + 10^4 power), back to dB of power (for figures)."""
        return 10 * np.log10(np.maximum(10.0**logmel - 1, 0) / 10_000 + 1e-10)

    def __init__(self, sample_rate: int, n_fft: int, hop_length: int, n_mels: int):
        super().__init__()
        self.melspec = slaney_mel_power(sample_rate, n_fft, hop_length, n_mels)
        not_saved(self)

    @property
    def mel_frequencies(self) -> torch.Tensor:
        return mel_band_centres(self.melspec.mel_scale)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.log10(1 + 10_000 * self.melspec(waveform))
