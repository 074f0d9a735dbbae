"""The Gradio demo: upload or record a clip and see what the genre model hears and decides.

    python app.py [--model PATH_OR_REPO_ID] [--device D] [--share] [--examples DIR]

Also the ``app_file`` of a Hugging Face Space. All the work happens in ``genre_model``; this file only wires
the UI to it.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from genre_model.audio import AUDIO_SUFFIXES, AudioError, Waveform
from genre_model.explain import explain
from genre_model.inference import GenreClassifier, Prediction, keep_freed_memory
from genre_model.live import LiveListener
from genre_model.models import ModelNotFoundError
from genre_model.plots import explanation_figure, prediction_figures, probability_figure, timeline_figure
from genre_model.synth import write_examples

log = logging.getLogger("genre-app")
COMPARE_MODELS = ("chunk-cnn", "seed-cnn", "ffnn")  # our from-scratch CNN and the paper's networks
LIVE_WINDOW_S = 6.0
PREDICTED = "the predicted genre"
LIVE_UPDATE_S = 0.9  # new audio between two live predictions
TAGS_SHOWN = 6
CSS = "#live-label .output-class {font-size: 3.5rem !important;} #live-label {font-size: 1.6rem;}"


@dataclass
class AppModels:
    main: GenreClassifier
    compare: dict[str, GenreClassifier]  # display name -> classifier, the main model first


def load_models(model: str | None, device: str | None) -> AppModels:
    main = GenreClassifier.from_pretrained(model, device)
    compare = {f"{main.name} (this app's model)": main}
    for name in COMPARE_MODELS:
        if name == main.name:
            continue
        try:
            label = "paper" if name in ("seed-cnn", "ffnn") else "from scratch"
            compare[f"{name} ({label})"] = GenreClassifier.from_pretrained(name, device)
        except ModelNotFoundError:
            log.warning("comparison model %s is not available; the Compare tab will skip it", name)
    return AppModels(main, compare)


def _load(classifier: GenreClassifier, audio) -> Waveform:
    """Decode the user's audio; bad input becomes a short message for the user, never a stack trace."""
    if audio is None:
        raise gr.Error("No audio yet: upload a file or record a clip first.", print_exception=False)
    try:
        return classifier.load(audio)
    except AudioError as err:  # the user's input, not our bug: one log line, no traceback
        log.info("rejected input: %s", err)
        raise gr.Error(str(err), print_exception=False) from None


def _classify(classifier: GenreClassifier, wave: Waveform, with_features: bool = False) -> Prediction:
    try:
        return classifier.predict(wave, with_features=with_features)
    except Exception:  # noqa: BLE001 - keep serving; the log gets the details, the user a plain message
        log.exception("prediction failed")
        raise gr.Error("Something went wrong while analyzing this clip. Try another file.") from None


def facts_line(p: Prediction) -> str:
    cut = f" (first {p.analyzed_s:.0f} s of {p.duration_s:.0f} s)" if p.analyzed_s < p.duration_s - 1e-3 else ""
    return f"**{p.analyzed_s:.1f} s analyzed**{cut} · model `{p.model_name}` · {p.device} · {p.elapsed_ms:.0f} ms"


def analyze(models: AppModels, audio):
    """Analyze tab: facts, top-3 label, probability bars, waveform, log-mel, genre timeline, pretrained tags."""
    classifier = models.main
    wave = _load(classifier, audio)
    prediction = _classify(classifier, wave, with_features=True)
    frontend = classifier.model.frontend
    figures = prediction_figures(
        prediction, wave.samples, wave.sample_rate, frontend.mel_frequencies.numpy(), frontend.unit
    )
    return (
        facts_line(prediction),
        dict(prediction.top(3)),
        figures["probabilities"],
        figures["waveform"],
        figures["spectrogram"],
        gr.Plot(figures["timeline"], visible=figures["timeline"] is not None),
        dict(sorted(prediction.tags.items(), key=lambda kv: -kv[1])[:TAGS_SHOWN]) if prediction.tags else None,
    )


