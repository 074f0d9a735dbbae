"""The app's Live view: classify, every second, what this computer plays or what the microphone hears (the browser
side is static/capture.js). Wired into the page by app.py."""

from __future__ import annotations

from html import escape

import gradio as gr
import numpy as np

from genre_model.audio import AudioError
from genre_model.inference import GenreClassifier, Segment
from genre_model.live import Batcher, LiveListener, LiveReading
from genre_model.plots import genre_color

LIVE_BUFFER_S = 6.0  # the live buffer: audio each live prediction reads
LIVE_CONTEXT_S = 12.0  # the answer shown averages the predictions of this long
LIVE_UPDATE_S = 0.9  # new audio between two live predictions
LIVE_LISTENERS_MAX = 200  # listeners served at once; one more waits in the queue until another stops
MICROPHONE = "the microphone"  # a source label (static/capture.js writes the same); the room model answers it
IDLE = "Press <b>Microphone</b> or <b>This computer's sound</b> to start."
PAUSED = "<b>Paused.</b> Press a button above to listen again."  # shown while #live-panel has the class paused
PAUSE_JS = "document.getElementById('live-panel').classList"  # paused: the last answer greyed out (static/app.css)
HIDE_ANSWER = "document.body.classList.add('answer-hidden')"  # with Guess first on, answers wait for Reveal
LOOPBACK_HOWTO = """Route the computer's output to an input, choose it in the recording box's input list and press
**Microphone**. Windows: Sound settings → Recording → enable **Stereo Mix**. macOS: install **BlackHole** and send the
output to it. Linux: choose **Monitor of …** (PulseAudio/PipeWire)."""


def level_meter(level_db: float) -> str:
    """A bar from -60 to 0 dBFS, drawn by the page (text glyphs for a meter are missing from some fonts)."""
    fill = float(np.clip((level_db + 60) / 60, 0, 1))
    return f'<span class="live-level" title="{level_db:.0f} dBFS"><b style="width:{100 * fill:.0f}%"></b></span>'


def bars_html(probabilities: dict[str, float]) -> str:
    """Every genre's probability as a bar, in the model's order (the rows stay put from one second to the next):
    a few hundred bytes the page draws, instead of a chart built on the server every second for every listener."""
    rows = "".join(
        f'<div class="live-bar"><span>{escape(genre)}</span>'
        f'<b style="width:{100 * p:.1f}%;background:{genre_color(genre)}"></b><span>{p:.0%}</span></div>'
        for genre, p in probabilities.items()
    )
    top = max(probabilities, key=probabilities.get)
    return f'<div class="live-bars" data-top="{escape(top)}">{rows}</div>'


def timeline_html(history: list[Segment], seconds: float = 60.0) -> str:
    """The last ``seconds`` of readings on a time axis ending now: a cell per reading, as wide as the time since the
    one before, in the colour of its top genre (hover: the time and the genre's probability), with a legend."""
    now = history[-1].end_s
    shown = [s for s in history if s.end_s > now - seconds]
    ends = [max(now - seconds, shown[0].end_s - 1.0)] + [s.end_s for s in shown]
    cells = "".join(
        f'<i style="width:{100 * (end - before) / seconds:.2f}%;background:{genre_color(s.genre)};'
        f'opacity:{0.35 + 0.65 * s.probabilities[s.genre]:.2f}" '
        f'title="{s.end_s:.0f} s: {escape(s.genre)} {s.probabilities[s.genre]:.0%}"></i>'
        for s, before, end in zip(shown, ends, ends[1:])
    )
    genres = dict.fromkeys(s.genre for s in shown)
    legend = " ".join(f'<span style="color:{genre_color(g)}">■</span> {escape(g)}' for g in genres)
    axis = f"<span>{seconds:.0f} s ago</span><span>{legend}</span><span>now</span>"
    return f'<div class="live-strip">{cells}</div><div class="live-legend">{axis}</div>'


def panel_html(
    status: str,
    headline: str = "",
    reason: str = "",
    reading: LiveReading | None = None,
    history: list[Segment] | None = None,
) -> str:
    """The whole Live answer as one piece of HTML: one output per step for Gradio to send, not six."""
    parts = [f'<div class="live-paused">{PAUSED}</div><div class="live-status">{status}</div>']
    if headline:
        parts.append(f'<div id="live-headline"><h2>{escape(headline)}</h2><p>{escape(reason)}</p></div>')
    if reading:
        parts.append(bars_html(reading.probabilities))
    if history:
        parts.append(timeline_html(history))
    return "".join(parts)


