"""The app's clip views, each its components and its handler: Analyze (what the network hears and decides),
Explain (why) and Compare (every model side by side). Wired into the page by app.py; Live is live_view.py."""

from __future__ import annotations

import logging
from html import escape

import gradio as gr

from app_models import AppModels, ClipProblem, classify_clip, load_clip
from genre_model.explain import OTHERS, explain
from genre_model.inference import GenreClassifier, Prediction
from genre_model.plots import explanation_figure, prediction_figures
from live_view import bars_html

log = logging.getLogger("genre-app")
PREDICTED = "the predicted genre"
RUNNER_UP = "the runner-up"
TAGS_SHOWN = 6
REGIONS_SHOWN = 3
START = "### Pick an example (beside this on a laptop, above on a phone), upload a clip or record one."


def shown(handler, n_outputs: int):
    """A UI handler: an empty message and ``handler``'s outputs, or the problem in the message and every output
    cleared, so no view keeps another clip's result and nothing turns into an error badge."""

    def run(*args):
        try:
            return "", *handler(*args)
        except ClipProblem as problem:
            return f"⚠ {problem}", *[None] * n_outputs

    return run


def headline(p: Prediction, classifier: GenreClassifier) -> str:
    """The verdict by ``classifier``'s (the answering model's) confidence rule, and what was analyzed by which."""
    said = classifier.verdict(p.probabilities)
    cut = f" (the first {p.analyzed_s:.0f} s of {p.duration_s:.0f} s)" if p.analyzed_s < p.duration_s - 1e-3 else ""
    route = f", {p.route}" if p.route else ""
    return f"## {said.headline}\n{said.reason}\n\n{p.analyzed_s:.1f} s analyzed{cut} by `{p.model_name}`{route}."


def analyze(models: AppModels, audio, source: str = "auto") -> tuple:
    """Analyze view: headline, top-3 label, probability bars, waveform, log-mel, genre timeline, pretrained tags.
    ``source``: "microphone" for the box's own recording (the room model), else "auto" (the detector decides)."""
    classifier = models.main
    wave = load_clip(classifier, audio)
    prediction = classify_clip(models.answering, wave, with_features=True, source=source)
    figures = prediction_figures(prediction, wave.samples, wave.sample_rate, classifier.model.to_logmel)
    return (
        headline(prediction, models.answered(prediction)),
        dict(prediction.top(3)),
        figures["probabilities"],
        figures["waveform"],
        figures["spectrogram"],
        gr.Plot(figures["timeline"], visible=figures["timeline"] is not None),
        dict(sorted(prediction.tags.items(), key=lambda kv: -kv[1])[:TAGS_SHOWN]) if prediction.tags else None,
    )


def explain_clip(models: AppModels, audio, genre: str, versus: str, source: str = "auto") -> tuple:
    """Explain view: what made the predicted (or chosen) genre rather than the runner-up (or the chosen one), in a
    sentence and the regions that cost it most when muted, boxed over the evidence map (of the model Analyze chose
    for the clip, by ``source`` as there); the costliest region to listen to."""
    wave = load_clip(models.main, audio)
    try:
        classifier = models.router.choose(wave, source)[0] if models.router else models.main
        e = explain(classifier, wave, None if genre == PREDICTED else genre, None if versus == RUNNER_UP else versus)
    except Exception:  # noqa: BLE001 - as _classify: keep serving
        log.exception("explanation failed")
        raise ClipProblem("Something went wrong while explaining this clip. Try another file.") from None
    p, to_logmel = e.prediction, classifier.model.to_logmel
    db, bands = to_logmel.loudness_db(p.logmel), to_logmel.mel_frequencies.numpy()
    costliest = e.regions[:REGIONS_SHOWN]
    boxes = [(r.start_s, r.end_s, r.low_hz, r.high_hz) for r in costliest]
    figure = explanation_figure(db, e.evidence, p.frame_times_s, bands, e.scale, boxes)
    rows = "\n".join(
        f"| {i} | {r.describe()} | {r.genre_without:.0%} | {r.versus_without:.0%} |" for i, r in enumerate(costliest, 1)
    )
    table = (
        f"Muted one at a time, the regions that cost **{e.genre}** its lead over **{e.versus}** most, and the two "
        f"without each:\n\n| | region | {e.genre} | {e.versus} |\n|---|---|---|---|\n{rows}"
    )
    sr, first = wave.sample_rate, e.regions[0]
    region = (sr, wave.samples[int(first.start_s * sr) : int(first.end_s * sr)])
    summary = f"## Why {e.genre} and not {e.versus}?\n**{e.summary}**\n\n{e.note} (`{classifier.name}`)"
    return summary, figure, table, region


