import threading

import numpy as np
import pytest

from genre_model.audio import AudioError
from genre_model.live import Batcher, LiveListener
from tests.conftest import SR, noise


def _stream(classifier, audio: np.ndarray, batcher: Batcher | None = None) -> tuple[LiveListener, list]:
    """``audio`` at the model's rate, 1 s chunks, a reading whenever one is due."""
    listener, readings = LiveListener.for_classifier(classifier, buffer_s=6.0, context_s=12.0), []
    for i in range(0, len(audio), SR):
        listener.push(SR, audio[i : i + SR])
        if listener.due(0.9):
            readings.append(listener.read(classifier, batcher))
    return listener, readings


def test_incremental_windows_equal_windows_recomputed_from_the_whole_stream(classifier):
    """Each reading classifies only the newest model window and reuses earlier ones: every window kept, and the live
    buffer's prediction made of them, equal what the model gives on the same samples cut from the whole stream."""
    audio = noise(10.0, seed=4)
    win = classifier.model.config.window_samples
    listener, readings = _stream(classifier, audio)
    assert len(readings) == 8  # seconds 3 to 10: one new window each
    ends = [end for end, _ in listener.windows]
    assert ends == [k * SR for k in range(7, 11)]  # those still inside the 6 s live buffer
    recomputed = classifier.window_probabilities(np.stack([audio[e - win : e] for e in ends]))
    np.testing.assert_allclose(np.stack([p for _, p in listener.windows]), recomputed, rtol=0, atol=1e-6)
    last = listener.history[-1]
    mean = recomputed.mean(axis=0)
    np.testing.assert_allclose(list(last.probabilities.values()), mean / mean.sum(), atol=1e-6)
    assert (last.start_s, last.end_s) == pytest.approx(((7 * SR - win) / SR, 10.0))


def test_streamed_48k_chunks_agree_with_offline_prediction(classifier):
    x48 = noise(8.0, sr=48_000, seed=3)
    pcm = (x48 * 32767).astype(np.int16)
    listener = LiveListener.for_classifier(classifier, buffer_s=6.0)
    for i in range(0, len(pcm), 24_000):  # 0.5 s chunks, as the browser sends them
        listener.push(48_000, pcm[i : i + 24_000])
    assert listener.heard_s == pytest.approx(8.0)
    assert abs(len(listener.samples) - 6 * SR) <= 300  # the resampler holds back a few samples
    listener.read(classifier)
    offline = classifier.predict((48_000, pcm[-6 * 48_000 :]))
    live = listener.history[-1].probabilities
    np.testing.assert_allclose(list(live.values()), list(offline.probabilities.values()), atol=0.05)


def test_batched_listeners_get_what_each_gets_alone(classifier):
    """Three listeners stepping together through one `Batcher`: fewer forward passes than windows, and every reading
    what the same listener reads with the model alone."""
    audios = [noise(6.0, seed=s) * (0.2 + 0.2 * s) for s in range(3)]
    alone = [_stream(classifier, a)[1] for a in audios]
    batcher = Batcher(classifier, gather_s=0.5)
    together: dict[int, list] = {}
    barrier = threading.Barrier(3)

    def listen(i: int) -> None:
        listener = LiveListener.for_classifier(classifier, buffer_s=6.0, context_s=12.0)
        together[i] = []
        for k in range(0, len(audios[i]), SR):
            listener.push(SR, audios[i][k : k + SR])
            barrier.wait()  # the three steps arrive together, as a class's do
            if listener.due(0.9):
                together[i].append(listener.read(classifier, batcher))

    threads = [threading.Thread(target=listen, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(3):
        assert [r.headline for r in together[i]] == [r.headline for r in alone[i]]
        for a, b in zip(together[i], alone[i]):
            np.testing.assert_allclose(list(a.probabilities.values()), list(b.probabilities.values()), atol=1e-5)
    readings = sum(len(r) for r in together.values())
    assert readings == 12 and batcher.passes < readings


def test_pace_slows_every_listener_when_the_process_is_busy_and_recovers(classifier, monkeypatch):
    import genre_model.live as live

    clock = {"wall": 0.0, "cpu": 0.0}
    monkeypatch.setattr(live.time, "monotonic", lambda: clock["wall"])
    monkeypatch.setattr(live.time, "process_time", lambda: clock["cpu"])
    batcher = Batcher(classifier, busy_cores=0.9)
    for cores, pace in ((0.5, 1), (1.5, 1), (1.5, 2), (1.5, 2), (0.5, 1)):  # a load lasts 10 s; at most pace 2
        for _ in range(12):
            clock["wall"] += 0.5
            clock["cpu"] += 0.5 * cores
            batcher._set_pace()
        assert batcher.pace == pace


def test_due_after_enough_audio_or_enough_time(classifier, monkeypatch):
    import genre_model.live as live

    now = {"t": 100.0}
    monkeypatch.setattr(live.time, "monotonic", lambda: now["t"])
    listener, _ = _stream(classifier, noise(4.0, seed=1))
    assert not listener.due(1.8)  # a reading was just made
    listener.push(SR, noise(1.0, seed=2))
    assert not listener.due(1.8)  # 1 s of audio, no time passed
    now["t"] += 2.0  # a chunk went missing on the way: the time still brings the next answer
    assert listener.due(1.8)


def test_silence_is_reported_not_crashing(classifier):
    listener = LiveListener.for_classifier(classifier)
    for _ in range(4):
        listener.push(48_000, np.zeros((48_000, 1), np.int16))
    with pytest.raises(AudioError, match="silent"):
        listener.read(classifier)
