"""The room simulator: what a phone or laptop hears when music plays from a speaker across a real (class)room.

Chain: level -> loudspeaker (response, overdrive) -> room (a shoebox simulated by pyroomacoustics: image sources for
the early reflections, ray tracing for the tail) -> background noise at an SNR (ambience, babble, ventilation, chairs)
-> microphone (response) -> automatic gain control -> clipping. Everything is generated (rooms, devices, noise):
no measured impulse responses or recorded noise, whose licences the published weights would inherit.

Ranges and their sources:
- Rooms: classrooms and lecture rooms of 20-400 m3; RT60 0.3-2.0 s: DIN 18041 asks 0.45-0.8 s of a furnished
  classroom, untreated old classrooms and halls measure 1-2 s (e.g. Shield & Dockrell, Building Acoustics 2003).
- Speaker-to-microphone distance 0.5-10 m: the critical distance r_c = 0.057 sqrt(V / RT60) of such rooms is 1-2 m,
  so the direct-to-reverberant ratio runs from about +10 dB (near the speaker) to -15 dB (the back of the room).
- Loudspeakers: phone speakers give nothing below 500-800 Hz and a +6 dB peak at 4-8 kHz; laptop speakers roll off
  below 150-300 Hz; Bluetooth boxes reach 60-120 Hz with a bass bump; classroom PA/ceiling speakers 80-150 Hz
  (published measurements of consumer devices, e.g. rtings.com; a phone measured for the held-out checks: -14 dB at
  8 kHz).
- Microphones: phone and laptop MEMS capsules are flat to about 4 kHz with resonances of a few dB, rolling off above
  6-8 kHz in the capture path; laptops also cut below 100-200 Hz (MEMS datasheets, e.g. Knowles SPH0645).
- Noise 5-25 dB below the music: occupied classrooms measure 45-65 dBA (Shield & Dockrell, JASA 2004), music played
  to a class 65-80 dBA.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
from scipy.signal import fftconvolve, lfilter, sosfilt

SPEAKERS = ("phone", "laptop", "bluetooth", "pa")
MICS = ("phone", "laptop")
EFFECTS = ("speaker", "room", "noise", "mic")  # the chain's parts that `play_in_room` can leave out, in its order
ROOMS_PER_BANK = 256  # random conditions draw their room from a bank: each RIR is simulated once per process


@dataclass(frozen=True)
class Grid:
    """The evaluation grid (`train.evaluate --grid`): every combination, ``rooms`` room shapes per cell."""

    rt60_s: tuple[float, ...] = (0.4, 0.8, 1.5)
    distance_m: tuple[float, ...] = (1.0, 3.0, 6.0)
    snr_db: tuple[float, ...] = (20.0, 10.0)
    devices: tuple[str, ...] = ("laptop", "phone")
    rooms: int = 8

    def cells(self) -> list[tuple[float, float, float, str]]:
        return list(itertools.product(self.rt60_s, self.distance_m, self.snr_db, self.devices))


GRID = Grid()


@dataclass(frozen=True)
class Room:
    rt60_s: float
    volume_m3: float
    distance_m: float  # loudspeaker to microphone
    seed: int  # shape of the room, positions, absorption details


@dataclass(frozen=True)
class Condition:
    room: Room
    snr_db: float
    speaker: str  # one of SPEAKERS
    mic: str  # one of MICS


def random_condition(rng: np.random.Generator, bank: int = 0, same_kind: float = 0.0) -> Condition:
    """Devices and a room drawn from the physical ranges above, the room one of the `ROOMS_PER_BANK` of ``bank``.
    With probability ``same_kind`` one kind of device plays and listens (a phone to a phone, a laptop to a laptop:
    the teacher's and a student's), else the loudspeaker and the microphone are drawn independently."""
    room_rng = np.random.default_rng([bank, int(rng.integers(ROOMS_PER_BANK))])
    volume = float(np.exp(room_rng.uniform(np.log(20), np.log(400))))
    length = (volume / 3.0) ** 0.5 * 1.2  # roughly the longest side of a 3 m high room
    room = Room(
        rt60_s=float(room_rng.uniform(0.3, 2.0)),
        volume_m3=volume,
        distance_m=float(min(np.exp(room_rng.uniform(np.log(0.5), np.log(10))), length - 1.0)),
        seed=int(room_rng.integers(2**31)),
    )
    snr_db, speaker, mic = float(rng.uniform(5, 25)), str(rng.choice(SPEAKERS)), str(rng.choice(MICS))
    if same_kind and rng.random() < same_kind:
        speaker = mic
    return Condition(room, snr_db, speaker, mic)


def grid_condition(rt60_s: float, distance_m: float, snr_db: float, device: str, seed: int) -> Condition:
    """One cell of the evaluation grid: a 150-300 m3 classroom (shape from ``seed``), played and recorded on
    ``device`` ("laptop" or "phone": its speaker plays, its microphone listens)."""
    volume = float(np.random.default_rng(seed).uniform(150, 300))
    return Condition(Room(rt60_s, volume, distance_m, seed), snr_db, device, device)


@functools.lru_cache(maxsize=2 * ROOMS_PER_BANK)
def room_impulse_response(room: Room, sr: int) -> np.ndarray:
    """The room's impulse response from the loudspeaker to the microphone, its direct sound at unit amplitude."""
    import pyroomacoustics as pra  # training-only dependency, imported where used

    # ray tracing draws its rays from pyroomacoustics' own generators: seed them, or every process simulates
    # a different response for the same room (and the processes of a torchrun job train on different data)
    pra.random.seed(numpy=room.seed, libroom=room.seed)
    rng = np.random.default_rng(room.seed)
    height = rng.uniform(2.7, 3.5)
    ratio = rng.uniform(1.0, 1.6)  # length / width
    width = (room.volume_m3 / height / ratio) ** 0.5
    length = max(width * ratio, room.distance_m + 1.5)  # the distance must fit: stretch the room if needed
    dims = [length, room.volume_m3 / height / length, height]
    # Sabine's absorption for the target RT60; very small, dead rooms ask for more than 1: cap it
    surface = 2 * (length * dims[1] + (length + dims[1]) * height)
    absorption = min(0.99, 0.161 * room.volume_m3 / (room.rt60_s * surface))
    shoebox = pra.ShoeBox(
        dims,
        fs=sr,
        materials=pra.Material(absorption, float(rng.uniform(0.05, 0.3))),
        max_order=3,
        ray_tracing=True,
        air_absorption=True,
    )
    shoebox.set_ray_tracing(receiver_radius=0.5, n_rays=4000, energy_thres=1e-7)
    source = np.array([rng.uniform(0.5, 1.5), dims[1] * rng.uniform(0.3, 0.7), rng.uniform(1.0, 2.0)])
    # the microphone at the given distance, towards the back of the room, at desk height
    angle = rng.uniform(-0.6, 0.6)
    mic = source + room.distance_m * np.array([np.cos(angle), np.sin(angle), 0.0])
    mic[1] = np.clip(mic[1], 0.3, dims[1] - 0.3)
    mic[2] = rng.uniform(0.7, 1.2)
    shoebox.add_source(source.tolist())
    shoebox.add_microphone(mic.tolist())
    shoebox.compute_rir()
    h = np.asarray(shoebox.rir[0][0], dtype=np.float64)
    # ray tracing overshoots Sabine's RT60 (by 30-60% here): bend the decay after the direct sound to the target
    start = int(np.argmax(np.abs(h)))
    measured = max(pra.experimental.measure_rt60(h, fs=sr), 0.05)
    t = np.maximum(np.arange(len(h)) - start, 0) / sr
    h *= np.exp(-6.9 * t * max(1 / room.rt60_s - 1 / measured, 0.0))
    h = h[: start + int(1.2 * room.rt60_s * sr)]
    return (h / np.abs(h[start])).astype(np.float32)


