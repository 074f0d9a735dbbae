import librosa
import numpy as np
import pytest
import torch

from genre_model.features import LogMel
from tests.conftest import SR, chirp, noise


@pytest.mark.parametrize("n_fft, hop, n_mels", [(2048, 512, 128), (2048, 1024, 128), (1024, 256, 64)])
def test_logmel_matches_librosa(n_fft, hop, n_mels):
    y = chirp(3.0) + 0.1 * noise(3.0)
    ours = LogMel(SR, n_fft, hop, n_mels, 0.0, SR / 2)(torch.from_numpy(y)[None])[0].numpy()
    mel = librosa.feature.melspectrogram(y=y, sr=SR, n_fft=n_fft, hop_length=hop, n_mels=n_mels, fmin=0, fmax=SR / 2)
    ref = librosa.power_to_db(mel, ref=np.max, top_db=80.0)
    assert ours.shape == ref.shape == (n_mels, len(y) // hop + 1)
    # float32 STFT vs librosa's float64 path: a few hundredths of a dB where the signal is, looser near -80 dB
    loud = ref > -60
    assert np.abs(ours - ref)[loud].max() < 0.05
    assert np.abs(ours - ref).mean() < 0.05


def test_logmel_is_per_item_and_level_invariant():
    front = LogMel(SR, 2048, 512, 128)
    y = torch.from_numpy(chirp(2.0))
    batch = torch.stack([y, 0.01 * y, torch.from_numpy(noise(2.0))])
    out = front(batch)
    assert out.shape == (3, 128, 2 * SR // 512 + 1)
    torch.testing.assert_close(out[0], out[1], atol=1e-2, rtol=0)  # 40 dB quieter: same features
    assert float(out.amax(dim=(1, 2)).abs().max()) == 0.0 and float(out.min()) >= -80.0


def test_mel_frequencies_are_increasing_hz():
    hz = LogMel(SR, 2048, 512, 128, 0.0, SR / 2).mel_frequencies.numpy()
    assert len(hz) == 128 and np.all(np.diff(hz) > 0) and 0 < hz[0] < 50 and 9000 < hz[-1] < SR / 2
