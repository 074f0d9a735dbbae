import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genre_model.audio import AudioError, load_audio
from tests.conftest import SR, noise, tone


def dominant_hz(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[spectrum.argmax()])


@pytest.mark.parametrize(
    "name, kwargs",
    [
        ("a.wav", dict(subtype="PCM_16")),
        ("a24.wav", dict(subtype="PCM_24")),
        ("a8.wav", dict(subtype="PCM_U8")),
        ("f32.wav", dict(subtype="FLOAT")),
        ("f64.wav", dict(subtype="DOUBLE")),
        ("a.flac", {}),
        ("a.ogg", dict(format="OGG", subtype="VORBIS")),
        ("a.opus", dict(format="OGG", subtype="OPUS")),
        ("a.mp3", dict(format="MP3", subtype="MPEG_LAYER_III")),
        ("a.aiff", dict(format="AIFF", subtype="PCM_16")),
        ("a.au", dict(format="AU", subtype="PCM_16")),
    ],
)
def test_formats_decode_to_mono_float_at_model_rate(write_audio, name, kwargs):
    sr = 48_000 if "opus" in name else 44_100
    path = write_audio(name, np.stack([tone(440, 2.0, sr), tone(440, 2.0, sr)], axis=1), sr, **kwargs)
    wave = load_audio(path)
    assert wave.samples.dtype == np.float32 and wave.samples.ndim == 1
    assert wave.sample_rate == SR
    assert abs(wave.analyzed_s - 2.0) < 0.1
    assert abs(dominant_hz(wave.samples, SR) - 440) < 5  # resampling kept the pitch


@pytest.mark.parametrize("rate", [8_000, 44_100, 48_000, 96_000, 192_000])
def test_resampling_keeps_pitch_and_length(write_audio, rate):
    wave = load_audio(write_audio("r.wav", tone(1000, 1.5, rate), rate))
    assert abs(len(wave.samples) - 1.5 * SR) <= 2
    assert abs(dominant_hz(wave.samples, SR) - 1000) < 5


def test_six_channels_are_averaged(write_audio):
    channels = np.zeros((SR, 6), np.float32)
    channels[:, 2] = tone(300, 1.0)
    wave = load_audio(write_audio("six.wav", channels, subtype="FLOAT"))
    np.testing.assert_allclose(wave.samples, tone(300, 1.0) / 6, atol=1e-6)


def test_long_file_is_cut_to_the_analysis_limit_and_says_so(write_audio):
    wave = load_audio(write_audio("long.wav", noise(20.0)), limit_s=5.0)
    assert wave.analyzed_s == pytest.approx(5.0, abs=0.01)
    assert wave.duration_s == pytest.approx(20.0, abs=0.01)
    assert wave.truncated


@pytest.mark.parametrize(
    "dtype, scale", [(np.int16, 32767), (np.int32, 2**31 - 1), (np.float32, 1.0), (np.float64, 1.0)]
)
@pytest.mark.parametrize("layout", ["mono", "n_by_channels", "channels_by_n"])
def test_gradio_pairs(dtype, scale, layout):
    x = tone(440, 1.0, 48_000)
    data = (x * scale).astype(dtype)
    if layout == "n_by_channels":
        data = np.stack([data, data], axis=1)
    elif layout == "channels_by_n":
        data = np.stack([data, data], axis=0)
    wave = load_audio((48_000, data))
    assert abs(len(wave.samples) - SR) <= 2
    assert np.abs(wave.samples).max() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not an audio file"),
        (lambda p: p.write_text("hello, this is a text file\n" * 50), "not an audio file"),
        (lambda p: p.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(2000)), "not an audio file"),
    ],
)
@pytest.mark.parametrize("suffix", [".wav", ".mp3"])
def test_files_that_are_not_audio(tmp_path, make, message, suffix):
    path = tmp_path / f"junk{suffix}"
    make(path)
    with pytest.raises(AudioError, match=message):
        load_audio(path)


def test_truncated_wav_still_decodes_what_is_there(write_audio):
    path = write_audio("cut.wav", tone(440, 2.0), subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still claims 2 s
    wave = load_audio(path)
    assert 0.9 < wave.analyzed_s < 1.1


def test_missing_file_names_only_the_file():
    with pytest.raises(AudioError, match="'nope.wav' does not exist"):
        load_audio("/some/private/dir/nope.wav")


@pytest.mark.parametrize(
    "samples, message",
    [
        (np.zeros(0, np.float32), "empty"),
        (tone(seconds=0.05), "too short"),
        (np.zeros(SR, np.float32), "silent"),
        (np.r_[tone(seconds=1.0), np.nan].astype(np.float32), "NaN or infinity"),
        (np.r_[tone(seconds=1.0), np.inf].astype(np.float32), "NaN or infinity"),
    ],
)
def test_bad_samples(samples, message):
    with pytest.raises(AudioError, match=message):
        load_audio((SR, samples))


def test_nan_in_a_float_wav_file(write_audio):
    x = tone(seconds=1.0)
    x[100] = np.nan
    with pytest.raises(AudioError, match="NaN"):
        load_audio(write_audio("nan.wav", x, subtype="FLOAT"))


def test_bad_sources():
    with pytest.raises(AudioError, match="file path"):
        load_audio(12345)
    with pytest.raises(AudioError, match="Sample rate"):
        load_audio((0, tone()))
    with pytest.raises(AudioError, match="shape"):
        load_audio((SR, np.zeros((2, 2, 2))))


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([8_000, 16_000, 22_050, 44_100, 48_000, 96_000]),
    channels=st.integers(1, 6),
    dtype=st.sampled_from(["int16", "int32", "float32", "float64"]),
    seconds=st.floats(0.5, 3.0),
)
def test_any_valid_pair_gives_bounded_mono_at_model_rate(rate, channels, dtype, seconds):
    n = int(seconds * rate)
    x = np.random.default_rng(n).uniform(-0.9, 0.9, size=(n, channels))
    data = (x * np.iinfo(dtype).max).astype(dtype) if dtype.startswith("int") else x.astype(dtype)
    wave = load_audio((rate, data if channels > 1 else data[:, 0]))
    assert wave.samples.dtype == np.float32 and wave.samples.ndim == 1
    assert abs(len(wave.samples) - n * SR / rate) <= 2
    assert np.isfinite(wave.samples).all() and np.abs(wave.samples).max() < 2.0  # noise overshoots a little