def direct_to_reverberant_db(h: np.ndarray, sr: int) -> float:
    """Energy within 2.5 ms of the direct sound against everything after it."""
    start, half = int(np.argmax(np.abs(h))), int(0.0025 * sr)
    direct = np.sum(h[max(0, start - half) : start + half] ** 2)
    return float(10 * np.log10(direct / max(np.sum(h[start + half :] ** 2), 1e-20)))


def _biquad(kind: str, freq: float, sr: int, gain_db: float = 0.0, q: float = 0.707) -> list[float]:
    """One second-order section (b0, b1, b2, 1, a1, a2) of the RBJ Audio EQ Cookbook: lowpass, highpass or peak."""
    w0 = 2 * np.pi * min(freq, 0.45 * sr) / sr
    cos, alpha, amp = np.cos(w0), np.sin(w0) / (2 * q), 10 ** (gain_db / 40)
    if kind == "peak":
        b, a = [1 + alpha * amp, -2 * cos, 1 - alpha * amp], [1 + alpha / amp, -2 * cos, 1 - alpha / amp]
    else:
        sign = 1 if kind == "lowpass" else -1
        b, a = [(1 - sign * cos) / 2, sign * (1 - sign * cos), (1 - sign * cos) / 2], [1 + alpha, -2 * cos, 1 - alpha]
    return [v / a[0] for v in (*b, *a)]


