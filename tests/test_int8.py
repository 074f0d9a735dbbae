"""The int8 front end (`genre_model.int8`): close to float, switched explicitly, packed once, a warning when absent."""

import threading
import warnings

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from genre_model import int8
from genre_model.inference import GenreClassifier
from genre_model.registry import build_model
from tests.conftest import needs_int8, switched_int8


def probabilities(model, logmel) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.inference_mode():
        genre, tags = model.classify_and_tag(logmel)
    return torch.softmax(genre, -1), torch.sigmoid(tags)


@needs_int8
def test_int8_front_end_stays_close_to_float(calibrated):
    model, logmels = calibrated
    assert model.backbone.int8 is not None  # prepare_inference switched it on
    for logmel in logmels:
        with torch.inference_mode():
            front8 = model.backbone.front_end(logmel)
            with switched_int8(model, False):
                front32 = model.backbone.front_end(logmel)
        assert (front8 - front32).norm() / front32.norm() < 0.06  # a margin over what GTZAN's valid clips give
        (p8, t8) = probabilities(model, logmel)
        with switched_int8(model, False):
            (p32, t32) = probabilities(model, logmel)
        assert (p8 - p32).abs().max() < 0.1 and (t8 - t32).abs().max() < 0.1
        assert not torch.equal(p8, p32)  # the int8 path did run
        assert p8.mean(0).argmax() == p32.mean(0).argmax()


@needs_int8
def test_the_switch_not_grad_mode_decides_and_gradients_are_refused_in_int8(calibrated):
    model, logmels = calibrated
    with torch.no_grad():
        under_no_grad = model.classify(logmels[0])
    torch.testing.assert_close(model.classify(logmels[0]), under_no_grad)  # grad mode on: the same int8 answer
    with pytest.raises(RuntimeError, match="use_int8\\(False\\)"):
        model.classify(logmels[0].clone().requires_grad_(True))
    fresh = build_model("musicnn-genre").eval()  # float until switched on; no calibration, no switching on
    assert fresh.backbone.int8 is None
    with pytest.raises(ValueError, match="calibrate_int8"):
        fresh.backbone.use_int8(True)


@needs_int8
def test_int8_weights_are_packed_when_switched_on_not_behind_the_callers_back(calibrated):
    model, logmels = calibrated
    copy = build_model("musicnn-genre").eval()
    copy.load_state_dict(model.state_dict())
    copy.backbone.use_int8(True)
    before, _ = probabilities(copy, logmels[1])
    with torch.no_grad():
        copy.backbone.frontend[0].conv.weight.mul_(-1)  # e.g. fine-tuning
    stale, _ = probabilities(copy, logmels[1])
    torch.testing.assert_close(stale, before)  # the packed copy is what was switched on, unchanged
    copy.backbone.use_int8(True)  # switched on again: packed from the new weights
    after8, _ = probabilities(copy, logmels[1])
    with switched_int8(copy, False):
        after32, _ = probabilities(copy, logmels[1])
    assert (after8 - after32).abs().max() < 0.1 and (after8 - before).abs().max() > 0.1


def test_without_int8_kernels_one_warning_and_float(calibrated, monkeypatch):
    model, logmels = calibrated
    copy = build_model("musicnn-genre").eval()
    copy.load_state_dict(model.state_dict())
    monkeypatch.setattr(int8, "supported", lambda: False)
    with pytest.warns(RuntimeWarning, match="runs in float") as caught:
        assert copy.backbone.use_int8(True) is False
    assert len(caught) == 1 and copy.backbone.int8 is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # predicting afterwards warns no more
        audio = (16_000, np.random.default_rng(0).normal(0, 0.1, 48_000))
        GenreClassifier(copy, "m", torch.device("cpu")).predict(audio)


@needs_int8
def test_predicting_warns_nothing_and_threads_share_the_int8_model(calibrated):
    model, _ = calibrated
    classifier = GenreClassifier(model, "m", torch.device("cpu"))
    clips = [(16_000, np.random.default_rng(seed).normal(0, 0.1, 64_000).astype(np.float32)) for seed in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecation warning per prediction, and no filter needed for that
        alone = [classifier.predict(c).probabilities for c in clips]
    together: dict[int, dict] = {}
    threads = [
        threading.Thread(target=lambda i=i: together.update({i: classifier.predict(clips[i]).probabilities}))
        for i in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [together[i] for i in range(4)] == alone


def test_calibration_is_saved_and_old_weights_without_it_still_load(calibrated, tmp_path):
    from safetensors.torch import save_file

    from genre_model.loading import load_model

    model, _ = calibrated
    model.save_pretrained(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    torch.testing.assert_close(loaded.backbone.input_range, model.backbone.input_range)
    assert (loaded.backbone.int8 is not None) == int8.supported()  # switched on at load, where it runs
    assert loaded.backbone.input_range.any() and loaded.backbone.frontend[4].peak_range.any()
    state = load_file(tmp_path / "m" / "model.safetensors")
    save_file(
        {k: v for k, v in state.items() if not k.endswith(("input_range", "peak_range"))},
        tmp_path / "m" / "model.safetensors",
    )
    assert load_model(tmp_path / "m").backbone.int8 is None  # loads, runs in float
    save_file({k: v for k, v in state.items() if k != "head.1.bias"}, tmp_path / "m" / "model.safetensors")
    with pytest.raises(ValueError, match="missing"):
        load_model(tmp_path / "m")


@needs_int8
def test_explanation_of_the_int8_model_matches_its_prediction_and_the_float_map(calibrated):
    from genre_model import synth
    from genre_model.explain import explain

    model, _ = calibrated
    classifier = GenreClassifier(model, "musicnn-test", torch.device("cpu"))
    audio = (synth.SR, synth.power_chords(8.0, seed=3))
    e = explain(classifier, audio)
    analyzed = classifier.predict(audio)  # what the Analyze tab shows: int8
    np.testing.assert_allclose(
        list(e.prediction.probabilities.values()), list(analyzed.probabilities.values()), atol=1e-6
    )
    with switched_int8(model, False):
        float_map = explain(classifier, audio, genre=e.genre, versus=e.versus).evidence
    assert np.corrcoef(e.evidence.flatten(), float_map.flatten())[0, 1] > 0.8
