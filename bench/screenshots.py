"""``python -m bench.screenshots [--out docs/screenshots]``: the app's views as a class sees them, in Debian's
Chromium, after picking an example: Analyze, Explain, Compare and Live (listening, then paused) at 1280x720 (a
projector) and 1366x900 (a laptop), and Live on a 390x844 phone. Live hears an example played as the microphone.
Prints JSON: each screenshot's file and where its answer sits (top and bottom in pixels, and the viewport height)."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import soundfile as sf

from genre_model.audio import load_audio

from .serve import ROOT, running_app

CHROMIUM = "/usr/bin/chromium"
EXAMPLE = ROOT / "examples" / "Disco_con_Tutti-Kevin_MacLeod.ogg"
EXAMPLE_BUTTON = "Disco con Tutti"
SIZES = [(1280, 720), (1366, 900)]
PHONE = (390, 844)
ANSWERS = {  # the element holding each view's answer
    "analyze": "#headline",
    "explain": "#explain-summary",
    "compare": "#compare-outputs",
    "live": "#live-headline",
}


def launch(pw, microphone: Path):
    """Headless Chromium whose microphone (and shared tab) plays ``microphone``."""
    return pw.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            *("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"),
            *("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"),
            f"--use-file-for-fake-audio-capture={microphone}",
        ],
    )


def answer_box(page, view: str) -> dict:
    """Where ``view``'s answer is on the page, in CSS pixels from the top of the viewport."""
    box = page.locator(ANSWERS[view]).first.bounding_box()
    height = page.viewport_size["height"]
    return {"top": round(box["y"]), "bottom": round(box["y"] + box["height"]), "viewport": height}


def shoot(page, out: Path, name: str, view: str) -> dict:
    path = out / f"{name}.png"
    page.screenshot(path=str(path))
    return {"file": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path), **answer_box(page, view)}


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def live(page, out: Path, size: str) -> list[dict]:
    open_tab(page, "Live")
    page.get_by_role("button", name="Microphone", exact=True).click()
    page.wait_for_selector("#live-panel .live-strip i:nth-child(3)", state="attached", timeout=60_000)
    shots = [shoot(page, out, f"live-{size}", "live")]
    page.locator("#live-stop").click()
    page.wait_for_selector("#live-panel.paused", timeout=30_000)
    return shots + [shoot(page, out, f"live-paused-{size}", "live")]


def new_page(browser, url: str, width: int, height: int):
    page = browser.new_context(permissions=["microphone"], viewport={"width": width, "height": height}).new_page()
    page.goto(url)
    return page


def views(browser, url: str, out: Path, width: int, height: int) -> list[dict]:
    size = f"{width}x{height}"
    page = new_page(browser, url, width, height)
    page.get_by_text(EXAMPLE_BUTTON).first.click()
    page.wait_for_function("() => document.querySelector('#headline')?.innerText.includes('analyzed')", timeout=60_000)
    page.wait_for_selector(".js-plotly-plot .heatmaplayer, .js-plotly-plot image", timeout=30_000)
    shots = [shoot(page, out, f"analyze-{size}", "analyze")]
    open_tab(page, "Explain")
    page.wait_for_selector("text=Muted one at a time", timeout=60_000)
    shots.append(shoot(page, out, f"explain-{size}", "explain"))
    open_tab(page, "Compare")
    page.wait_for_selector("#compare-outputs .compare-card h3", timeout=60_000)
    shots.append(shoot(page, out, f"compare-{size}", "compare"))
    return shots + live(page, out, size)


def main(argv: list[str] | None = None) -> int:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(prog="python -m bench.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_app() as app, sync_playwright() as pw:
        microphone = Path(tmp) / "microphone.wav"
        wave = load_audio(EXAMPLE, 48_000)
        sf.write(microphone, wave.samples, wave.sample_rate, subtype="PCM_16")
        browser = launch(pw, microphone)
        shots = [shot for width, height in SIZES for shot in views(browser, app.url, args.out, width, height)]
        shots += live(new_page(browser, app.url, *PHONE), args.out, "x".join(map(str, PHONE)))
        browser.close()
    print(json.dumps(shots, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
