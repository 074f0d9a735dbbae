"""The app's Live view: classify, every second, what this computer plays or what the microphone hears (the browser
side is static/capture.js). Wired into the page by app.py."""

from __future__ import annotations

import gradio as gr
import numpy as np

from genre_model.audio import AudioError
from genre_model.inference import GenreClassifier
from genre_model.live import LiveListener
from genre_model.plots import probability_figure, timeline_figure

LIVE_BUFFER_S = 6.0  # the live buffer: audio each live prediction reads
LIVE_CONTEXT_S = 12.0  # the answer shown averages the predictions of this long
LIVE_UPDATE_S = 0.9  # new audio between two live predictions
MICROPHONE = "the microphone"  # a source label (static/capture.js writes the same); the room model answers it
IDLE = "Press **Microphone** or **This computer's sound** to start."
PAUSED = "**Paused.** Press a button above to listen again."
LOOPBACK_HOWTO = """**No "This computer's sound" in your browser?** Route the computer's output to an input and
choose it above. Windows: Sound settings → Recording → enable **Stereo Mix**. macOS: install **BlackHole** and send
the output to it. Linux: choose **Monitor of …** (PulseAudio/PipeWire)."""


def level_meter(level_db: float) -> str:
    """A ten-step text meter from -60 to 0 dBFS."""
    steps = int(np.clip((level_db + 60) / 6, 0, 10))
    return "▮" * steps + "▯" * (10 - steps)


def live_step(classifier: GenreClassifier, state: tuple[str, LiveListener] | None, chunk, source: str = MICROPHONE):
    """Live view: add a chunk to the live buffer; about once a second, show the steady reading of the last
    `LIVE_CONTEXT_S` seconds. ``state``: the source and its listener; another source starts afresh, so nothing heard
    from the last one (or by the other model) carries over. Outputs: state, status, headline, label, bars, timeline."""
    if chunk is None:
        return state, *[gr.skip()] * 5
    fresh = state is None or state[0] != source
    listener = LiveListener(classifier.sample_rate, LIVE_BUFFER_S, LIVE_CONTEXT_S) if fresh else state[1]
    state = (source, listener)
    rate, samples = chunk
    listener.push(rate, samples)
    needed = classifier.model.config.window_s
    if listener.heard_s < needed:  # no answer from a fraction of what the model needs; a fresh start clears the last
        waiting = f"Listening to {source}: {listener.heard_s:.0f} of {needed:.0f} s…"
        return state, waiting, *(("", None, None, None) if fresh else [gr.skip()] * 4)
    # Browsers may send chunks far smaller than stream_every (Gradio 6 sends 0.1 s ones from a mic inside a
    # tab): keep every chunk, but classify at most once per LIVE_UPDATE_S of new audio.
    if listener.history and listener.heard_s - listener.history[-1].end_s < LIVE_UPDATE_S:
        return state, *[gr.skip()] * 5
    try:
        reading = listener.read(classifier)
    except AudioError:  # silence: say so, keep listening
        return state, f"Listening to {source}: nothing to hear yet (silence).", "", None, gr.skip(), gr.skip()
    status = (
        f"Listening to **{source}** with `{classifier.name}` · level {level_meter(reading.level_db)} · the answer "
        f"covers the last {reading.context_s:.0f} s"
    )
    timeline = timeline_figure(listener.history, classifier.genres, title="")
    top3 = dict(sorted(reading.probabilities.items(), key=lambda kv: -kv[1])[:3])
    return (
        state,
        status,
        f"## {reading.headline}\n{reading.reason}",
        top3,
        probability_figure(reading.probabilities, title=""),
        timeline,
    )


def build_live_tab(classifier: GenreClassifier, room: GenreClassifier | None = None) -> None:
    """The Live tab: ``classifier`` answers for this computer's sound, ``room`` (the room model, if given) for the
    microphone."""
    with gr.Tab("Live"):
        gr.Markdown(
            "Classify music as it plays, updated every second. **This computer's sound**: what this computer "
            "plays (a music tab, a player), straight to the model, no room in between; in Chrome or Edge pick "
            "the tab and tick **Share tab audio** (or share the whole screen with **Share system audio** on "
            "Windows and ChromeOS). **Microphone**: music from the room. Stop pauses; Reset clears the timeline."
        )
        with gr.Row():
            mic_button = gr.Button("Microphone", variant="primary")
            computer_button = gr.Button("This computer's sound", variant="primary")
            reset = gr.Button("Reset")
        gr.HTML('<span class="capture-note"></span>', elem_id="capture-note")  # static/capture.js writes here
        source = gr.Textbox(MICROPHONE, visible=False)
        listener = gr.State(None)
        mic = gr.Audio(sources=["microphone"], streaming=True, label="Listening", elem_id="live-audio")
        live_status = gr.Markdown(IDLE)
        live_headline = gr.Markdown(elem_id="live-headline")
        live_label = gr.Label(num_top_classes=3, label="Now playing", show_heading=False, elem_id="live-label")
        with gr.Row():
            live_bars = gr.Plot(label="Probabilities")
            live_timeline = gr.Plot(label="Genre over time", elem_id="live-timeline")
        with gr.Accordion("Microphone input and loopback (other browsers)", open=False):
            gr.HTML(
                '<label>Microphone input: <select aria-label="Microphone input"></select></label>', elem_id="live-input"
            )  # filled by static/capture.js
            gr.Markdown(LOOPBACK_HOWTO)
        live_outputs = [listener, live_status, live_headline, live_label, live_bars, live_timeline]
        for button, kind, label in (
            (mic_button, "microphone", MICROPHONE),
            (computer_button, "computer", "this computer"),
        ):
            # static/capture.js picks the source and presses record, inside the user's click; the answer starts
            # afresh, so nothing heard from the last source (or by the other model) carries over
            button.click(None, None, source, js=f"() => (window.genreCapture.start('{kind}'), '{label}')")
            button.click(
                lambda: (None, "", None, None, None),
                None,
                live_outputs[:1] + live_outputs[2:],
                api_visibility="private",
            )
        mic.stream(
            lambda state, chunk, src: live_step(room if room and src == MICROPHONE else classifier, state, chunk, src),
            [listener, mic, source],
            live_outputs,
            stream_every=1.0,
            time_limit=3600,
            concurrency_limit=8,
            show_progress="hidden",  # a timer over the big answer every second distracts a class
            api_name="live",
        )
        # every recording, however started (a source button, or the box's own Record after Stop: the microphone),
        # is labelled with what static/capture.js actually captures
        mic.start_recording(None, None, source, js="() => window.genreCapture.label()")
        mic.stop_recording(lambda: PAUSED, None, live_status, api_visibility="private")
        reset.click(lambda: (None, IDLE, "", None, None, None), None, live_outputs, api_visibility="private")
