"""Two models chosen by the sound's source (`genre_model.routing`): the detector on generated clean and room audio,
and each route."""

import numpy as np
import pytest
import torch

from genre_model import synth
from genre_model.inference import GenreClassifier
from genre_model.registry import build_model
from genre_model.routing import CLEAN_MODEL, ROOM_MODEL, RoomDetector, Router
from tests.conftest import chirp
from train.detector import fit_detector, rates, window_statistics
from train.rooms import grid_condition, play_in_room

MUSIC = (synth.waltz, synth.four_on_the_floor, synth.power_chords)
SR = synth.SR


def clips(seed: int, in_room: bool) -> list:
    """Generated music of every kind, as it is or played through a simulated room (one per clip and seed)."""
    made = [make(8.0, seed=seed) for make in MUSIC]
    if in_room:
        made = [play_in_room(x, SR, seed=1000 * seed + i, bank=seed % 2) for i, x in enumerate(made)]
    return [(SR, x) for x in made]


@pytest.fixture(scope="module")
def detector(classifier) -> RoomDetector:
    """A detector fitted on four seeds of generated music, clean and through rooms (a random chunk-cnn front end)."""

    def stats(in_room: bool) -> list:
        return window_statistics(classifier, [classifier.load(c) for s in range(4) for c in clips(s, in_room)])

    return fit_detector(classifier.model.config.arch, stats(False), stats(True))


def test_a_fitted_detector_tells_new_room_recordings_from_clean_music(classifier, detector):
    for seed in (5, 6):  # music and rooms it never saw
        clean = [detector.room_probability(classifier, classifier.load(c)) for c in clips(seed, False)]
        rooms = [detector.room_probability(classifier, classifier.load(c)) for c in clips(seed, True)]
        assert max(clean) < detector.threshold <= min(rooms), (clean, rooms)


def test_its_rates_count_clips_and_windows(classifier, detector):
    clean = window_statistics(classifier, [classifier.load(c) for c in clips(5, False)])
    rooms = window_statistics(classifier, [classifier.load(c) for c in clips(5, True)])
    measured = rates(detector, clean, rooms)
    assert measured["n_clips"] == 3 and measured["clean_called_room"]["clips"] == 0
    assert measured["room_caught"]["clips"] == 1 and measured["room_caught"]["windows"] > 0.5


def test_the_detector_is_saved_and_read_as_it_was(detector, tmp_path, classifier):
    detector.save(tmp_path)
    again = RoomDetector.load(tmp_path)
    wave = classifier.load(clips(3, True)[0])
    assert again.room_probability(classifier, wave) == detector.room_probability(classifier, wave)
    with pytest.raises(FileNotFoundError, match="python -m train.detector"):
        RoomDetector.load(tmp_path / "elsewhere")


def test_the_committed_pair_answers_clean_music_and_music_through_a_room_with_their_models():
    """The app's examples (real music the detector never saw), as they are and played through two rooms of the
    grid: the key cell (a phone at 3 m in a reverberant classroom) and a mild one (a laptop at 1 m)."""
    from app import EXAMPLES_DIR

    try:
        router = Router.from_pretrained(device="cpu")
    except FileNotFoundError as missing:
        pytest.skip(f"the committed pair is not there: {missing}")
    for path in sorted(EXAMPLES_DIR.glob("*.ogg"))[:4]:
        wave = router.clean.load(str(path))
        clean = (wave.sample_rate, wave.samples[: 10 * wave.sample_rate])
        assert router.predict(clean).model_name == CLEAN_MODEL, path.name
        for cell in ((0.8, 3.0, 10, "phone"), (0.4, 1.0, 20, "laptop")):
            heard = play_in_room(clean[1], clean[0], 3, grid_condition(*cell, seed=3))
            assert router.predict((clean[0], heard)).model_name == ROOM_MODEL, (path.name, cell)


@pytest.fixture(scope="module")
def router(random_model_dir, detector, tmp_path_factory) -> Router:
    """Two random chunk-cnns (clean and room) and the fitted detector."""
    clean = GenreClassifier.from_pretrained(random_model_dir, device="cpu")
    torch.manual_seed(1)
    room_dir = tmp_path_factory.mktemp("models") / "room"
    build_model("chunk-cnn").save_pretrained(room_dir)
    return Router(clean, GenreClassifier.from_pretrained(room_dir, device="cpu"), detector)


@pytest.mark.parametrize(
    ("source", "in_room", "answers", "why"),
    [
        ("file", True, "clean", "for a file or this computer's sound"),
        ("microphone", False, "room", "a microphone in a room"),
        ("auto", False, "clean", "the room detector heard no room"),
        ("auto", True, "room", "the room detector heard a room"),
    ],
)
def test_each_source_gets_its_model_and_says_why(router, source, in_room, answers, why):
    audio = clips(9, in_room)[1]
    prediction = router.predict(audio, source)
    expected = (router.clean if answers == "clean" else router.room).predict(audio)
    assert prediction.model_name == expected.model_name and why in prediction.route
    assert router.answered(prediction) is (router.clean if answers == "clean" else router.room)
    np.testing.assert_allclose(list(prediction.probabilities.values()), list(expected.probabilities.values()))


def test_an_unknown_source_or_a_mismatched_pair_is_refused(router, classifier):
    with pytest.raises(ValueError, match="source must be one of auto, file, microphone"):
        router.predict((SR, chirp(3.0)), "radio")
    other = GenreClassifier(build_model("chunk-cnn", genres=["blues", "rock"]), "two-genres", torch.device("cpu"))
    with pytest.raises(ValueError, match="must share genres and sample rate"):
        Router(classifier, other, router.detector)
