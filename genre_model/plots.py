"""Plotly figures for the app and the evaluation report. Everything is downsampled to a few thousand points
so the browser stays fast whatever the clip length."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from .inference import Prediction, Segment

# One fixed colour per genre, so a genre looks the same in every figure.
GENRE_COLORS = {
    "blues": "#1f77b4",
    "classical": "#8c564b",
    "country": "#bcbd22",
    "disco": "#e377c2",
    "hiphop": "#7f7f7f",
    "jazz": "#ff7f0e",
    "metal": "#d62728",
    "pop": "#17becf",
    "reggae": "#2ca02c",
    "rock": "#9467bd",
}
MAX_POINTS = 2000
_LAYOUT = dict(margin=dict(l=60, r=20, t=40, b=40), template="plotly_white")


def genre_color(genre: str) -> str:
    return GENRE_COLORS.get(genre, "#636efa")


def waveform_figure(samples: np.ndarray, sample_rate: int, duration_s: float | None = None) -> go.Figure:
    """Min/max envelope of ``samples`` in at most ``MAX_POINTS`` bins. When the input was longer than what
    was analyzed (``duration_s``), the analyzed part is shaded and the axis runs to the full length."""
    bins = min(MAX_POINTS, len(samples))
    edges = np.linspace(0, len(samples), bins + 1).astype(int)
    lo = np.minimum.reduceat(samples, edges[:-1])
    hi = np.maximum.reduceat(samples, edges[:-1])
    t = edges[:-1] / sample_rate
    analyzed_s = len(samples) / sample_rate
    fig = go.Figure(
        [
            go.Scatter(x=t, y=hi, mode="lines", line=dict(width=0.5, color="#4c78a8"), hoverinfo="skip"),
            go.Scatter(
                x=t, y=lo, mode="lines", line=dict(width=0.5, color="#4c78a8"), fill="tonexty", hoverinfo="skip"
            ),
        ]
    )
    total = max(duration_s or analyzed_s, analyzed_s)
    fig.add_vrect(x0=0, x1=analyzed_s, fillcolor="#4c78a8", opacity=0.08, line_width=0)
    if total > analyzed_s + 1e-3:
        fig.add_annotation(x=(analyzed_s + total) / 2, y=0, text="not analyzed", showarrow=False)
    fig.update_layout(showlegend=False, height=260, **_LAYOUT)  # its box is labelled: no title of its own
    fig.update_xaxes(title="time (s)", range=[0, total])
    fig.update_yaxes(title="amplitude", range=[-1.05, 1.05] if np.abs(samples).max() <= 1 else None)
    return fig


def _pool_time(grid: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Max-pool columns down to at most MAX_POINTS, so short loud events stay visible."""
    step = max(1, int(np.ceil(grid.shape[1] / MAX_POINTS)))
    if step == 1:
        return grid, times
    n = grid.shape[1] // step * step
    return grid[:, :n].reshape(grid.shape[0], -1, step).max(axis=2), times[:n:step]


def frequency_ticks(mel_hz: np.ndarray) -> tuple[list[float], list[str]]:
    """Round frequencies (125 Hz ... 16 kHz, octaves) placed on a mel-band axis, none closer than a tenth of it."""
    vals, text = [], []
    for f in 125 * 2.0 ** np.arange(8):
        at = float(np.interp(f, mel_hz, np.arange(len(mel_hz))))
        if mel_hz[0] <= f <= mel_hz[-1] and (not vals or at - vals[-1] >= len(mel_hz) / 10):
            vals.append(at)
            text.append(f"{f / 1000:g} kHz" if f >= 1000 else f"{f:g} Hz")
    return vals, text


def spectrogram_figure(loudness_db: np.ndarray, frame_times_s: np.ndarray, mel_hz: np.ndarray) -> go.Figure:
    """The mel spectrogram the network received (its loudness in dB), mel bands on a frequency axis."""
    loudness_db, frame_times_s = _pool_time(loudness_db, frame_times_s)
    tickvals, ticktext = frequency_ticks(mel_hz)
    fig = go.Figure(
        go.Heatmap(
            z=loudness_db,
            x=frame_times_s,
            y=np.arange(len(mel_hz)),
            colorscale="Magma",
            colorbar=dict(title=dict(text="loudness (dB)", side="right"), thickness=15),  # narrow: room on phones
            customdata=np.repeat(mel_hz[:, None], loudness_db.shape[1], axis=1),
            hovertemplate="%{x:.2f} s, %{customdata:.0f} Hz: %{z:.0f} dB<extra></extra>",
        )
    )
    fig.update_layout(height=280, **_LAYOUT)
    fig.update_xaxes(title="time (s)")
    fig.update_yaxes(title="frequency", tickvals=tickvals, ticktext=ticktext)
    return fig