def explain_clip(models: AppModels, audio, genre: str):
    """Explain tab: relevance overlay for the predicted (or chosen) genre, strongest windows, confidence note."""
    classifier = models.main
    wave = _load(classifier, audio)
    e = explain(classifier, wave, None if genre == PREDICTED else genre)
    p = e.prediction
    figure = explanation_figure(p.logmel, e.relevance, p.frame_times_s,
                                classifier.model.frontend.mel_frequencies.numpy(), e.genre)  # fmt: skip
    rows = "\n".join(f"| {a:.1f}-{b:.1f} s | {prob:.0%} |" for a, b, prob in e.top_segments)
    table = f"Windows that sounded most like **{e.genre}**:\n\n| where | {e.genre} |\n|---|---|\n{rows}"
    start, end, _ = e.top_segments[0]
    strongest = (wave.sample_rate, wave.samples[int(start * wave.sample_rate) : int(end * wave.sample_rate)])
    return f"**{p.genre}** · {e.note}", figure, table, strongest


def compare(models: AppModels, audio):
    """Compare tab: the same clip through every model, side by side."""
    outputs = []
    for classifier in models.compare.values():  # models may differ in sample rate: each decodes for itself
        p = _classify(classifier, _load(classifier, audio))
        outputs += [dict(p.top(3)), probability_figure(p.probabilities, title=f"classified in {p.elapsed_ms:.0f} ms")]
    return outputs


def live_step(models: AppModels, listener: LiveListener | None, chunk):
    """Live tab: add a microphone chunk to the rolling window and classify the window."""
    if chunk is None:
        return listener, gr.skip(), gr.skip(), gr.skip(), gr.skip()
    listener = listener or LiveListener(models.main.sample_rate, LIVE_WINDOW_S)
    rate, samples = chunk
    listener.push(rate, samples)
    # Browsers may send chunks far smaller than stream_every (Gradio 6 sends 0.1 s ones from a mic inside a
    # tab): keep every chunk, but classify at most once per LIVE_UPDATE_S of new audio.
    if listener.history and listener.heard_s - listener.history[-1].end_s < LIVE_UPDATE_S:
        return listener, gr.skip(), gr.skip(), gr.skip(), gr.skip()
    try:
        p = listener.classify(models.main)
    except AudioError as err:  # silence or not enough audio yet: say so, keep listening
        return listener, f"Listening… ({err})", gr.skip(), gr.skip(), gr.skip()
    status = f"Listening: last {len(listener.samples) / listener.sample_rate:.1f} s · {p.elapsed_ms:.0f} ms"
    timeline = timeline_figure(listener.history, models.main.genres, title="Genre over time (live)")
    return listener, status, dict(p.top(3)), probability_figure(p.probabilities), timeline


def example_files(folder: str | None) -> list[str]:
    """The user's own ``--examples`` folder, or clips synthesized at start-up (no recordings ship with us)."""
    if folder:
        return sorted(str(p) for p in Path(folder).iterdir() if p.suffix.lower() in AUDIO_SUFFIXES)
    return [str(p) for p in write_examples(Path(tempfile.gettempdir()) / "genre-demo-examples")]


