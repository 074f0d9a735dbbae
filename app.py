"""The Gradio demo: upload, record or pick a clip and see what the genre model hears and decides.

    python app.py [--model PATH_OR_REPO_ID] [--device D] [--share] [--examples DIR]

Also the ``app_file`` of a Hugging Face Space. All the work happens in ``genre_model``; this file only wires
the UI to it. One clip, chosen once above the views, feeds Analyze, Explain and Compare; the Live view listens on
its own (microphone or this computer's sound, see static/capture.js).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from html import escape
from pathlib import Path

import gradio as gr
from gradio import FileData

from app_models import AppModels, ClipProblem, classify_clip, load_clip, load_models
from genre_model.audio import AUDIO_SUFFIXES
from genre_model.explain import OTHERS, explain
from genre_model.inference import GenreClassifier, Prediction
from genre_model.loading import ModelNotFoundError
from genre_model.plots import explanation_figure, prediction_figures
from live_view import LIVE_LISTENERS_MAX, bars_html, build_live_tab

log = logging.getLogger("genre-app")
ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"  # CC BY / BY-SA / public-domain excerpts, credits in examples/CREDITS.md
PREDICTED = "the predicted genre"
RUNNER_UP = "the runner-up"
TAGS_SHOWN = 6
CSS = (ROOT / "static" / "app.css").read_text()
CAPTURE_JS = (ROOT / "static" / "capture.js").read_text()


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


def analyze(models: AppModels, audio) -> tuple:
    """Analyze view: headline, top-3 label, probability bars, waveform, log-mel, genre timeline, pretrained tags."""
    classifier = models.main
    wave = load_clip(classifier, audio)
    prediction = classify_clip(models.answering, wave, with_features=True)
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


def explain_clip(models: AppModels, audio, genre: str, versus: str) -> tuple:
    """Explain view: evidence for the predicted (or chosen) genre against the runner-up (or the chosen one) over the
    spectrogram, the strongest windows marked and listed (of the model Analyze chose for the clip)."""
    wave = load_clip(models.main, audio)
    try:
        classifier = models.router.choose(wave)[0] if models.router else models.main
        e = explain(classifier, wave, None if genre == PREDICTED else genre, None if versus == RUNNER_UP else versus)
    except Exception:  # noqa: BLE001 - as _classify: keep serving
        log.exception("explanation failed")
        raise ClipProblem("Something went wrong while explaining this clip. Try another file.") from None
    p, to_logmel = e.prediction, classifier.model.to_logmel
    db, bands = to_logmel.loudness_db(p.logmel), to_logmel.mel_frequencies.numpy()
    figure = explanation_figure(db, e.evidence, p.frame_times_s, bands, e.scale, e.top_segments)
    rows = "\n".join(f"| {i} | {a:.1f}-{b:.1f} s | {prob:.0%} |" for i, (a, b, prob) in enumerate(e.top_segments, 1))
    table = f"Windows that sounded most like **{e.genre}**:\n\n| | where | {e.genre} |\n|---|---|---|\n{rows}"
    start, end, _ = e.top_segments[0]
    strongest = (wave.sample_rate, wave.samples[int(start * wave.sample_rate) : int(end * wave.sample_rate)])
    title = (
        f"Why **{e.genre}** and not **{e.versus}**? Red: sounds that say {e.genre}; blue: sounds that say {e.versus}."
    )
    return f"{title} (`{classifier.name}`)\n\n{e.note}", figure, table, strongest


def compare(models: AppModels, audio) -> tuple[str]:
    """Compare view: the same clip through every model, a card each: how often it is right (big), its verdict in
    the same words as Analyze, its probabilities (genres in the same order everywhere)."""
    cards = []
    for c in models.compare:  # models may differ in sample rate: each decodes for itself
        p = classify_clip(c.classifier, load_clip(c.classifier, audio))
        said = c.classifier.verdict(p.probabilities)
        accuracy = f"<b>{c.accuracy:.0%}</b> right" if c.accuracy is not None else "<b>?</b>"
        cards.append(
            f'<div class="compare-card"><div class="compare-model">{escape(c.classifier.name)}: {escape(c.role)}'
            f'</div><div class="compare-accuracy">{accuracy} <span>balanced, on {escape(c.measured_on)}</span></div>'
            f"<h3>{escape(said.headline)}</h3>{bars_html(p.probabilities)}</div>"
        )
    return (f'<div class="compare-cards">{"".join(cards)}</div>',)


def summary(models: AppModels, audio, source: str = "auto") -> dict:
    """The API's answer for one clip: the genre, all ten probabilities, whether the model is sure (and why), the
    pretrained tagger's tags when the model has them, timings, and which model answered and why."""
    prediction = classify_clip(models.answering, load_clip(models.main, audio), source=source)
    return {**prediction.to_dict(), **models.answered(prediction).verdict(prediction.probabilities).to_dict()}