def live_step(
    classifier: GenreClassifier,
    state: tuple[str, LiveListener] | None,
    chunk,
    source: str = MICROPHONE,
    batcher: Batcher | None = None,
):
    """Live view: add a chunk to the live buffer; about once a second, show the steady reading of the last
    `LIVE_CONTEXT_S` seconds. ``state``: the source and its listener; another source starts afresh, so nothing heard
    from the last one (or by the other model) carries over. ``batcher``: classify with every other listener's
    windows in one forward pass. Outputs: state, the panel's HTML (or a skip: nothing new to show)."""
    if chunk is None:
        return state, gr.skip()
    fresh = state is None or state[0] != source
    listener = LiveListener.for_classifier(classifier, buffer_s=LIVE_BUFFER_S, context_s=LIVE_CONTEXT_S)
    listener = listener if fresh else state[1]
    state = (source, listener)
    rate, samples = chunk
    listener.push(rate, samples)
    needed = classifier.model.config.window_s
    if listener.heard_s < needed:  # no answer from a fraction of what the model needs; a fresh start clears the last
        return state, panel_html(f"Listening to {source}: {listener.heard_s:.0f} of {needed:.0f} s…")
    # Browsers may send chunks far smaller than stream_every (Gradio 6 sends 0.1 s ones from a mic inside a
    # tab): keep every chunk, but classify at most once per LIVE_UPDATE_S of new audio (times the pace).
    pace = batcher.pace if batcher else 1
    if not listener.due(LIVE_UPDATE_S * pace):
        return state, gr.skip()
    try:
        reading = listener.read(classifier, batcher)
    except AudioError:  # silence: say so, keep listening
        return state, panel_html(f"Listening to {source}: nothing to hear yet (silence).")
    heard = round(listener.heard_s)
    status = (
        f"Listening to <b>{source}</b> with {escape(classifier.name)}, heard "
        f"{heard // 60}:{heard % 60:02d} · level {level_meter(reading.level_db)} · the answer covers the last "
        f"{min(round(reading.context_s), heard)} s"
    )
    if pace > 1:  # past the server's capacity every listener reads less often, and is told so
        status += f" · <b>the server is busy: a new answer every {pace} s</b>"
    return state, panel_html(status, reading.headline, reading.reason, reading, listener.history)


def build_live_tab(classifier: GenreClassifier, room: GenreClassifier | None = None) -> gr.Tab:
    """The Live tab: ``classifier`` answers for this computer's sound, ``room`` (the room model, if given) for the
    microphone."""
    with gr.Tab("Live") as tab:
        with gr.Row(elem_id="live-buttons"):  # one row on a phone too: the answer stays in view
            mic_button = gr.Button("Microphone", variant="primary", min_width=0)
            computer_button = gr.Button(
                "This computer's sound", variant="primary", min_width=0, elem_id="live-computer"
            )
            stop = gr.Button("Stop", min_width=0, elem_id="live-stop")
            reset = gr.Button("Reset", min_width=0)
        gr.HTML('<span class="capture-note"></span>', elem_id="capture-note")  # static/capture.js writes here
        source = gr.Textbox(MICROPHONE, visible=False)
        listener = gr.State(None)
        mic = gr.Audio(sources=["microphone"], streaming=True, label="Listening", elem_id="live-audio")
        panel = gr.HTML(panel_html(IDLE), elem_id="live-panel")
        gr.Markdown(
            "Classify music as it plays, updated every second. **This computer's sound**: what this computer "
            "plays (a music tab, a player), straight to the model, no room in between; in Chrome or Edge pick "
            "the tab and tick **Share tab audio** (or share the whole screen with **Share system audio** on "
            "Windows and ChromeOS). **Microphone**: music from the room. **Stop** pauses; **Reset** clears the "
            "timeline."
        )
        with gr.Accordion('No "This computer\'s sound" in this browser? A loopback input', open=False):
            gr.Markdown(LOOPBACK_HOWTO)
        live_outputs = [listener, panel]
        for button, kind, label in (
            (mic_button, "microphone", MICROPHONE),
            (computer_button, "computer", "this computer"),
        ):
            # static/capture.js picks the source and presses record, inside the user's click; the answer starts
            # afresh, so nothing heard from the last source (or by the other model) carries over
            button.click(None, None, source, js=f"() => (window.genreCapture.start('{kind}'), '{label}')")
            button.click(lambda: None, None, listener, api_visibility="private")

        # one forward pass per moment for every listener of a model, whatever the number of listeners
        computer = (classifier, Batcher(classifier))
        microphone = (room, Batcher(room)) if room else computer

        def step(state, chunk, src: str):
            model, batcher = microphone if src == MICROPHONE else computer
            return live_step(model, state, chunk, src, batcher)

        mic.stream(
            step,
            [listener, mic, source],
            live_outputs,
            stream_every=1.0,
            time_limit=3600,
            concurrency_limit=LIVE_LISTENERS_MAX,  # a listener holds its slot while it listens: a class must fit
            show_progress="hidden",  # a timer over the big answer every second distracts a class
            api_name="live",
        )
        # every recording, however started (a source button, or the box's own Record after Stop: the microphone),
        # is labelled with what static/capture.js actually captures
        start = f"() => ({PAUSE_JS}.remove('paused'), {HIDE_ANSWER}, window.genreCapture.label())"
        mic.start_recording(None, None, source, js=start)
        mic.stop_recording(None, None, None, js=f"() => {PAUSE_JS}.add('paused')")
        stop.click(None, None, None, js="() => document.querySelector('#live-audio button.stop-button')?.click()")
        reset.click(lambda: (None, panel_html(IDLE)), None, live_outputs, api_visibility="private")
    return tab
