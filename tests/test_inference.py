from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from genre_model.audio import AudioError
from genre_model.config import GTZAN_GENRES as GENRES
from genre_model.inference import GenreClassifier
from genre_model.loading import ModelNotFoundError
from tests.conftest import SR, chirp, noise, tone


def test_prediction_fields(classifier, write_audio):
    p = classifier.predict(write_audio("clip.wav", chirp(4.0)))
    assert list(p.probabilities) == GENRES
    assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    assert p.genre == max(p.probabilities, key=p.probabilities.get)
    assert p.duration_s == pytest.approx(4.0, abs=0.01) and p.analyzed_s == pytest.approx(4.0, abs=0.01)
    assert p.model_name == "chunk-cnn-random" and p.device == "cpu" and p.elapsed_ms > 0
    assert p.tags is None  # trained from scratch: no pretrained tagger to report
    assert [g for g, _ in p.top(3)] == sorted(GENRES, key=lambda g: -p.probabilities[g])[:3]


def test_short_audio_is_one_window_without_segments(classifier):
    p = classifier.predict((SR, tone(seconds=2.0)))
    assert p.segments == []


def test_segments_cover_long_audio(classifier):
    seconds = 31.0
    p = classifier.predict((SR, noise(seconds)), with_features=True)
    assert p.segments[0].start_s == 0.0 and p.segments[-1].end_s == pytest.approx(seconds, abs=1e-3)
    for a, b in zip(p.segments, p.segments[1:]):
        assert b.start_s <= a.end_s  # no gaps
    for s in p.segments:
        assert sum(s.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
    mean = np.mean([list(s.probabilities.values()) for s in p.segments], axis=0)
    np.testing.assert_allclose(list(p.probabilities.values()), mean / mean.sum(), atol=1e-6)
    # the stitched log-mel spans the clip on one increasing time axis
    assert p.logmel.shape[0] == 128 and p.logmel.shape[1] == len(p.frame_times_s)
    assert np.all(np.diff(p.frame_times_s) > 0) and p.frame_times_s[-1] < seconds


def test_predict_many_equals_predict(classifier):
    items = [(SR, tone(220, 3.5)), (SR, noise(7.0)), (44_100, chirp(2.0, sr=44_100))]
    many = classifier.predict_many(items)
    for item, p in zip(items, many):
        single = classifier.predict(item)
        np.testing.assert_allclose(list(p.probabilities.values()), list(single.probabilities.values()), atol=1e-5)


def test_threads_give_the_same_results_as_one(classifier):
    items = [(SR, noise(5.0, seed=i)) for i in range(8)]
    expected = [classifier.predict(x).probabilities for x in items]
    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(lambda x: classifier.predict(x).probabilities, items * 2))
    for e, g in zip(expected * 2, got):
        np.testing.assert_allclose(list(e.values()), list(g.values()), atol=1e-5)


def test_bad_input_raises_audio_error(classifier):
    with pytest.raises(AudioError, match="silent"):
        classifier.predict((SR, np.zeros(SR * 2, np.float32)))


def test_missing_model_names_the_path(tmp_path):
    with pytest.raises(ModelNotFoundError, match="missing-model"):
        GenreClassifier.from_pretrained(tmp_path / "missing-model")
