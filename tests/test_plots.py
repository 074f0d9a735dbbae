import numpy as np

from genre_model.plots import (
    confusion_figure,
    explanation_figure,
    frequency_ticks,
    prediction_figures,
    probability_figure,
    waveform_figure,
)
from tests.conftest import SR, noise


def test_prediction_figures(classifier):
    x = noise(10.0)
    p = classifier.predict((SR, x), with_features=True)
    figs = prediction_figures(p, x, SR, classifier.model.to_logmel)
    bars = figs["probabilities"].data[0]
    assert list(bars.y) == classifier.genres[::-1] and max(bars.x) == max(p.probabilities.values()) * 100
    heat = figs["spectrogram"].data[0]
    assert heat.z.shape == p.logmel.shape and figs["spectrogram"].layout.yaxis.title.text == "frequency"
    assert figs["spectrogram"].layout.yaxis.ticktext[-1] == "8 kHz"  # round frequencies, not band numbers
    assert len(figs["timeline"].data) == 4  # the top three genres and the rest
    assert tuple(figs["timeline"].layout.xaxis.range) == (0, 10.0)  # the clip's time, as the waveform's


def test_frequency_ticks_are_round_and_spread():
    hz = np.geomspace(30, 8000, 96)
    values, text = frequency_ticks(hz)
    assert text[0] == "125 Hz" and text[-1] == "8 kHz" and np.all(np.diff(values) >= 9.6)


def test_waveform_is_downsampled_and_marks_unanalyzed_part():
    x = noise(600.0, sr=8000)
    fig = waveform_figure(x, 8000, duration_s=3600.0)
    assert len(fig.data[0].x) <= 2000
    assert fig.layout.xaxis.range[1] == 3600.0
    assert any(a.text == "not analyzed" for a in fig.layout.annotations)


def test_probability_and_confusion_figures():
    fig = probability_figure({"jazz": 0.7, "rock": 0.3})
    assert list(fig.data[0].y) == ["rock", "jazz"]  # the model's order, top to bottom
    conf = confusion_figure([[2, 1], [0, 3]], ["a", "b"])
    assert np.array_equal(conf.data[0].z, [[2, 1], [0, 3]])


def test_region_numbers_sit_inside_tall_boxes_and_above_low_ones():
    mel_hz = np.linspace(0, 8000, 96)
    db, evidence, times = np.zeros((96, 50)), np.zeros((96, 50)), np.linspace(0, 5, 50)
    fig = explanation_figure(db, evidence, times, mel_hz, 1.0, [(0, 3, 250, 2000), (3, 5, 0, 250)])
    middle, low = fig.layout.shapes
    assert (middle.label.text, middle.label.yanchor) == ("1", "top")
    assert (low.label.text, low.label.yanchor) == ("2", "bottom")  # a few bands high: its number above, not cut off