def _speaker(x: np.ndarray, sr: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    cut = {"phone": (500, 800), "laptop": (150, 300), "bluetooth": (60, 120), "pa": (80, 150)}[kind]
    # tiny drivers: 24 dB/octave below their cut-off
    sections = [_biquad("highpass", rng.uniform(*cut), sr) for _ in range(2 if kind in ("phone", "laptop") else 1)]
    if kind == "phone":
        sections.append(_biquad("peak", rng.uniform(4_000, 8_000), sr, rng.uniform(4, 8), 0.8))
    if kind == "bluetooth":
        sections.append(_biquad("peak", rng.uniform(80, 150), sr, rng.uniform(3, 6), 1.0))
    for _ in range(3):  # an uneven response: cabinet and driver resonances
        sections.append(_biquad("peak", np.exp(rng.uniform(np.log(300), np.log(6_000))), sr, rng.uniform(-5, 5), 1.5))
    if kind != "pa":
        sections.append(_biquad("lowpass", rng.uniform(9_000, 14_000), sr))
    y = sosfilt(np.array(sections), x)
    drive = rng.uniform(1.0, 3.0) if kind in ("phone", "laptop") else rng.uniform(1.0, 1.5)  # small drivers pushed
    return np.tanh(drive * y / max(np.abs(y).max(), 1e-6)) / drive


def _mic(x: np.ndarray, sr: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    sections = [
        _biquad("highpass", rng.uniform(80, 200) if kind == "laptop" else rng.uniform(40, 100), sr),
        _biquad("peak", rng.uniform(2_000, 6_000), sr, rng.uniform(-3, 6), 2.0),
        # the capture path's anti-alias / speech-codec roll-off above 6-8 kHz
        *(_biquad("lowpass", rng.uniform(6_000, 8_000), sr) for _ in range(2)),
    ]
    return sosfilt(np.array(sections), x)


def background_noise(n: int, sr: int, rng: np.random.Generator) -> np.ndarray:
    """A random mix of room ambience (pink), babble, ventilation (low rumble + mains hum) and chairs/desks
    (sparse knocks), unit RMS."""
    t = np.arange(n) / sr
    f = np.fft.rfftfreq(n, 1 / sr)

    def shaped(gain: np.ndarray) -> np.ndarray:
        return np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) * gain, n)

    pink = shaped(1 / np.sqrt(np.maximum(f, 20.0)))
    # babble: 3-12 talkers, speech's long-term spectrum (peak near 500 Hz) switched on and off at syllable rate; each
    # talker is the same speech-shaped noise shifted by seconds (as independent as fresh noise, one FFT for all)
    speech = shaped(1 / (1 + (f / 500.0) ** 2) * (f > 100))
    babble = np.zeros(n)
    slow = np.arange(n // 16 + 1) * 16 / sr  # envelopes change slowly: computed at sr / 16
    for _ in range(int(rng.integers(3, 13))):
        envelope = np.maximum(np.sin(2 * np.pi * rng.uniform(3, 6) * slow + rng.uniform(0, 6.3)), 0) ** 2
        pauses = np.repeat(rng.random(int(n / sr) + 2) < 0.7, sr // 16)[: len(slow)]  # phrases and pauses, ~1 s each
        babble += np.roll(speech, int(rng.integers(n))) * np.repeat(envelope * pauses, 16)[:n]
    mains = rng.choice([50.0, 60.0])
    hvac = shaped(1 / np.maximum(f, 20.0) * (f < 400)) + 0.3 * sum(
        np.sin(2 * np.pi * mains * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 5)
    )
    chairs = np.zeros(n)
    for at in rng.uniform(0, n, size=rng.poisson(0.5 * n / sr)).astype(int):
        length = int(rng.uniform(0.01, 0.06) * sr)
        burst = rng.standard_normal(length) * np.exp(-np.arange(length) / (0.2 * length)) * rng.uniform(3, 10)
        chairs[at : at + length] += burst[: n - at]
    parts = [p / (np.std(p) + 1e-12) for p in (pink, babble, hvac, chairs)]
    mix = sum(w * p for w, p in zip(rng.dirichlet(np.ones(4)), parts))
    return (mix / (np.std(mix) + 1e-12)).astype(np.float32)


def _agc(x: np.ndarray, sr: int, target_rms: float = 0.1, max_gain_db: float = 30.0) -> np.ndarray:
    """Device-style automatic gain: follow a smoothed 50 ms RMS envelope towards ``target_rms``."""
    hop = int(0.05 * sr)
    frames = np.pad(x, (0, (-len(x)) % hop)).reshape(-1, hop)
    gain = np.minimum(target_rms / np.maximum(np.sqrt(np.mean(frames**2, axis=1)), 1e-6), 10 ** (max_gain_db / 20))
    smooth = lfilter([0.1], [1.0, -0.9], gain)  # about half a second to follow a change
    return x * np.repeat(smooth, hop)[: len(x)]


def play_in_room(
    samples: np.ndarray,
    sample_rate: int,
    seed: int = 0,
    condition: Condition | None = None,
    bank: int = 0,
    same_kind: float = 0.0,
    effects: tuple[str, ...] = EFFECTS,
) -> np.ndarray:
    """``samples`` (mono float32) as heard across a room: ``condition``, or a random one drawn with ``seed`` (its
    room from room bank ``bank``: training uses 0, evaluation 1; ``same_kind``: see `random_condition`). Same length,
    deterministic for given arguments. ``effects``: the parts of the chain applied (`EFFECTS`; level, gain and
    clipping always are); each part draws its details whether applied or not, so the others stay the same."""
    if unknown := set(effects) - set(EFFECTS):
        raise ValueError(f"effects must be among {EFFECTS}, not {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    condition = condition or random_condition(rng, bank, same_kind)
    if condition.speaker not in SPEAKERS or condition.mic not in MICS:
        raise ValueError(f"speaker must be one of {SPEAKERS} and mic one of {MICS}, not {condition}")
    x = np.asarray(samples, dtype=np.float64)
    n, sr = len(x), sample_rate
    x = x * 10 ** (rng.uniform(-12, 0) / 20)  # a new array: never scale the caller's samples
    played = _speaker(x, sr, condition.speaker, rng)
    x = played if "speaker" in effects else x
    if "room" in effects:
        x = fftconvolve(x, room_impulse_response(condition.room, sr))[:n]
    noise = background_noise(n, sr, rng) * np.sqrt(np.mean(x**2)) * 10 ** (-condition.snr_db / 20)
    x = x + noise if "noise" in effects else x
    heard = _mic(x, sr, condition.mic, rng)
    x = heard if "mic" in effects else x
    x = _agc(x, sr) if rng.random() < 0.5 else x / max(np.abs(x).max(), 1e-6) * 0.5
    if rng.random() < 0.1:  # a microphone overdriven by a loud speaker nearby
        limit = rng.uniform(0.3, 0.7) * np.abs(x).max()
        x = np.clip(x, -limit, limit)
    return np.clip(x, -1, 1).astype(np.float32)  # the converter's full scale
