import numpy as np

from genre_model.plots import confusion_figure, prediction_figures, probability_figure, waveform_figure
from tests.conftest import SR, noise


def test_prediction_figures(classifier):
    x = noise(10.0)
    p = classifier.predict((SR, x), with_features=True)
    figs = prediction_figures(p, x, SR, classifier.model.frontend.mel_frequencies.numpy())
    bars = figs["probabilities"].data[0]
    assert list(bars.y)[-1] == p.genre and max(bars.x) == max(p.probabilities.values()) * 100
    heat = figs["spectrogram"].data[0]
    assert heat.z.shape == p.logmel.shape and figs["spectrogram"].layout.yaxis.title.text == "frequency (Hz)"
    assert float(figs["spectrogram"].layout.yaxis.ticktext[-1]) > 5000  # Hz labels, not band numbers
    assert len(figs["timeline"].data) == len(p.probabilities)


def test_waveform_is_downsampled_and_marks_unanalyzed_part():
    x = noise(600.0, sr=8000)
    fig = waveform_figure(x, 8000, duration_s=3600.0)
    assert len(fig.data[0].x) <= 2000
    assert fig.layout.xaxis.range[1] == 3600.0
    assert any(a.text == "not analyzed" for a in fig.layout.annotations)


def test_probability_and_confusion_figures():
    fig = probability_figure({"jazz": 0.7, "rock": 0.3})
    assert list(fig.data[0].y) == ["rock", "jazz"]
    conf = confusion_figure([[2, 1], [0, 3]], ["a", "b"])
    assert np.array_equal(conf.data[0].z, [[2, 1], [0, 3]])
