"""Hostile and extreme inputs end to end: bounded memory for huge files, odd names, every junk type via the CLI."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import SR, noise

# VmHWM, not ru_maxrss: the latter survives exec, so a child would report its parent's peak. Reset once the imports
# (torch among them) are done, so what is measured is the decoding's own peak.
PEAK_RSS = """
import re, sys
from genre_model.audio import load_audio
kb = lambda key: int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))
before = kb("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # VmHWM := VmRSS
wave = load_audio(sys.argv[1])
print(wave.analyzed_s, wave.duration_s, (kb("VmHWM") - before) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak memory is read from Linux /proc")
@pytest.mark.slow
def test_hour_long_file_is_cut_and_memory_stays_bounded(tmp_path):
    path = tmp_path / "hour.wav"
    block = (noise(60.0, sr=44_100) * 32767).astype(np.int16)
    with sf.SoundFile(path, "w", samplerate=44_100, channels=2, subtype="PCM_16") as f:
        for _ in range(60):  # written minute by minute: never in RAM as a whole (635 MB on disk)
            f.write(np.stack([block, block], axis=1))
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    analyzed, duration, peak_mb = map(float, out.stdout.split())
    assert analyzed == 300.0 and abs(duration - 3600.0) < 0.01
    assert peak_mb < 200, f"decoding's peak RSS {peak_mb} MB"  # the file is 635 MB; 5 min of mono float32 is 26 MB
    print(f"hour-long 44.1 kHz stereo file: decoding's peak RSS {peak_mb:.0f} MB")


def test_cli_over_a_junk_matrix(random_model_dir, tmp_path):
    files = {
        "empty.wav": b"",
        "random.mp3": np.random.default_rng(1).bytes(20_000),
        "text.wav": b"just some text\n" * 100,
        "image.flac": b"\x89PNG\r\n\x1a\n" + bytes(5000),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    sf.write(tmp_path / "tiny.wav", noise(0.05), SR)
    sf.write(tmp_path / "silence.wav", np.zeros(SR * 2), SR)
    sf.write(tmp_path / "dc.wav", np.full(SR * 2, 0.5), SR)
    sf.write(tmp_path / "square.wav", np.sign(np.sin(np.arange(SR * 2) * 0.05)), SR)
    sf.write(tmp_path / ("très long nom " * 10 + ".wav"), noise(2.0), SR)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "genre_model", "predict", "--json", "--model", str(random_model_dir), *paths],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    lines = {json.loads(line)["file"].rsplit("/", 1)[-1]: json.loads(line) for line in result.stdout.splitlines()}
    assert len(lines) == len(paths)
    for name in ("empty.wav", "random.mp3", "text.wav", "image.flac", "tiny.wav", "silence.wav"):
        assert "error" in lines[name], name
    for name in ("dc.wav", "square.wav", "très long nom " * 10 + ".wav"):
        assert "genre" in lines[name], name
