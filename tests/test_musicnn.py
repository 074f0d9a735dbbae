"""The PyTorch musicnn port against outputs recorded once from the wheel's own TensorFlow graph."""

from pathlib import Path

import numpy as np
import pytest
import torch

from genre_model.features import LogCompressedMel
from genre_model.inference import GenreClassifier
from genre_model.int8 import CALIBRATION
from genre_model.models import MUSICNN_DIR
from genre_model.musicnn import MSD_TAGS, MusicnnBackbone, _Branch
from genre_model.registry import build_model
from tests.conftest import switched_int8
from train.convert_musicnn import reference_inputs, tf_name_map, to_state_dict

REFERENCE = Path(__file__).parent / "data" / "musicnn_reference.npz"
BACKBONE = MUSICNN_DIR / "model.safetensors"


def test_network_matches_tensorflow_reference(backbone):
    ref = np.load(REFERENCE)
    for name in ("waltz", "beat", "chords"):
        logmel = torch.from_numpy(ref[f"{name}/logmel"]).transpose(1, 2)  # (patches, 96, 187)
        with torch.no_grad():
            logits, penultimate = backbone(logmel)
        np.testing.assert_allclose(logits.numpy(), ref[f"{name}/logits"], atol=1e-4, rtol=0)
        np.testing.assert_allclose(penultimate.numpy(), ref[f"{name}/penultimate"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("kernel,pad", [((7, 38), (3, 3)), ((32, 1), (15, 16))])
def test_branch_shortcut_equals_the_plain_formula_and_its_gradient(kernel, pad):
    torch.manual_seed(0)
    branch = _Branch(12, kernel, pad)
    with torch.no_grad():  # frozen batch norm with scales of both signs, as in the real weights
        branch.bn.weight.copy_(torch.randn(12))
        branch.bn.bias.copy_(torch.randn(12))
        branch.bn.running_mean.copy_(torch.randn(12))
        branch.bn.running_var.copy_(torch.rand(12) + 0.5)
    branch.eval()
    x = torch.randn(2, 1, 40, 96, requires_grad=True)
    plain = branch.bn(torch.relu(branch.conv(torch.nn.functional.pad(x, (0, 0, *pad))))).amax(dim=3)
    fast = branch(x)
    assert fast.shape == (2, 12, 40)
    torch.testing.assert_close(fast, plain, atol=1e-5, rtol=0)
    weights = torch.randn_like(plain)
    (g_plain,) = torch.autograd.grad((plain * weights).sum(), x)
    (g_fast,) = torch.autograd.grad((fast * weights).sum(), x)
    torch.testing.assert_close(g_fast, g_plain, atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(branch(x), plain, atol=1e-5, rtol=0)


def test_front_end_matches_the_reference_log_mel():
    ref = np.load(REFERENCE)
    front = LogCompressedMel(16_000, 512, 256, 96)
    for name, audio in reference_inputs().items():
        patches = ref[f"{name}/logmel"]  # (patches, 187, 96) from librosa, float32 log
        ours = front(torch.from_numpy(audio)[None])[0, :, : patches.shape[0] * 187].numpy()
        np.testing.assert_allclose(ours.T.reshape(patches.shape), patches, atol=1e-3, rtol=0)


def test_conversion_maps_every_tensor_with_the_right_layout():
    rng = np.random.default_rng(0)
    shapes = {"conv2d/kernel": (7, 38, 1, 204), "conv2d_5/kernel": (7, 561, 1, 64), "dense/kernel": (1506, 200)}
    target = MusicnnBackbone().state_dict()
    fake = {}
    tf_shape = {  # our shape -> the TF checkpoint's
        "copy": lambda s: s,
        "conv2d": lambda s: (s[2], s[3], s[1], s[0]),
        "conv1d": lambda s: (s[2], s[1], 1, s[0]),
        "linear": lambda s: s[::-1],
    }
    for ours, (theirs, how) in tf_name_map().items():
        shape = tf_shape[how](tuple(target[ours].shape))
        assert theirs not in shapes or shapes[theirs] == shape
        fake[theirs] = rng.standard_normal(shape).astype(np.float32)
    state = to_state_dict(fake)
    MusicnnBackbone().load_pretrained(state)
    calibrated = {k for k in target if "num_batches_tracked" in k or k.rsplit(".", 1)[-1] in CALIBRATION}
    assert set(state) == set(target) - calibrated
    assert state["frontend.0.conv.weight"][5, 0, 3, 20] == fake["conv2d/kernel"][3, 20, 0, 5]
    assert state["midend.0.conv.weight"][7, 100, 2] == fake["conv2d_5/kernel"][2, 100, 0, 7]
    assert state["dense.weight"][3, 900] == fake["dense/kernel"][900, 3]


def test_genre_model_tags_and_head_training_step(backbone):
    model = build_model("musicnn-genre")
    model.backbone.load_state_dict(backbone.state_dict())
    x = 0.1 * torch.randn(4, model.config.window_samples)
    with torch.no_grad():
        genre_logits, tag_logits = model.eval().classify_and_tag(model.to_logmel(x))
        torch.testing.assert_close(tag_logits, backbone(model.to_logmel(x))[0])  # the pretrained tagger's own
    assert genre_logits.shape == (4, 10) and tag_logits.shape == (4, 50)
    assert model.tag_names == MSD_TAGS and len(MSD_TAGS) == 50 and "jazz" in MSD_TAGS
    head_before = model.head[1].weight.detach().clone()
    optimizer = torch.optim.Adam(model.head.parameters(), lr=1e-2)
    loss = torch.nn.functional.cross_entropy(model.train()(x), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    optimizer.step()
    assert not torch.equal(head_before, model.head[1].weight)
    assert model.backbone.frontend[0].conv.weight.grad is not None  # trainable end to end when unfrozen


def test_prediction_carries_the_pretrained_tags(backbone):
    model = build_model("musicnn-genre")
    model.backbone.load_state_dict(backbone.state_dict())
    classifier = GenreClassifier(model, "musicnn-test", torch.device("cpu"))
    rng = np.random.default_rng(0)
    audio = (16_000, (0.1 * rng.standard_normal(7 * 16_000)).astype(np.float32))
    p = classifier.predict(audio)
    assert list(p.tags) == MSD_TAGS and all(0.0 <= v <= 1.0 for v in p.tags.values())
    windows = torch.from_numpy(classifier.all_windows(classifier.load(audio).samples))
    with torch.no_grad():
        expected = torch.sigmoid(backbone(model.to_logmel(windows))[0]).mean(dim=0)
    np.testing.assert_allclose(list(p.tags.values()), expected.numpy(), atol=1e-5)


def relevance(grad: torch.Tensor, logmel: torch.Tensor) -> np.ndarray:
    return (grad * (logmel - logmel.amin())).clamp_min(0).flatten().numpy()


def test_sparse_front_end_gradient_equals_autograd(calibrated):
    from genre_model.base import GenreNet, weighted_logits

    model, logmels = calibrated
    with switched_int8(model, False):  # the float network, whose gradient autograd gives exactly
        for logmel in logmels:
            probs_ref, gradient_ref = GenreNet.probabilities_with_gradient(model, logmel)
            target = torch.nn.functional.one_hot(probs_ref.mean(0).argmax(), 10).float() - 0.1  # vs the mean logit
            expected = gradient_ref(target)
            front, saved = model.backbone.front_end_for_gradient(logmel)
            front.requires_grad_(True)
            probs = torch.softmax(model.head(model.backbone.from_front_end(front)[1]), dim=-1)
            torch.testing.assert_close(probs.detach(), probs_ref)
            (g_front,) = torch.autograd.grad(weighted_logits(probs.log(), target), front)
            exact = model.backbone.input_gradient(g_front, saved, keep=1.0)
            assert exact.shape == logmel.shape
            torch.testing.assert_close(exact, expected, atol=1e-6 * expected.abs().max().item(), rtol=1e-4)
            sparse = model.backbone.input_gradient(g_front, saved)  # the default: 99% of the gradient mass
            assert np.corrcoef(relevance(sparse, logmel), relevance(expected, logmel))[0, 1] > 0.99
