"""What made the model say one genre rather than another, in regions a student can read: the clip cut into time
segments x a low, a middle and a high band; each region muted (set to silence in the log-mel the network reads) and
the clip classified again. The region whose muting costs the genre's lead over the other most is the evidence, and
the sentence says what the model did without it: faithful by construction, unlike a gradient map. One forward pass
per muted window, batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .base import GenreNet

# (name, low Hz, high Hz, what usually sits there): the words a student reads
BANDS = (
    ("low", 0.0, 250.0, "bass and kick drum"),
    ("middle", 250.0, 2000.0, "voices, guitars, keys"),
    ("high", 2000.0, float("inf"), "cymbals, hi-hats, brightness"),
)
SEGMENTS_MAX = 12  # a long clip gets longer segments, not more regions
SEGMENT_S = 3.0  # the shortest segment, for models whose windows hop by more than WINDOW_GRID_MAX_S
WINDOW_GRID_MAX_S = 4.0  # models whose windows hop by at most this get segments on their window grid
_BATCH = 16


@dataclass(frozen=True)
class Region:
    start_s: float
    end_s: float
    band: str
    low_hz: float
    high_hz: float
    genre_without: float  # the explained genre's probability for the clip with this region muted
    versus_without: float  # and the other genre's (or, against all others, the sum of theirs)

    def describe(self) -> str:
        name, low, high, what = next(b for b in BANDS if b[0] == self.band)
        hz = f"below {high:.0f} Hz" if low == 0 else (f"above {low:.0f} Hz" if high == float("inf") else "")
        hz = hz or f"{low:.0f}-{high:.0f} Hz"
        return f"the {name} band ({hz}: {what}) at {self.start_s:.0f}-{self.end_s:.0f} s"


def segments(duration_s: float, step_s: float = SEGMENT_S) -> list[tuple[float, float]]:
    """The clip's time segments: from 0 every ``step_s`` (the last one half to one and a half of it long); a long
    clip's steps are a multiple of ``step_s``, so there are at most `SEGMENTS_MAX`."""
    n = max(1, round(duration_s / step_s))
    if n > SEGMENTS_MAX:
        return segments(duration_s, step_s * math.ceil(n / SEGMENTS_MAX))
    edges = [*(i * step_s for i in range(n)), duration_s]
    return list(zip(edges[:-1], edges[1:]))


def occlude(
    model: GenreNet,
    logmel: torch.Tensor,
    probs: torch.Tensor,
    starts_s: list[float],
    duration_s: float,
    genre: int,
    versus: list[int],
) -> list[Region]:
    """Every region muted in turn, in ``logmel`` (windows, mels, frames) as the model read it from windows starting
    at ``starts_s``, its window ``probs`` (windows, genres) from the same forward path. Returns the regions, the
    costliest for ``genre`` over ``versus`` first."""
    config = model.config
    hop_s = config.hop_length / config.sample_rate
    frame_s = np.asarray(starts_s)[:, None] + np.arange(logmel.shape[2])[None] * hop_s  # (windows, frames)
    # a window's first and last frames sit on its edges: nudged inwards, they belong to their own window's segment
    frame_s += np.sign(np.asarray(starts_s)[:, None] + config.window_s / 2 - frame_s) * hop_s / 4
    mel_hz = model.to_logmel.mel_frequencies.cpu().numpy()
    floor = logmel.amin(dim=(1, 2), keepdim=True)  # silence, in this front end's units
    jobs, muted = [], []  # (region, window), the muted window
    # segments on the model's window grid where its windows are short: muting one then changes one window, not two
    step_s = config.window_hop_s if config.window_hop_s <= WINDOW_GRID_MAX_S else SEGMENT_S
    regions = [(a, b, band) for a, b in segments(duration_s, step_s) for band in BANDS]
    for r, (a, b, (_, low, high, _)) in enumerate(regions):
        rows = torch.from_numpy((mel_hz >= low) & (mel_hz < high)).to(logmel.device)
        for w in np.flatnonzero(((frame_s >= a) & (frame_s < b)).any(axis=1)):
            cols = torch.from_numpy((frame_s[w] >= a) & (frame_s[w] < b)).to(logmel.device)
            mask = rows[:, None] & cols[None, :]
            jobs.append((r, w))
            muted.append(torch.where(mask, floor[w], logmel[w]))
    with torch.no_grad():
        out = [model.classify(torch.stack(muted[i : i + _BATCH])).softmax(-1) for i in range(0, len(muted), _BATCH)]
    without = np.repeat(probs.cpu().numpy()[None], len(regions), axis=0)  # (regions, windows, genres)
    for (r, w), p in zip(jobs, torch.cat(out).cpu().numpy()):
        without[r, w] = p
    clip = without.mean(axis=1)
    clip /= clip.sum(axis=1, keepdims=True)  # as a prediction averages its windows
    found = [
        Region(a, b, band, low, high, float(c[genre]), float(c[versus].sum()))
        for (a, b, (band, low, high, _)), c in zip(regions, clip)
    ]
    return sorted(found, key=lambda region: region.genre_without - region.versus_without)


def sentence(regions: list[Region], genre: str, versus: str, genre_p: float, versus_p: float) -> str:
    """What made it ``genre`` rather than ``versus``, from the costliest region ("... the low band ... at 10-13 s.
    Without it, disco goes from 62% to 21% and pop from 20% to 31%.")."""
    top = regions[0]
    if (genre_p - versus_p) - (top.genre_without - top.versus_without) < 0.01:
        return f"No one region makes it {genre} rather than {versus}: muting any moves the two by under a point."
    return (
        f"What made it {genre} rather than {versus} most: {top.describe()}. Without it, {genre} goes from "
        f"{genre_p:.0%} to {top.genre_without:.0%} and {versus} from {versus_p:.0%} to {top.versus_without:.0%}."
    )