def explanation_figure(
    loudness_db: np.ndarray,
    evidence: np.ndarray,
    frame_times_s: np.ndarray,
    mel_hz: np.ndarray,
    scale: float,
    regions: list[tuple[float, float, float, float]] = (),
) -> go.Figure:
    """The spectrogram in grey with the evidence over it: red for the explained genre, blue against it, on the
    clip's fixed ``scale``; ``regions`` (start s, end s, low Hz, high Hz) boxed and numbered in large type."""
    fig = spectrogram_figure(loudness_db, frame_times_s, mel_hz)
    fig.data[0].update(colorscale="Greys", reversescale=True, showscale=False)
    clear = "rgba(255,255,255,0)"
    overlay = go.Heatmap(
        z=_pool_time(evidence, frame_times_s)[0],
        x=fig.data[0].x,
        y=fig.data[0].y,
        zmin=-scale,
        zmax=scale,
        colorscale=[[0, "rgba(30,90,220,0.85)"], [0.4, clear], [0.6, clear], [1, "rgba(220,30,30,0.85)"]],
        colorbar=dict(
            title=dict(text="evidence", side="right"),
            thickness=15,
            tickvals=[-scale, 0, scale],
            ticktext=["against", "0", "for"],
        ),
        hovertemplate="evidence %{z:.3f}<extra></extra>",
    )
    fig.add_trace(overlay)
    for rank, (start, end, low, high) in enumerate(regions, 1):
        rows = np.flatnonzero((mel_hz >= low) & (mel_hz < high))
        fig.add_shape(
            type="rect",
            x0=start,
            x1=end,
            y0=rows[0] - 0.5,
            y1=rows[-1] + 0.5,
            line=dict(color="#111", width=3),
            # a box too low for its number (the low band) has it above, where it is not cut off
            label=dict(
                text=str(rank),
                font=dict(size=28, color="#111"),
                textposition="top left",
                yanchor="bottom" if len(rows) < len(mel_hz) / 5 else "top",
            ),
        )
    return fig


def probability_figure(probabilities: dict[str, float]) -> go.Figure:
    """Horizontal bars in percent, the genres in the model's order from top to bottom (the same rows in every
    chart and every model, so they can be compared at a glance)."""
    genres = list(probabilities)[::-1]  # plotly draws the first bar at the bottom
    probs = [100 * probabilities[g] for g in genres]
    fig = go.Figure(
        go.Bar(
            x=probs,
            y=genres,
            orientation="h",
            marker_color=[genre_color(g) for g in genres],
            text=[f"{p:.0f}%" for p in probs],
            textposition="outside",
            cliponaxis=False,
        )
    )
    fig.update_layout(height=300, **_LAYOUT)
    fig.update_xaxes(title="probability (%)", range=[0, 110])
    return fig


def timeline_figure(segments: list[Segment], genres: list[str], colored: int = 3) -> go.Figure:
    """Stacked probabilities per window: how the decision moves through the clip. The ``colored`` genres most
    likely overall get their colours, the rest share one grey band; the legend lists them in stack order."""
    t = [(s.start_s + s.end_s) / 2 for s in segments]
    mean = {g: np.mean([s.probabilities[g] for s in segments]) for g in genres}
    top = sorted(genres, key=lambda g: -mean[g])[:colored]
    bands = [(g, [100 * s.probabilities[g] for s in segments], genre_color(g)) for g in top]
    rest = [100 * sum(p for g, p in s.probabilities.items() if g not in top) for s in segments]
    bands.append(("other genres", rest, "#c7c7c7"))
    fig = go.Figure(
        [
            go.Scatter(x=t, y=y, name=name, mode="lines", stackgroup="p", line=dict(width=0.5, color=color))
            for name, y, color in bands
        ]
    )
    # legend under the axis title, in the order the bands are stacked (the first at the bottom)
    fig.update_layout(height=300, legend=dict(orientation="h", yanchor="top", y=-0.3, traceorder="normal"), **_LAYOUT)
    fig.update_xaxes(title="time (s)", range=[0, segments[-1].end_s])  # the clip's time, as the other charts
    fig.update_yaxes(title="%", range=[0, 100])
    return fig


def prediction_figures(prediction: Prediction, samples: np.ndarray, sample_rate: int, to_logmel) -> dict:
    """All the Analyze view's figures for one prediction (made ``with_features=True``); ``to_logmel`` is the
    model's log-mel module (its band frequencies and its values in dB)."""
    mel_hz = to_logmel.mel_frequencies.numpy()
    return {
        "waveform": waveform_figure(samples, sample_rate, prediction.duration_s),
        "spectrogram": spectrogram_figure(to_logmel.loudness_db(prediction.logmel), prediction.frame_times_s, mel_hz),
        "probabilities": probability_figure(prediction.probabilities),
        "timeline": timeline_figure(prediction.segments, list(prediction.probabilities))
        if prediction.segments
        else None,
    }


def confusion_figure(confusion: list[list[int]], genres: list[str], title: str = "Confusion matrix") -> go.Figure:
    z = np.asarray(confusion)
    fig = go.Figure(
        go.Heatmap(z=z, x=genres, y=genres, colorscale="Blues", text=z, texttemplate="%{text}", showscale=False)
    )
    fig.update_layout(title=title, height=520, width=600, **_LAYOUT)
    fig.update_xaxes(title="predicted")
    fig.update_yaxes(title="true", autorange="reversed")
    return fig
