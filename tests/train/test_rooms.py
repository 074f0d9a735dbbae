import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf

from genre_model.synth import four_on_the_floor, waltz
from tests.conftest import SR
from train.rooms import (
    EFFECTS,
    MICS,
    ROOMS_PER_BANK,
    SPEAKERS,
    direct_to_reverberant_db,
    grid_condition,
    play_in_room,
    random_condition,
    room_impulse_response,
)


def band_energy_db(x: np.ndarray, lo: float, hi: float) -> float:
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / SR)
    return 10 * np.log10(spectrum[(f >= lo) & (f < hi)].sum() / spectrum.sum())


def residual_snr_db(clean: np.ndarray, degraded: np.ndarray) -> float:
    """SNR of ``degraded`` against the best scaled copy of ``clean`` (filters make this a lower bound)."""
    gain = np.dot(degraded, clean) / np.dot(clean, clean)
    return 10 * np.log10(np.sum((gain * clean) ** 2) / np.sum((degraded - gain * clean) ** 2))


def test_deterministic_same_length_finite():
    x = waltz(4.0)
    a, b = play_in_room(x, SR, seed=7), play_in_room(x, SR, seed=7)
    assert a.shape == x.shape and a.dtype == np.float32 and np.isfinite(a).all() and np.abs(a).max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, play_in_room(x, SR, seed=8))
    x64 = x.astype(np.float64)
    play_in_room(x64, SR, seed=7)
    np.testing.assert_array_equal(x64, x.astype(np.float64))  # the caller's samples are left as they were


def test_a_room_sounds_the_same_whatever_was_simulated_before():
    """Ray tracing is random: seeded per room, a response does not depend on the process's history (each torchrun
    process simulates its own rooms, and a rerun must train on the same data)."""
    room, other = (grid_condition(0.4, 1.0, 20, "laptop", seed=s).room for s in (3, 4))
    first = room_impulse_response(room, SR)
    room_impulse_response.cache_clear()
    room_impulse_response(other, SR)  # moves pyroomacoustics' generators on
    room_impulse_response.cache_clear()
    np.testing.assert_array_equal(room_impulse_response(room, SR), first)


def test_random_conditions_span_the_physical_ranges():
    rng = np.random.default_rng(0)
    conditions = [random_condition(rng) for _ in range(300)]
    rt60 = [c.room.rt60_s for c in conditions]
    distance = [c.room.distance_m for c in conditions]
    assert 0.3 <= min(rt60) < 0.5 and 1.8 < max(rt60) <= 2.0
    assert 0.5 <= min(distance) < 1.0 and max(distance) > 5.0
    assert {c.speaker for c in conditions} == set(SPEAKERS) and {c.mic for c in conditions} == set(MICS)
    assert len({c.room for c in conditions}) <= ROOMS_PER_BANK  # rooms come from a bank: simulated once each


def test_same_kind_devices_play_and_hear_at_the_asked_share():
    def share(same_kind: float) -> float:
        rng = np.random.default_rng(0)
        return np.mean([c.speaker == c.mic for c in (random_condition(rng, same_kind=same_kind) for _ in range(400))])

    assert share(1.0) == 1.0
    assert share(0.0) == pytest.approx(0.25, abs=0.06)  # independent: 1 speaker in 4 matches the microphone's kind
    assert share(0.4) == pytest.approx(0.4 + 0.6 * 0.25, abs=0.06)


def test_simulated_rooms_have_the_asked_reverberation_and_distance():
    import pyroomacoustics as pra

    sr = 16_000
    near, far = (room_impulse_response(grid_condition(0.8, d, 20, "laptop", seed=1).room, sr) for d in (1.0, 6.0))
    assert pra.experimental.measure_rt60(far, fs=sr) == pytest.approx(0.8, rel=0.2)
    # past the critical distance (~1 m here) the reverberation dominates: DRR falls by ~15 dB from 1 m to 6 m
    assert direct_to_reverberant_db(near, sr) > direct_to_reverberant_db(far, sr) + 8
    assert direct_to_reverberant_db(far, sr) < -5


def test_a_phone_loses_the_bass_and_noise_sets_the_snr():
    x = four_on_the_floor(6.0)
    phone = grid_condition(0.4, 1.0, 20, "phone", seed=0)
    assert band_energy_db(play_in_room(x, SR, 0, phone), 20, 200) < band_energy_db(x, 20, 200) - 10
    # same seed, same room and devices: what differs between a 40 dB and a 5 dB run is the noise
    quiet, noisy = (play_in_room(x, SR, 0, replace(phone, snr_db=snr)) for snr in (40.0, 5.0))
    assert 2 < residual_snr_db(quiet, noisy) < 9