def compare(models: AppModels, audio) -> tuple[str]:
    """Compare view: the same clip through every model, a card each: how often it is right (big), its verdict in
    the same words as Analyze, its probabilities (genres in the same order everywhere)."""
    cards = []
    for c in models.compare:  # models may differ in sample rate: each decodes for itself
        p = classify_clip(c.classifier, load_clip(c.classifier, audio))
        said = c.classifier.verdict(p.probabilities)
        accuracy = f"<b>{c.accuracy:.0%}</b> right on average" if c.accuracy is not None else "<b>?</b>"
        cards.append(
            f'<div class="compare-card"><div class="compare-model">{escape(c.classifier.name)}: {escape(c.role)}'
            f'</div><div class="compare-accuracy">{accuracy} <span>over many clips, not a score for this one: '
            f"balanced, on {escape(c.measured_on)}</span></div>"
            f"<h3>{escape(said.headline)}</h3>{bars_html(p.probabilities)}</div>"
        )
    return (f'<div class="compare-cards">{"".join(cards)}</div>',)


def analyze_view(models: AppModels) -> list:
    """Analyze's components, in `analyze`'s order."""
    verdict_text = gr.Markdown(START, elem_id="headline")
    with gr.Row():
        with gr.Column():
            label = gr.Label(num_top_classes=3, label="Top genres", show_heading=False, elem_id="top-genres")
            tags = gr.Label(
                num_top_classes=TAGS_SHOWN,
                label="Tags the pretrained musicnn tagger hears (Million Song Dataset tags, each scored on its own; "
                "not this app's genre decision)",
                visible=bool(models.main.model.tag_names),
                show_heading=False,  # a big top tag would read like the genre answer
                elem_id="tags",
            )
        bars = gr.Plot(label="Probabilities", elem_id="probabilities")
    waveform = gr.Plot(label="Waveform")
    spectrogram = gr.Plot(label="What the network hears: the mel spectrogram")
    timeline = gr.Plot(label="Genre over time", visible=False, elem_id="timeline")
    return [verdict_text, label, bars, waveform, spectrogram, timeline, tags]


def explain_view(models: AppModels) -> tuple[list, gr.Button, list]:
    """Explain's choices (why..., and not...), its button and its components, in `explain_clip`'s order."""
    with gr.Row():
        genre = gr.Dropdown([PREDICTED, *models.main.genres], value=PREDICTED, label="Why…")
        versus = gr.Dropdown([RUNNER_UP, OTHERS, *models.main.genres], value=RUNNER_UP, label="…and not")
        button = gr.Button("Explain", variant="primary")
    note = gr.Markdown(elem_id="explain-summary")
    plot = gr.Plot(label="The regions (boxed) and the evidence map over the spectrogram", elem_id="explain-plot")
    with gr.Row():  # side by side where both fit, the player under the table on a phone
        with gr.Column(scale=3, min_width=320):
            table = gr.Markdown(elem_id="explain-table")
        with gr.Column(scale=2, min_width=260):
            play = gr.Audio(label="Listen to region 1", interactive=False, elem_id="explain-play")
    gr.Markdown(
        "Each region (a few seconds x the low, middle or high band) was muted in turn and the clip classified again: "
        "the boxes are those that cost the genre most. On the map, red marks the sounds (time and pitch) that pushed "
        "the model towards the first genre, blue those that pushed it towards the second; the same scale for every "
        "genre, so a genre the model barely hears shows little red."
    )
    return [genre, versus], button, [note, plot, table, play]


def compare_view() -> list:
    """Compare's component: one HTML block of a card per model."""
    cards = gr.HTML(elem_id="compare-outputs")
    gr.Markdown(
        "The same clip through this app's models, our CNN trained from scratch, and the paper's CNN and feed-forward "
        "network. A long bar is not a right answer: the big number says how often each model is right."
    )
    return [cards]
