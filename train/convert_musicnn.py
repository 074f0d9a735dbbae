"""``python -m train.convert_musicnn --out weights/musicnn-msd [--record-reference FILE]``

One-off conversion of the ``MSD_musicnn`` TensorFlow checkpoint shipped inside the ``musicnn`` wheel (0.1.0, ISC
licence, Music Technology Group, UPF) to safetensors for `genre_model.musicnn.MusicnnBackbone`.

Needs TensorFlow, which nothing else in the project uses: install it in a separate venv, e.g.
``pip install tensorflow-cpu tf_keras librosa && pip install --no-deps musicnn==0.1.0`` (the wheel's own pins are
from 2019), then run this command from that venv with the project on ``PYTHONPATH``.
``--record-reference`` also runs the wheel's own TF graph (float32 log, see below) on generated audio and saves
its outputs as the numeric fixture the tests compare our port with.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from importlib import metadata
from pathlib import Path

import numpy as np

CHECKPOINT = "MSD_musicnn"
N_FRAMES, SR, HOP, N_FFT, N_MELS = 187, 16_000, 256, 512, 96

# our parameter name -> (TF variable name, how to reshape the TF array)
_BN = {"weight": "gamma", "bias": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"}
_BN_LAYERS = ["input_bn"] + [f"frontend.{i}.bn" for i in range(5)] + [f"midend.{i}.bn" for i in range(3)]
_BN_LAYERS += ["pool_bn", "dense_bn"]
_CONV2D = [f"frontend.{i}.conv" for i in range(5)]
_CONV1D = [f"midend.{i}.conv" for i in range(3)]


def tf_name_map() -> dict[str, tuple[str, str]]:
    """Our state-dict key -> (TF variable, transform): TF names follow layer creation order."""
    names: dict[str, tuple[str, str]] = {}
    for i, layer in enumerate(_BN_LAYERS):
        tf_layer = "batch_normalization" + (f"_{i}" if i else "")
        names.update({f"{layer}.{ours}": (f"{tf_layer}/{theirs}", "copy") for ours, theirs in _BN.items()})
    for i, layer in enumerate(_CONV2D + _CONV1D):
        tf_layer = "conv2d" + (f"_{i}" if i else "")
        names[f"{layer}.weight"] = (f"{tf_layer}/kernel", "conv2d" if layer in _CONV2D else "conv1d")
        names[f"{layer}.bias"] = (f"{tf_layer}/bias", "copy")
    for layer, tf_layer in (("dense", "dense"), ("tags", "dense_1")):
        names[f"{layer}.weight"] = (f"{tf_layer}/kernel", "linear")
        names[f"{layer}.bias"] = (f"{tf_layer}/bias", "copy")
    return names


def to_state_dict(tf_vars: dict[str, np.ndarray]) -> dict:
    """TF checkpoint arrays -> a state dict for `MusicnnBackbone` (NHWC kernels to PyTorch layouts)."""
    import torch

    transforms = {
        "copy": lambda a: a,
        "conv2d": lambda a: a.transpose(3, 2, 0, 1),  # (kh, kw, in, out) -> (out, in, kh, kw)
        "conv1d": lambda a: a[:, :, 0, :].transpose(2, 1, 0),  # (7, C, 1, out) -> (out, C, 7)
        "linear": lambda a: a.T,  # (in, out) -> (out, in)
    }
    return {
        ours: torch.from_numpy(np.ascontiguousarray(transforms[how](tf_vars[theirs]), dtype=np.float32))
        for ours, (theirs, how) in tf_name_map().items()
    }


def wheel_dir() -> Path:
    import musicnn

    return Path(musicnn.__file__).parent


def read_checkpoint(prefix: str) -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.compat.v1.train.NewCheckpointReader(prefix)  # the prefix itself: `checkpoint` points elsewhere
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def reference_inputs() -> dict[str, np.ndarray]:
    """The generated audio the fixture is recorded on (the tests rebuild it the same way)."""
    from genre_model.synth import four_on_the_floor, power_chords, waltz

    clips = {"waltz": waltz(6.0, seed=1), "beat": four_on_the_floor(6.0, seed=2), "chords": power_chords(6.0, seed=3)}
    import soxr

    return {k: soxr.resample(v, 22_050, SR).astype(np.float32) for k, v in clips.items()}


def record_reference(out: Path) -> None:
    """Run the wheel's TF graph (``models.define_model``) on the reference inputs; float32 log-compression."""
    import librosa
    import tensorflow as tf
    from musicnn import models

    tf.compat.v1.disable_eager_execution()
    tf.compat.v1.reset_default_graph()
    with tf.name_scope("model"):
        x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS])
        is_training = tf.compat.v1.placeholder(tf.bool)
        logits, *_, penultimate = models.define_model(x, is_training, CHECKPOINT, 50)
    session = tf.compat.v1.Session()
    tf.compat.v1.train.Saver().restore(session, str(wheel_dir() / CHECKPOINT) + "/")
    arrays = {}
    for name, audio in reference_inputs().items():
        mel = librosa.feature.melspectrogram(y=audio, sr=SR, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T
        logmel = np.log10(10_000 * mel.astype(np.float32) + 1)  # the wheel does this in float16: overflows
        patches = np.stack([logmel[i : i + N_FRAMES] for i in range(0, len(logmel) - N_FRAMES + 1, N_FRAMES)])
        tags, feats = session.run([logits, penultimate], {x: patches, is_training: False})
        arrays.update({f"{name}/logmel": patches, f"{name}/logits": tags, f"{name}/penultimate": feats})
    np.savez_compressed(out, **arrays)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = argparse.ArgumentParser(prog="python -m train.convert_musicnn", description=__doc__.split("\n\n")[1])
    parser.add_argument("--out", default="weights/musicnn-msd")
    parser.add_argument("--record-reference", metavar="FILE", help="also record TF outputs into this .npz")
    args = parser.parse_args(argv)

    from safetensors.torch import save_file

    from genre_model.musicnn import MSD_TAGS, MusicnnBackbone

    state = to_state_dict(read_checkpoint(str(wheel_dir() / CHECKPOINT) + "/"))
    MusicnnBackbone().load_pretrained(state)  # every tensor accounted for, shapes right
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(state, out / "model.safetensors", metadata={"source": f"musicnn 0.1.0 wheel, {CHECKPOINT}"})
    config = {
        "arch": "musicnn-msd",
        "sample_rate": SR,
        "n_fft": N_FFT,
        "hop_length": HOP,
        "n_mels": N_MELS,
        "patch_frames": N_FRAMES,
        "tags": MSD_TAGS,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    licence = Path(str(metadata.distribution("musicnn").locate_file("musicnn-0.1.0.dist-info/LICENSE.md")))
    shutil.copy(licence, out / "LICENSE-musicnn.md")
    (out / "NOTICE.md").write_text(
        "These weights are the `MSD_musicnn` model of the `musicnn` package (version 0.1.0) by Jordi Pons and\n"
        "Xavier Serra, Music Technology Group, Universitat Pompeu Fabra, released under the ISC licence\n"
        "(LICENSE-musicnn.md), converted from TensorFlow to safetensors by `python -m train.convert_musicnn`.\n"
        "Paper: J. Pons and X. Serra, musicnn: pre-trained convolutional neural networks for music audio tagging,\n"
        "ISMIR 2019 late-breaking/demo. Code: https://github.com/jordipons/musicnn\n"
    )
    if args.record_reference:
        record_reference(Path(args.record_reference))
    print(f"wrote {out}: model.safetensors ({sum(v.numel() for v in state.values()):,} values), config.json, NOTICE")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