def test_each_effect_can_be_left_out_and_the_others_stay_the_same():
    x = four_on_the_floor(6.0)
    phone = grid_condition(0.8, 3.0, 10, "phone", seed=0)
    bass = band_energy_db(x, 20, 200)
    assert abs(band_energy_db(play_in_room(x, SR, 0, phone, effects=()), 20, 200) - bass) < 1  # level and gain only
    assert band_energy_db(play_in_room(x, SR, 0, phone, effects=("speaker",)), 20, 200) < bass - 10
    # without the noise: the same speaker, room, microphone and gain as with noise 200 dB down
    no_noise = play_in_room(x, SR, 0, phone, effects=("speaker", "room", "mic"))
    np.testing.assert_allclose(no_noise, play_in_room(x, SR, 0, replace(phone, snr_db=200.0)), atol=1e-5)
    assert 4 < residual_snr_db(no_noise, play_in_room(x, SR, 0, phone, effects=EFFECTS)) < 14
    with pytest.raises(ValueError, match="effects must be among"):
        play_in_room(x, SR, 0, phone, effects=("speaker", "walls"))


@pytest.mark.slow
def test_evaluate_in_simulated_rooms_and_grid_on_generated_audio(random_model_dir, tmp_path):
    for genre, make in (("classical", waltz), ("disco", four_on_the_floor)):
        (tmp_path / genre).mkdir()
        for i in range(2):
            sf.write(tmp_path / genre / f"{genre}.{i:05d}.wav", make(4.0, seed=i), SR)
    base = [sys.executable, "-m", "train.evaluate", "--model", str(random_model_dir), "--data", str(tmp_path), "--json"]
    runs = [
        subprocess.run(
            [*base, "--rooms", "--confusion-html", str(tmp_path / "c.html")],
            capture_output=True,
            text=True,
            timeout=300,
        )
        for _ in range(2)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    first, second = (json.loads(r.stdout) for r in runs)
    assert first["rooms"] is True and first["n_clips"] == 4
    assert first["confusion"] == second["confusion"]  # the same rooms every run
    grid = subprocess.run(
        [*base, "--cell", "0.8", "3", "10", "phone", "--cell", "0.4", "1", "20", "laptop"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert grid.returncode == 0, grid.stderr
    cells = json.loads(grid.stdout)["grid"]
    assert set(cells) == {"clean", "RT60 0.8 s, 3 m, 10 dB, phone", "RT60 0.4 s, 1 m, 20 dB, laptop"}
    assert all(0 <= c["balanced_accuracy"] <= 1 for c in cells.values())
    bad = subprocess.run([*base, "--grid", "--cell", "0.8", "3", "10", "walkman"], capture_output=True, text=True)
    assert bad.returncode != 0 and "DEVICE one of" in bad.stderr
    apart = subprocess.run([*base, "--effects"], capture_output=True, text=True, timeout=300)
    assert apart.returncode == 0, apart.stderr
    taken = json.loads(apart.stdout)
    assert taken["cell"] == "RT60 0.8 s, 3 m, 10 dB, phone"  # the key cell by default
    runs = {"clean", "all", *(f"{e} alone" for e in EFFECTS), *(f"all but {e}" for e in EFFECTS)}
    assert set(taken["effects"]) == runs
    assert taken["effects"]["all"] == cells["RT60 0.8 s, 3 m, 10 dB, phone"]  # all effects: the grid's cell
    two_cells = ["--cell", "0.8", "3", "10", "phone", "--cell", "0.4", "1", "20", "laptop"]
    two = subprocess.run([*base, "--effects", *two_cells], capture_output=True, text=True)
    assert two.returncode != 0 and "at most one --cell" in two.stderr
    both = subprocess.run([*base, "--effects", "--grid"], capture_output=True, text=True)
    assert both.returncode != 0 and "no --grid" in both.stderr


def test_live_stream_of_a_clip_through_a_room_agrees_with_offline(classifier):
    """The Live tab's path (48 kHz int16 chunks -> live buffer) sees what offline analysis sees."""
    from genre_model.live import LiveListener

    heard = play_in_room(four_on_the_floor(9.0), SR, seed=3)
    pcm48 = (np.clip(soxr_48k(heard), -1, 1) * 32767).astype(np.int16)
    listener = LiveListener.for_classifier(classifier, buffer_s=6.0)
    for i in range(0, len(pcm48), 48_000):
        listener.push(48_000, pcm48[i : i + 48_000])
        if listener.due(0.9):
            listener.read(classifier)
            end = int(listener.heard_s * 48_000)
            offline = classifier.predict((48_000, pcm48[max(0, end - 6 * 48_000) : end]))
            live = listener.history[-1].probabilities
            assert max(live, key=live.get) == offline.genre
            np.testing.assert_allclose(list(live.values()), list(offline.probabilities.values()), atol=0.05)


def soxr_48k(x: np.ndarray) -> np.ndarray:
    import soxr

    return soxr.resample(x, SR, 48_000)


@pytest.mark.slow
def test_room_copies_are_the_same_on_one_worker_or_several():
    from genre_model.audio import Waveform
    from train.probe import room_copies

    waves = [Waveform(waltz(4.0, seed=i), SR, 4.0, 4.0) for i in range(3)]
    alone, shared = room_copies(waves, 7, workers=1), room_copies(waves, 7, workers=2)
    for one, other, clean in zip(alone, shared, waves):
        np.testing.assert_array_equal(one.samples, other.samples)
        assert not np.array_equal(one.samples, clean.samples)
