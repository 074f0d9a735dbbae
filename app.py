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
from pathlib import Path

import gradio as gr
from gradio import FileData

from app_models import AppModels, ClipProblem, classify_clip, load_clip, load_models
from genre_model.audio import AUDIO_SUFFIXES
from genre_model.explain import OTHERS, explain, verdict
from genre_model.inference import GenreClassifier, Prediction
from genre_model.loading import ModelNotFoundError
from genre_model.plots import explanation_figure, prediction_figures, probability_figure
from live_view import LIVE_LISTENERS_MAX, build_live_tab

log = logging.getLogger("genre-app")
ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"  # CC BY / BY-SA / public-domain excerpts, credits in examples/CREDITS.md
PREDICTED = "the predicted genre"
RUNNER_UP = "the runner-up"
TAGS_SHOWN = 6
# the answers are read from the back of a classroom, off a projector
CSS = (
    "#live-headline h2, #headline h2 {font-size: 3.2rem; line-height: 1.1;} #live-headline h2 {font-size: 4rem;"
    " margin: .5rem 0;} #live-headline p, .live-status {font-size: 1.3rem;}"
    " #clip-message {color: var(--error-text-color);}"
    " .live-bar {display: flex; align-items: center; gap: .5rem; font-size: 1.2rem; margin: .15rem 0;}"
    " .live-bar span:first-child {width: 6rem;} .live-bar b {height: 1.2rem; border-radius: 3px; min-width: 2px;}"
    " .live-strip {display: flex; justify-content: flex-end; height: 3rem; margin-top: 1rem; background: #8881;}"
    " .live-strip i {flex: none; box-shadow: inset -1px 0 #fff8;}"
    " .live-legend {display: flex; justify-content: space-between; font-size: 1.1rem; margin-top: .3rem;}"
    " #live-panel.paused :is(#live-headline, .live-bars, .live-strip, .live-legend) {opacity: .35;}"
    " #live-panel.paused .live-status {display: none;}"
    " .live-level {display: inline-block; width: 6rem; height: .8rem; background: #8884; vertical-align: middle;}"
    " .live-level b {display: block; height: 100%; background: #2a2;}"
    " .live-paused {display: none; font-size: 1.3rem;} #live-panel.paused .live-paused {display: block;}"
)
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
    title, reason, _ = verdict(p.probabilities, classifier.model.config.entropy_threshold)
    cut = f" (the first {p.analyzed_s:.0f} s of {p.duration_s:.0f} s)" if p.analyzed_s < p.duration_s - 1e-3 else ""
    route = f", {p.route}" if p.route else ""
    return f"## {title}\n{reason}\n\n{p.analyzed_s:.1f} s analyzed{cut} by `{p.model_name}`{route}."


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


def compare(models: AppModels, audio) -> list:
    """Compare view: the same clip through every model, side by side, genres in the same order everywhere."""
    outputs = []
    for classifier in models.compare.values():  # models may differ in sample rate: each decodes for itself
        p = classify_clip(classifier, load_clip(classifier, audio))
        outputs += [dict(p.top(3)), probability_figure(p.probabilities)]
    return outputs


def summary(models: AppModels, audio, source: str = "auto") -> dict:
    """The API's answer for one clip: the genre, all ten probabilities, whether the model is sure (and why), the
    pretrained tagger's tags when the model has them, timings, and which model answered and why."""
    prediction = classify_clip(models.answering, load_clip(models.main, audio), source=source)
    title, reason, sure = verdict(prediction.probabilities, models.answered(prediction).model.config.entropy_threshold)
    return {**prediction.to_dict(), "headline": title, "reason": reason, "sure": sure}


def example_files(folder: str | Path | None = None) -> list[str]:
    """Audio files in ``folder`` (the user's ``--examples``, else the committed CC excerpts in examples/)."""
    folder = Path(folder or EXAMPLES_DIR)
    return sorted(str(p) for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES) if folder.is_dir() else []


