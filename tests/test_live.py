import numpy as np
import pytest

from genre_model.audio import AudioError
from genre_model.live import LiveListener
from tests.conftest import SR, noise


def test_streamed_48k_chunks_match_offline_prediction(classifier):
    x48 = noise(8.0, sr=48_000, seed=3)
    pcm = (x48 * 32767).astype(np.int16)
    listener = LiveListener(SR, buffer_s=6.0)
    for i in range(0, len(pcm), 24_000):  # 0.5 s chunks, as the browser sends them
        listener.push(48_000, pcm[i : i + 24_000])
    assert listener.heard_s == pytest.approx(8.0)
    assert abs(len(listener.samples) - 6 * SR) <= 1
    live = listener.classify(classifier)
    offline = classifier.predict((48_000, pcm[-6 * 48_000 :]))
    np.testing.assert_allclose(list(live.probabilities.values()), list(offline.probabilities.values()), atol=0.02)
    assert listener.history[-1].end_s == pytest.approx(8.0)


def test_silence_is_reported_not_crashing(classifier):
    listener = LiveListener(SR)
    listener.push(48_000, np.zeros((48_000, 1), np.int16))
    with pytest.raises(AudioError, match="silent"):
        listener.classify(classifier)
