"""The Gradio demo: upload, record or pick a clip and see what the genre model hears and decides.

    python app.py [--model PATH_OR_REPO_ID] [--device D] [--share] [--examples DIR]

Also the ``app_file`` of a Hugging Face Space. All the work happens in ``genre_model``; this file only wires
the UI to it. One clip, picked beside the views, feeds Analyze, Explain and Compare (views.py); the Live view
(live_view.py) listens on its own (microphone or this computer's sound, see static/capture.js). Two switches serve a
class: Presenter (text large enough for the back of the room) and Guess first (the answers wait for Reveal).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
from pathlib import Path

import gradio as gr
from gradio import FileData

from app_models import AppModels, ClipProblem, classify_clip, load_clip, load_models
from genre_model.audio import AUDIO_SUFFIXES
from genre_model.loading import ModelNotFoundError
from live_view import HIDE_ANSWER, LIVE_LISTENERS_MAX, build_live_tab
from views import PREDICTED, RUNNER_UP, analyze, analyze_view, compare, compare_view, explain_clip, explain_view, shown

ROOT = Path(__file__).resolve().parent
EXAMPLES_DIR = ROOT / "examples"  # CC BY / BY-SA / public-domain excerpts, credits in examples/CREDITS.md
CSS = (ROOT / "static" / "app.css").read_text()
GUESS_PROMPT = "<b>Guess first:</b> what genre is it? Vote, then press <b>Reveal the answer</b>."
# Guess first on: answers wait for Reveal; the example buttons hide their publisher's genre ("? · title · artist")
GUESS_JS = """(on, hide) => {
  document.body.classList.toggle('guess-first', on);
  hide();
  document.querySelectorAll('#clip-column button').forEach((button) => {
    const texts = document.createTreeWalker(button, NodeFilter.SHOW_TEXT);
    for (let text; (text = texts.nextNode()); ) {
      const label = text.genreLabel ?? text.textContent;
      if (!label.includes(' · ')) continue;
      text.genreLabel = label;
      text.textContent = on ? label.replace(/^[^·]+ · /, '? · ') : label;
    }
  });
}"""
# Reveal: the answers come back; charts drawn while hidden had no width, so they are sized again
REVEAL_JS = """() => {
  document.body.classList.remove('answer-hidden');
  const resize = () => document.querySelectorAll('.js-plotly-plot').forEach((plot) => Plotly.Plots.resize(plot));
  requestAnimationFrame(resize);
}"""
# Presenter: the page's text grows by CSS (static/app.css); charts are laid out again with 18 px text, so their margins
# grow with it, now and whenever a chart is drawn later (a new clip, another view); a new height would turn Plotly's
# autosize off and fix the width a hidden chart has, so autosize stays on
PRESENTER_JS = """(on) => {
  document.body.classList.toggle('presenter', on);
  const fit = () => document.querySelectorAll('.js-plotly-plot').forEach((plot) => {
    const big = document.body.classList.contains('presenter');
    if (!plot._fullLayout || plot._fullLayout.font.size === (big ? 18 : 12)) return;
    plot.dataset.height ??= plot._fullLayout.height;  // taller too, so every genre's label still fits
    Plotly.relayout(plot, {
      'font.size': big ? 18 : 12, height: plot.dataset.height * (big ? 1.5 : 1), autosize: true,
      'xaxis.automargin': true, 'yaxis.automargin': true,
    });
  });
  window.genrePlots ??= new MutationObserver(fit);
  window.genrePlots.observe(document.body, {childList: true, subtree: true});
  fit();
}"""
# on a phone the views sit under the clip picker: bring the answer into view once it is there
SHOW_ANSWER_JS = "(...inputs) => (innerWidth < 700 && document.getElementById('headline')?.scrollIntoView(), inputs)"
CAPTURE_JS = (ROOT / "static" / "capture.js").read_text()


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
    """A button label per example: "the publisher's genre · title · artist" from its folder's CREDITS.md table (file,
    title, artist, genre, ...), so a class sees a wrong answer as one (the genre first: long labels are cut short);
    else the file name."""
    rows = {}
    for file in {Path(f).parent / "CREDITS.md" for f in files}:
        for line in file.read_text().splitlines() if file.is_file() else []:
            cells = [c.strip() for c in line.strip("|").split("|")]
            if len(cells) >= 4 and cells[0].startswith("`"):  # title (no parentheses), genre, artist (no extras)
                title, genre, artist = (re.split(r" \(|, ", c)[0] for c in (cells[1], cells[3], cells[2]))
                rows[file.parent / cells[0].strip("`")] = f"{genre} · {title} · {artist}"
    return [rows.get(Path(f), Path(f).stem.replace("_", " ")) for f in files]


def build_demo(models: AppModels, examples: list[str] | None = None) -> gr.Blocks:
    with gr.Blocks(title="Music genre classifier") as demo:
        with gr.Row(elem_id="top-bar"):
            gr.Markdown("# What genre is this?", elem_id="title")
            presenter = gr.Checkbox(label="Presenter: large text", elem_id="presenter", scale=0, min_width=260)
            guess = gr.Checkbox(label="Guess first", elem_id="guess-first", scale=0, min_width=160)
            reveal = gr.Button("Reveal the answer", elem_id="reveal", variant="primary", scale=0, min_width=200)
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
                        label="Examples: the publisher's genre · title · artist (credits in examples/CREDITS.md)",
                        example_labels=example_labels(examples),
                        examples_per_page=12,
                    )
            with gr.Column(scale=5):
                gr.HTML(GUESS_PROMPT, elem_id="guess-prompt")
                with gr.Tab("Analyze") as analyze_tab:
                    analyze_outputs = analyze_view(models)
                with gr.Tab("Explain") as explain_tab:
                    choices, explain_button, explain_outputs = explain_view(models)
                with gr.Tab("Compare") as compare_tab:
                    compare_outputs = compare_view()
                live_tab = build_live_tab(models.main, models.router.room if models.router else None)

        analyze_shown = shown(lambda *args: analyze(models, *args), len(analyze_outputs))
        explain_shown = shown(lambda *args: explain_clip(models, *args), len(explain_outputs))
        compare_shown = shown(lambda audio: compare(models, audio), len(compare_outputs))
        stale = explain_outputs + compare_outputs  # cleared whenever the clip changes, then redone if open

        # the box's own Record is the microphone: its clip goes to the room model (Analyze and Explain); "recording"
        # from the press of Record, then the recorded clip's path, so the next upload or example is a file again
        recorded = gr.State("")
        clip.start_recording(lambda: "recording", None, recorded, api_visibility="private")

        def source_of(audio, recording: str) -> str:
            return "microphone" if audio and recording in ("recording", audio) else "auto"

        def explain_clip_view(audio, genre: str = PREDICTED, versus: str = RUNNER_UP, recording: str = ""):
            if not audio:
                return "", *[None] * len(explain_outputs)
            return explain_shown(audio, genre, versus, source_of(audio, recording))

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
        explain_inputs = [clip, *choices, recorded]
        explain_tab.select(explain_clip_view, explain_inputs, [message, *explain_outputs], api_visibility="private")
        compare_tab.select(compare_clip_view, clip, [message, *compare_outputs], api_name="compare")
        explain_button.click(explain_clip_view, explain_inputs, [message, *explain_outputs], api_name="explain")

        def on_clip(audio, recording: str):  # a new clip (or none: cleared) is analyzed at once, the rest cleared
            if audio is None:  # cleared, by the user or after a refused clip: whatever the message says stays
                return gr.skip(), gr.skip(), gr.skip(), *[None] * (len(analyze_outputs) + len(stale))
            source = source_of(audio, recording)
            message_text, *shown_outputs = analyze_shown(audio, source)
            refused = None if message_text else gr.skip()  # a refused clip leaves no player behind, only the message
            recording = audio if source == "microphone" else ""
            return message_text, refused, recording, *shown_outputs, *[None] * len(stale)

        def redo_open_view(view: str, audio, genre: str, versus: str, recording: str):
            if view == "Explain":
                return *explain_clip_view(audio, genre, versus, recording)[1:], *[gr.skip()] * len(compare_outputs)
            if view == "Compare":
                return *[gr.skip()] * len(explain_outputs), *compare_clip_view(audio)[1:]
            return [gr.skip()] * len(stale)

        # the page's classes: presenter (large text), guess-first and answer-hidden (every answer waits for Reveal;
        # a new clip or a new Live start hides it again), see static/app.css
        presenter.change(None, presenter, None, js=PRESENTER_JS)
        guess.change(None, guess, None, js=f"(on) => ({GUESS_JS})(on, () => {HIDE_ANSWER})")
        reveal.click(None, None, None, js=REVEAL_JS)
        hide_then = f"(audio, recording) => ({HIDE_ANSWER}, [audio, recording])"
        clip_outputs = [message, clip, recorded, *analyze_outputs, *stale]
        clip.change(on_clip, [clip, recorded], clip_outputs, js=hide_then, api_visibility="private").then(
            redo_open_view, [opened, clip, *choices, recorded], stale, js=SHOW_ANSWER_JS, api_visibility="private"
        )

        def classify(audio: FileData, source: str = "auto") -> dict:
            """Classify an audio file: genre, all ten genre probabilities (plain JSON), the verdict (headline, reason,
            answer: clear, probable, pair or unknown, and sure: whether it names one genre), and
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