def build_demo(models: AppModels, examples: list[str] | None = None) -> gr.Blocks:
    with gr.Blocks(title="Music genre classifier") as demo:
        gr.Markdown(
            "# What genre is this?\nPick an example, upload or record music once: **Analyze** shows what the "
            "network hears and decides, **Explain** why, **Compare** what smaller networks make of the same clip."
        )
        with gr.Row():
            with gr.Column(scale=3):
                clip = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music clip", elem_id="clip")
                message = gr.Markdown(elem_id="clip-message")
            if examples:
                with gr.Column(scale=2):
                    label = "Examples (real music, credits in examples/CREDITS.md)"
                    gr.Examples(examples, inputs=clip, label=label, examples_per_page=12)
        with gr.Tab("Analyze"):
            with gr.Row():
                with gr.Column():
                    verdict_text = gr.Markdown(elem_id="headline")
                    label = gr.Label(num_top_classes=3, label="Top genres", show_heading=False)
                    tags = gr.Label(
                        num_top_classes=TAGS_SHOWN,
                        label="Tags the pretrained musicnn tagger hears (Million Song Dataset tags, each scored "
                        "on its own; not this app's genre decision)",
                        visible=bool(models.main.model.tag_names),
                        show_heading=False,  # a big top tag would read like the genre answer
                    )
                bars = gr.Plot(label="Probabilities")
            waveform = gr.Plot(label="Waveform")
            spectrogram = gr.Plot(label="What the network hears: the mel spectrogram")
            timeline = gr.Plot(label="Genre over time", visible=False)
        with gr.Tab("Explain"):
            gr.Markdown(
                "Why this genre and not another? Red marks the sounds (time and pitch) that pushed the model "
                "towards the first genre, blue those that pushed it towards the second; the same scale for "
                "every genre, so a genre the model barely hears shows little red."
            )
            with gr.Row():
                explain_genre = gr.Dropdown([PREDICTED, *models.main.genres], value=PREDICTED, label="Why…")
                explain_versus = gr.Dropdown(
                    [RUNNER_UP, OTHERS, *models.main.genres], value=RUNNER_UP, label="…and not"
                )
                explain_button = gr.Button("Explain", variant="primary")
            explain_note = gr.Markdown()
            explain_plot = gr.Plot(label="Evidence over the spectrogram")
            with gr.Row():
                explain_table = gr.Markdown()
                explain_play = gr.Audio(label="Listen to the strongest window", interactive=False)
        with gr.Tab("Compare"):
            gr.Markdown(
                "The same clip through this app's models, our CNN trained from scratch, and the paper's CNN and "
                "feed-forward network. A long bar is not a right answer: each title says how often that model is right."
            )
            compare_button = gr.Button("Compare", variant="primary")
            compare_outputs = []
            with gr.Row():
                for title in models.compare:
                    with gr.Column(min_width=240):  # four side by side on a laptop screen
                        compare_outputs += [gr.Label(num_top_classes=3, label=title), gr.Plot(show_label=False)]
        build_live_tab(models.main, models.router.room if models.router else None)

        analyze_outputs = [verdict_text, label, bars, waveform, spectrogram, timeline, tags]
        explain_outputs = [explain_note, explain_plot, explain_table, explain_play]
        stale = explain_outputs + compare_outputs  # cleared whenever the clip changes

        analyze_shown = shown(lambda audio: analyze(models, audio), len(analyze_outputs))
        explain_shown = shown(lambda *args: explain_clip(models, *args), len(explain_outputs))
        compare_shown = shown(lambda audio: compare(models, audio), len(compare_outputs))

        def on_clip(audio):  # a new clip (or none: cleared) is analyzed at once and clears the other views
            if audio is None:
                return "", *[None] * (len(analyze_outputs) + len(stale))
            return *analyze_shown(audio), *[None] * len(stale)

        clip.change(on_clip, clip, [message, *analyze_outputs, *stale], api_visibility="private")

        def explain_view(audio, genre: str = PREDICTED, versus: str = RUNNER_UP):  # named: the API shows them
            return explain_shown(audio, genre, versus)

        def compare_view(audio):
            return compare_shown(audio)

        explain_inputs = [clip, explain_genre, explain_versus]
        explain_button.click(explain_view, explain_inputs, [message, *explain_outputs], api_name="explain")
        compare_button.click(compare_view, clip, [message, *compare_outputs], api_name="compare")

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
