import numpy as np
import pytest
import torch

from genre_model.base import GenreNet
from genre_model.explain import OTHERS, explain
from genre_model.inference import GenreClassifier
from genre_model.models import ChunkCNN
from tests.conftest import SR, noise, tone

HIGH_BAND = slice(100, 110)  # about 5.3-6.9 kHz on the 128-band grid
LOW_BAND = slice(20, 30)  # about 0.5-0.8 kHz


class BandReadout(GenreNet):
    """A transparent 'network': genre 0 = loudest band in HIGH_BAND, genre 1 = loudest in LOW_BAND, others 0."""

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(len(logmel), 10)
        logits[:, 0] = 0.03 * (logmel[:, HIGH_BAND].mean(dim=2).amax(dim=1) + 80)
        logits[:, 1] = 0.03 * (logmel[:, LOW_BAND].mean(dim=2).amax(dim=1) + 80)
        return logits


@pytest.fixture(scope="module")
def readout():
    return GenreClassifier(BandReadout(ChunkCNN.default_config()), "band-readout", torch.device("cpu"))


def test_planted_quiet_pattern_lights_up_not_the_loud_energy(readout):
    rng = np.random.default_rng(0)
    loud_bass = np.convolve(rng.standard_normal(6 * SR), np.ones(40) / 40, mode="same").astype(np.float32)
    loud_bass *= 0.9 / np.abs(loud_bass).max()
    x = loud_bass + tone(6000.0, 6.0, amp=0.01)  # the tone is 40 dB below the bass
    e = explain(readout, (SR, x), genre=readout.genres[0], versus=readout.genres[2])  # genre 2: logit 0, no input
    assert e.evidence.shape == e.prediction.logmel.shape and np.isfinite(e.evidence).all()
    assert e.evidence.min() >= 0 and e.scale > 0  # nothing speaks for genre 2
    share = e.evidence[HIGH_BAND].sum() / e.evidence.sum()
    energy = 10 ** (e.prediction.logmel / 10)
    assert share > 0.9  # the evidence is in the quiet band the model reads
    assert energy[HIGH_BAND].sum() / energy.sum() < 0.05  # though that band holds almost none of the energy
    drops = [e.prediction.probabilities[e.genre] - r.genre_without for r in e.regions]
    assert len(e.regions) == 2 * 3 and drops == sorted(drops, reverse=True)  # 2 segments x 3 bands, costliest first


def test_the_sentence_names_the_planted_region(readout):
    """Genre 0 reads the loudest high band: a 6 kHz tone only between 6 and 9 s of quiet noise is what makes it genre
    0, and muting the high band there takes the most of genre 0 away."""
    x = noise(12.0, amp=0.02)
    x[6 * SR : 9 * SR] += tone(6000.0, 3.0, amp=0.3)
    e = explain(readout, (SR, x))
    assert e.genre == readout.genres[0]
    top = e.regions[0]
    assert (top.band, top.start_s, top.end_s) == ("high", 6.0, 9.0)
    cost = [e.prediction.probabilities[e.genre] - r.genre_without for r in e.regions]
    assert cost[0] > 0.05 and cost[0] > 3 * max(cost[1:])  # muting it costs genre 0 far more than any other region
    assert e.summary.startswith(f"What made it {e.genre} rather than {e.versus} most: the high band (above 2000 Hz")
    assert "at 6-9 s. Without it, " in e.summary and " goes from " in e.summary


def test_the_note_is_the_models_verdict(readout, monkeypatch):
    rule = {"clear_at": 0.5, "probable_at": 0.4, "pair_at": 0.2, "right": {"clear": [9, 10]}, "measured_on": "tests"}
    monkeypatch.setattr(readout.model.config, "confidence", rule)
    both = tone(6000.0, 4.0, amp=0.3) + tone(600.0, 4.0, amp=0.3)
    note = explain(readout, (SR, both)).note
    assert note.startswith("Not sure: ") and "blues" in note.split("?")[0] and "classical" in note.split("?")[0]
    clear = tone(6000.0, 4.0, amp=0.5)
    assert explain(readout, (SR, clear)).note.startswith("Clearly blues. blues 55%")


def test_why_a_and_not_b_is_signed_and_on_one_scale_per_clip(readout):
    """Genre 0 reads the high band, genre 1 the low band: 'why 0 and not 1' is red in the high band and blue in the
    low one; the reverse question is its mirror image; every question about a clip shares one scale."""
    x = tone(6000.0, 6.0, amp=0.3) + tone(600.0, 6.0, amp=0.1)
    a, b = readout.genres[:2]
    e = explain(readout, (SR, x), genre=a, versus=b)
    assert e.evidence[HIGH_BAND].sum() > 0 > e.evidence[LOW_BAND].sum()
    mirror = explain(readout, (SR, x), genre=b, versus=a)
    np.testing.assert_allclose(mirror.evidence, -e.evidence, atol=1e-6)
    assert mirror.scale == e.scale  # the clip's scale: the predicted genre against its runner-up
    assert explain(readout, (SR, x)).versus == b  # the default: against the runner-up


def test_explain_any_genre_and_reject_unknown(classifier):
    e = explain(classifier, (SR, noise(7.0)), genre="jazz", versus=OTHERS)
    assert e.genre == "jazz" and e.versus == OTHERS and e.evidence.shape == e.prediction.logmel.shape
    assert e.window_evidence.shape == e.window_logmels.shape and len(e.window_evidence) == 3
    with pytest.raises(ValueError, match="Unknown genre"):
        explain(classifier, (SR, noise(2.0)), genre="polka")


def test_region_segments_follow_the_window_grid_and_stay_few():
    from genre_model.occlusion import SEGMENTS_MAX, segments

    hop = 2.976  # musicnn's windows: a segment on their grid is one window to classify again, not two
    assert [a for a, _ in segments(30.0, hop)] == pytest.approx([i * hop for i in range(10)])
    assert segments(30.0, hop)[-1] == pytest.approx((9 * hop, 30.0))  # the remainder joins the last
    assert segments(20.0, hop)[-1] == pytest.approx((6 * hop, 20.0))  # or is one of its own, from half a step
    for seconds in (1.0, 7.0, 37.5, 40.0, 300.0):
        parts = segments(seconds, hop)
        assert parts[0][0] == 0 and parts[-1][1] == seconds and len(parts) <= SEGMENTS_MAX
        assert all(b == c for (_, b), (c, _) in zip(parts, parts[1:]))  # contiguous
        assert all(a / hop == pytest.approx(round(a / hop)) for a, _ in parts)  # every edge on the grid