def example_files(folder: str | Path | None = None) -> list[str]:
    """Audio files in ``folder`` (the user's ``--examples``, else the committed CC excerpts in examples/)."""
    folder = Path(folder or EXAMPLES_DIR)
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES) if folder.is_dir() else []


def example_labels(files: list[str]) -> list[str]:
    """A button label per example: "title · the publisher's genre · artist, licence" from its folder's CREDITS.md
    table (file, title, artist, genre, ..., licence), so a class sees a wrong answer as one; else the file name."""
    rows = {}
    for file in {Path(f).parent / "CREDITS.md" for f in files}:
        for line in file.read_text().splitlines() if file.is_file() else []:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) >= 5 and cells[0].startswith("`"):
                short = [re.split(r" \(|, ", c)[0] for c in (cells[1], cells[3], cells[2])]
                rows[file.parent / cells[0].strip("`")] = "{} · {} · {}, ".format(*short) + re.sub(
                    r"\[([^]]+)\].*", r"\1", cells[-1]
                )
    return [rows.get(Path(f), Path(f).stem.replace("_", " ")) for f in files]


def analyze_view(models: AppModels) -> list:
    """Analyze's components, in `analyze`'s order."""
    verdict_text = gr.Markdown(elem_id="headline")
    with gr.Row():
        with gr.Column():
            label = gr.Label(num_top_classes=3, label="Top genres", show_heading=False)
            tags = gr.Label(
                num_top_classes=TAGS_SHOWN,
                label="Tags the pretrained musicnn tagger hears (Million Song Dataset tags, each scored on its own; "
                "not this app's genre decision)",
                visible=bool(models.main.model.tag_names),
                show_heading=False,  # a big top tag would read like the genre answer
            )
        bars = gr.Plot(label="Probabilities")
    waveform = gr.Plot(label="Waveform")
    spectrogram = gr.Plot(label="What the network hears: the mel spectrogram")
    timeline = gr.Plot(label="Genre over time", visible=False)
    return [verdict_text, label, bars, waveform, spectrogram, timeline, tags]