def build_demo(models: AppModels, examples: list[str] | None = None) -> gr.Blocks:
    with gr.Blocks(title="Music genre classifier") as demo:
        gr.Markdown(
            "# What genre is this?\nUpload or record music and see what the network hears: the waveform, the "
            "log-mel spectrogram it is fed, and its confidence for each of the 10 GTZAN genres."
        )
        with gr.Tab("Analyze"):
            with gr.Row():
                with gr.Column(scale=1):
                    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music clip")
                    button = gr.Button("Analyze", variant="primary")
                    if examples:
                        gr.Examples(examples, inputs=audio, label="Examples")
                with gr.Column(scale=1):
                    facts = gr.Markdown()
                    label = gr.Label(num_top_classes=3, label="Top genres")
                    bars = gr.Plot(label="Probabilities")
                    tags = gr.Label(
                        num_top_classes=TAGS_SHOWN,
                        label="Tags the pretrained musicnn tagger hears (Million Song Dataset tags, each scored "
                        "on its own; not this app's genre decision)",
                        visible=bool(models.main.model.tag_names),
                        show_heading=False,  # a big top tag would read like the genre answer
                    )
            waveform = gr.Plot(label="Waveform")
            spectrogram = gr.Plot(label="Log-mel spectrogram")
            timeline = gr.Plot(label="Genre over time", visible=False)
            outputs = [facts, label, bars, waveform, spectrogram, timeline, tags]

            def run(x):
                return analyze(models, x)

            button.click(run, audio, outputs, api_name="classify")
            audio.upload(run, audio, outputs, api_visibility="private")
            audio.stop_recording(run, audio, outputs, api_visibility="private")

        with gr.Tab("Explain"):
            gr.Markdown("Why this genre? Red marks the sounds (time and pitch) that pushed the model towards it.")
            with gr.Row():
                explain_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music clip")
                with gr.Column():
                    explain_genre = gr.Dropdown([PREDICTED, *models.main.genres], value=PREDICTED,
                                                label="Explain which genre? (why not jazz?)")  # fmt: skip
                    explain_button = gr.Button("Explain", variant="primary")
            explain_note = gr.Markdown()
            explain_plot = gr.Plot(label="Evidence over the spectrogram")
            with gr.Row():
                explain_table = gr.Markdown()
                explain_play = gr.Audio(label="Listen to the strongest window", interactive=False)
            explain_outputs = [explain_note, explain_plot, explain_table, explain_play]
            explain_button.click(lambda a, g: explain_clip(models, a, g), [explain_audio, explain_genre],
                                 explain_outputs, api_name="explain")  # fmt: skip

        with gr.Tab("Compare"):
            gr.Markdown(
                "The same clip through this app's model, our CNN trained from scratch, and the paper's CNN and "
                "feed-forward network: see where the small networks go wrong."
            )
            compare_audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Music clip")
            compare_button = gr.Button("Compare", variant="primary")
            compare_outputs = []
            with gr.Row():
                for title in models.compare:
                    with gr.Column(min_width=240):  # four side by side on a laptop screen
                        compare_outputs += [gr.Label(num_top_classes=3, label=title), gr.Plot(label=title)]
            compare_button.click(lambda x: compare(models, x), compare_audio, compare_outputs, api_name="compare")
            compare_audio.upload(lambda x: compare(models, x), compare_audio, compare_outputs, api_visibility="private")

        with gr.Tab("Live"):
            gr.Markdown(
                f"Play music into the microphone: the genre of the last {LIVE_WINDOW_S:.0f} seconds updates every "
                "second. Press record to start, stop to pause, Reset to clear the timeline."
            )
            listener = gr.State(None)
            with gr.Row():
                mic = gr.Audio(sources=["microphone"], streaming=True, label="Microphone")
                reset = gr.Button("Reset")
            live_status = gr.Markdown("Press record to start.")
            live_label = gr.Label(num_top_classes=3, label="Now playing", elem_id="live-label")
            with gr.Row():
                live_bars = gr.Plot(label="Probabilities")
                live_timeline = gr.Plot(label="Timeline")
            live_outputs = [listener, live_status, live_label, live_bars, live_timeline]
            mic.stream(
                lambda state, chunk: live_step(models, state, chunk),
                [listener, mic],
                live_outputs,
                stream_every=1.0,
                time_limit=3600,
                concurrency_limit=8,
                api_name="live",
            )
            reset.click(
                lambda: (None, "Press record to start.", None, None, None), None, live_outputs, api_visibility="private"
            )
    return demo


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the music-genre demo.")
    parser.add_argument("--model", default=os.environ.get("GENRE_MODEL"), help="model folder or Hub repo id")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--examples", default=None, help="folder of your own example clips")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    keep_freed_memory()
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
        css=CSS,
        footer_links=["api"],
    )


if __name__ == "__main__":
    main()