def explain_view(models: AppModels) -> tuple[list, gr.Button, list]:
    """Explain's choices (why..., and not...), its button and its components, in `explain_clip`'s order."""
    with gr.Row():
        genre = gr.Dropdown([PREDICTED, *models.main.genres], value=PREDICTED, label="Why…")
        versus = gr.Dropdown([RUNNER_UP, OTHERS, *models.main.genres], value=RUNNER_UP, label="…and not")
        button = gr.Button("Explain", variant="primary")
    note = gr.Markdown(elem_id="explain-summary")
    plot = gr.Plot(label="Evidence over the spectrogram")
    with gr.Row():
        table = gr.Markdown()
        play = gr.Audio(label="Listen to the strongest window", interactive=False)
    gr.Markdown(
        "Red marks the sounds (time and pitch) that pushed the model towards the first genre, blue those that pushed "
        "it towards the second; the same scale for every genre, so a genre the model barely hears shows little red."
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


def build_demo(models: AppModels, examples: list[str] | None = None) -> gr.Blocks:
    with gr.Blocks(title="Music genre classifier") as demo:
        gr.Markdown("# What genre is this?", elem_id="title")
        # the clip picker beside the views that use it, so each view's answer is on screen without scrolling;
        # Live listens on its own and hides it
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300, elem_id="clip-column"):
                clip = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music clip", elem_id="clip")
                message = gr.Markdown(elem_id="clip-message")
                if examples:
                    gr.Examples(
                        examples,
                        inputs=clip,
                        label="Examples: title · the publisher's genre · artist (credits in examples/CREDITS.md)",
                        example_labels=example_labels(examples),
                        examples_per_page=12,
                    )
            with gr.Column(scale=5):
                with gr.Tab("Analyze") as analyze_tab:
                    analyze_outputs = analyze_view(models)
                with gr.Tab("Explain") as explain_tab:
                    choices, explain_button, explain_outputs = explain_view(models)
                with gr.Tab("Compare") as compare_tab:
                    compare_outputs = compare_view()
                live_tab = build_live_tab(models.main, models.router.room if models.router else None)

        analyze_shown = shown(lambda audio: analyze(models, audio), len(analyze_outputs))
        explain_shown = shown(lambda *args: explain_clip(models, *args), len(explain_outputs))
        compare_shown = shown(lambda audio: compare(models, audio), len(compare_outputs))
        stale = explain_outputs + compare_outputs  # cleared whenever the clip changes, then redone if open

        def explain_clip_view(audio, genre: str = PREDICTED, versus: str = RUNNER_UP):  # named: the API shows them
            return explain_shown(audio, genre, versus) if audio else ("", *[None] * len(explain_outputs))

        def compare_clip_view(audio):
            return compare_shown(audio) if audio else ("", *[None] * len(compare_outputs))

        opened = gr.State("Analyze")  # the view on screen: a new clip redoes it at once
        for tab in (analyze_tab, explain_tab, compare_tab, live_tab):
            # the page hides the clip picker in Live itself: a layout update from the server while Live starts
            # recording could redraw the recorder under the user's click
            live = "true" if tab is live_tab else "false"
            tab.select(
                lambda name=tab.label: name,
                None,
                opened,
                js=f"() => document.body.classList.toggle('live-view', {live})",
                api_visibility="private",
            )
        explain_tab.select(explain_clip_view, [clip, *choices], [message, *explain_outputs], api_visibility="private")
        compare_tab.select(compare_clip_view, clip, [message, *compare_outputs], api_name="compare")
        explain_button.click(explain_clip_view, [clip, *choices], [message, *explain_outputs], api_name="explain")

        def on_clip(audio):  # a new clip (or none: cleared) is analyzed at once and clears the other views
            if audio is None:
                return "", *[None] * (len(analyze_outputs) + len(stale))
            return *analyze_shown(audio), *[None] * len(stale)

        def redo_open_view(view: str, audio, genre: str, versus: str):
            if view == "Explain":
                return *explain_clip_view(audio, genre, versus)[1:], *[gr.skip()] * len(compare_outputs)
            if view == "Compare":
                return *[gr.skip()] * len(explain_outputs), *compare_clip_view(audio)[1:]
            return [gr.skip()] * len(stale)

        clip.change(on_clip, clip, [message, *analyze_outputs, *stale], api_visibility="private").then(
            redo_open_view, [opened, clip, *choices], stale, api_visibility="private"
        )

        def classify(audio: FileData, source: str = "auto") -> dict:
            """Classify an audio file: genre, all ten genre probabilities (plain JSON), headline, reason, sure, and
            the model that answered (route). source: auto (a detector of room recordings decides), file (the clean
            model) or microphone (the room model)."""
            try:
                return summary(models, audio["path"] if isinstance(audio, dict) else audio.path, source)
            except ClipProblem as problem:
                raise gr.Error(str(problem), print_exception=False) from None

        gr.api(classify, api_name="classify")
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the music-genre demo.")
    parser.add_argument("--model", default=os.environ.get("GENRE_MODEL"), help="model folder or Hub repo id")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--examples", default=None, help="folder of your own example clips (default: examples/)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        models = load_models(args.model, args.device)
    except (ModelNotFoundError, OSError, ValueError) as err:
        raise SystemExit(f"error: {err}") from None
    demo = build_demo(models, example_files(args.examples))
    demo.queue(default_concurrency_limit=4, max_size=64).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        share=args.share,
        max_file_size="50mb",
        max_threads=LIVE_LISTENERS_MAX + 40,  # Gradio runs at most this many events at once; a listener holds one
        css=CSS,
        head=f"<script>{CAPTURE_JS}</script>",
        footer_links=["api"],
    )


if __name__ == "__main__":
    main()
