"""musicnn in PyTorch: the music-tagging CNN of Pons & Serra, "musicnn: pre-trained convolutional neural
networks for music audio tagging" (ISMIR 2019 LBD), with the Million-Song-Dataset weights of the ``musicnn``
wheel (ISC licence, Music Technology Group, Universitat Pompeu Fabra) converted by ``train.convert_musicnn``.

Written from the architecture of the wheel's TensorFlow code; the tests check it against outputs recorded
from that code. Layer order and names follow the checkpoint so conversion is a straight mapping.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from . import int8
from .base import require_fit

# The checkpoint's 50 tags, in its output order.
MSD_TAGS = """rock, pop, alternative, indie, electronic, female vocalists, dance, 00s, alternative rock, jazz,
beautiful, metal, chillout, male vocalists, classic rock, soul, indie rock, Mellow, electronica, 80s, folk, 90s, chill,
instrumental, punk, oldies, blues, hard rock, ambient, acoustic, experimental, female vocalist, guitar, Hip-Hop,
70s, party, country, easy listening, sexy, catchy, funk, electro, heavy metal, Progressive rock, 60s, rnb, indie
pop, sad, House, happy""".replace("\n", " ").split(", ")
TF_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default


def _bn_scale(bn: nn.BatchNorm2d) -> torch.Tensor:
    """The per-channel factor of a frozen batch norm: weight / sqrt(running variance + eps)."""
    return bn.weight / torch.sqrt(bn.running_var + bn.eps)


def _bn2d(c: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(c, eps=TF_BN_EPS)


class _Branch(nn.Module):
    """conv (ReLU) -> batch norm -> max over all frequencies: (B, 1, T, F) -> (B, C, T)."""

    def __init__(self, filters: int, kernel: tuple[int, int], time_pad: tuple[int, int]):
        super().__init__()
        self.time_pad = time_pad
        self.conv = nn.Conv2d(1, filters, kernel)
        self.bn = _bn2d(filters)
        # int8 inference: range of the (sign-folded) peaks over frequency, calibrated on music (0, 0: not yet)
        self.register_buffer("peak_range", torch.zeros(2))

    def _conv(self, x: torch.Tensor, sign: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
        """(B, 1, T, F) -> the conv output and its frequency axis: (B, C, T', F') and 3, or for filters along time
        only (B, F, C, T') and 1. With ``sign``, each channel's weights and bias are multiplied by it."""
        weight, bias = self.conv.weight, self.conv.bias
        if sign is not None:
            weight, bias = weight * sign[:, None, None, None], bias * sign
        if weight.shape[3] > 1:
            return F.conv2d(x, weight, bias), 3
        # the same 1-D filter on every band: run as conv1d with the bands in the batch, faster forward and much
        # faster backward (explanations) than a 2-D (k, 1) kernel
        b, _, t, f = x.shape
        y = F.conv1d(x[:, 0].transpose(1, 2).reshape(b * f, 1, t), weight[..., 0], bias)  # (B * F, C, T')
        return y.view(b, f, *y.shape[1:]), 1

    def sign(self) -> torch.Tensor:
        return torch.where(_bn_scale(self.bn) < 0, -1.0, 1.0)

    def run(
        self,
        x: torch.Tensor,
        packed: int8.PackedConv | None = None,
        input_range: torch.Tensor | None = None,
        where: bool = False,
    ):
        """Eval mode: (B, 1, T, F) -> the output (B, C, T), the peaks over frequency of the signed conv (B, C, T)
        and, with ``where``, the band each peak is at (B, C, T), else None. With ``packed`` (and the calibrated
        ``input_range``) the conv runs in int8 (`genre_model.int8`), else in float.

        Same result as the training formula, faster: ReLU is monotone and the frozen batch norm is a
        per-channel affine map, so the max over frequency can be taken first, on the conv output (min where the BN
        scale is negative: the sign is folded into the conv), and ReLU + BN then run on (B, C, T), not (B, C, T, F).
        """
        sign, x = self.sign(), F.pad(x, (0, 0, *self.time_pad))
        at = None
        if packed is not None:
            peak, at = int8.peaks(packed(x, input_range), where)
        else:
            y, freq = self._conv(x, sign)
            y = y if freq == 3 else y.permute(0, 2, 3, 1)  # (B, C, T', F')
            if where or torch.is_grad_enabled():  # max() keeps only the argmax for the backward pass, not y
                peak, at = y.max(dim=3)
            else:
                peak = y.amax(dim=3)
        return self.bn(F.relu(peak * sign[:, None]).unsqueeze(3)).squeeze(3), peak, at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T, F) -> (B, C, T), in float."""
        if not self.bn.training:
            return self.run(x)[0]
        y, freq = self._conv(F.pad(x, (0, 0, *self.time_pad)))
        return self.bn(F.relu(y.movedim(freq, 3))).amax(dim=3)

    def unit_gradients(self, g_out: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
        """(B, C, T) d/d(output) -> d/d(unsigned conv output at each unit's peak): the gradient each (filter,
        frame) unit passes, through its weights, to the input patch where it peaked (the folded sign cancels)."""
        return g_out * _bn_scale(self.bn)[:, None] * (peak * self.sign()[:, None] > 0)


class _MidendConv(nn.Module):
    """Time conv over all channels (TF: a [7, C] kernel on a (T, C, 1) image), ReLU, batch norm."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, 7, padding=3)
        self.bn = nn.BatchNorm1d(c_out, eps=TF_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(F.relu(self.conv(x)))


class MusicnnBackbone(nn.Module):
    """musicnn (``MSD_musicnn``): log-mel (B, 96, T=187) -> 50 tag logits and the 200-d penultimate features.

    Front end: timbral filters 7x38 and 7x67 (204 each) and temporal filters 128x1, 64x1, 32x1 (51 each),
    each max-pooled over frequency -> 561 channels. Mid end: three 7-frame convs of 64 with residuals, densely
    concatenated -> 753 channels. Back end: max and mean over time -> 1506 -> dense 200 -> dense 50.

    Float by default. Once calibrated (`calibrate_int8`), ``use_int8(True)`` runs the front-end convolutions of CPU
    inputs in int8 (`genre_model.int8`): the network several times faster, genre probabilities within a few hundredths
    of the float ones. Explanations use the same forward pass and `input_gradient`; training needs float.
    """

    def __init__(self, n_mels: int = 96, n_tags: int = 50, midend: int = 64, backend: int = 200):
        super().__init__()
        self.int8: int8.Int8FrontEnd | None = None  # set by use_int8
        self.input_mels = n_mels
        self.input_bn = _bn2d(1)
        self.register_buffer("input_range", torch.zeros(2))  # of the normalized log-mel, for int8 (0, 0: not yet)
        timbral, temporal = int(1.6 * 128), int(1.6 * 32)
        self.frontend = nn.ModuleList(
            [_Branch(timbral, (7, int(0.4 * n_mels)), (3, 3)), _Branch(timbral, (7, int(0.7 * n_mels)), (3, 3))]
            + [_Branch(temporal, (k, 1), ((k - 1) // 2, k // 2)) for k in (128, 64, 32)]  # TF "same" padding
        )
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList(
            [_MidendConv(front, midend), _MidendConv(midend, midend), _MidendConv(midend, midend)]
        )
        pooled = 2 * (front + 3 * midend)
        self.pool_bn = nn.BatchNorm1d(pooled, eps=TF_BN_EPS)
        self.dense = nn.Linear(pooled, backend)
        self.dense_bn = nn.BatchNorm1d(backend, eps=TF_BN_EPS)
        self.dropout = nn.Dropout(0.5)
        self.tags = nn.Linear(backend, n_tags)

    def load_pretrained(self, state: dict[str, torch.Tensor]) -> None:
        """Load converted weights (`train.convert_musicnn`): every tensor must match except the int8 calibration,
        which the converted checkpoint does not have."""
        require_fit(*self.load_state_dict(state, strict=False), "musicnn weights", optional=int8.CALIBRATION)

    @property
    def calibrated(self) -> bool:
        """Whether the weights carry int8 ranges (`calibrate_int8`)."""
        return bool(self.input_range.any())

    def use_int8(self, enabled: bool = True) -> bool:
        """Switch the int8 front end on (weights quantized and packed now, from the current float weights) or off.
        On needs `calibrated` and freezes the front-end convolutions; without x86 int8 kernels it warns once and stays
        float. Returns whether int8 is on."""
        self.int8 = None
        if enabled and not self.calibrated:
            raise ValueError("These weights have no int8 calibration: call calibrate_int8 first (or keep float).")
        if enabled and not int8.supported():
            warnings.warn(
                "No x86 int8 kernels in this torch/CPU: musicnn runs in float, and its genre head, fitted on "
                "int8 features, may differ from the published numbers by a few hundredths.",
                RuntimeWarning,
                stacklevel=2,
            )
        elif enabled:
            for branch in self.frontend:  # what runs is their int8 copy: the float convolutions cannot learn now
                branch.conv.requires_grad_(False)
            signs = [branch.sign() for branch in self.frontend]
            convs = tuple(int8.PackedConv.of(b.conv, s, b.peak_range) for b, s in zip(self.frontend, signs))
            self.int8 = int8.Int8FrontEnd(self.input_range.detach().clone(), convs)
        return self.int8 is not None

    def calibrate_int8(self, logmel: torch.Tensor, margin: float = 0.1) -> None:
        """Set the int8 ranges from (windows, n_mels, T) log-mels of typical music (`observed_ranges`), widened by
        ``margin`` of their span on both sides (louder or stranger input than the calibration music saturates)."""
        self.set_int8_ranges(self.observed_ranges(logmel), margin)

    @torch.no_grad()
    def observed_ranges(self, logmel: torch.Tensor, batch: int = 32) -> torch.Tensor:
        """(1 + branches, 2): the (min, max) of the normalized input and of each branch's peaks over frequency on
        (windows, n_mels, T) log-mels, by the float path. Separate from `set_int8_ranges` so that processes can
        observe shares of the data and combine their extremes."""
        was_training = self.training
        self.eval()
        x = self._normalized(logmel)
        ranges = [torch.stack(x.aminmax())]
        for branch in self.frontend:
            ranges.append(torch.stack(torch.cat([branch.run(b)[1] for b in x.split(batch)]).aminmax()))
        self.train(was_training)
        return torch.stack(ranges).cpu()

    @torch.no_grad()
    def set_int8_ranges(self, observed: torch.Tensor, margin: float = 0.1) -> None:
        """The int8 ranges from `observed_ranges` rows, each widened by ``margin`` of its span on both sides."""
        self.input_range.copy_(int8.widened(observed[0], margin))
        for branch, row in zip(self.frontend, observed[1:]):
            branch.peak_range.copy_(int8.widened(row, margin))

    def _normalized(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, 1, T, F) as TF's (B, T, F, 1), through the input batch norm."""
        return self.input_bn(logmel.transpose(1, 2).unsqueeze(1))

    def _runs(self, logmel: torch.Tensor, where: bool = False) -> list[tuple]:
        """Each branch's `_Branch.run` on ``logmel``: int8 when switched on and ``logmel`` is on the CPU."""
        x, q = self._normalized(logmel), self.int8 if logmel.is_cpu else None
        trainable = any(p.requires_grad for branch in self.frontend for p in branch.conv.parameters())
        if q is not None and torch.is_grad_enabled() and (logmel.requires_grad or trainable):
            raise RuntimeError("The int8 front end has no gradient: call use_int8(False) before training.")
        if q is None:
            return [branch.run(x, where=where) for branch in self.frontend]
        return [branch.run(x, conv, q.input_range, where) for branch, conv in zip(self.frontend, q.convs)]

    def front_end(self, logmel: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, 561, T): the pretrained filters, most of the compute."""
        if self.training:
            x = self._normalized(logmel)
            return torch.cat([branch(x) for branch in self.frontend], dim=1)
        return torch.cat([out for out, _, _ in self._runs(logmel)], dim=1)

    @torch.no_grad()
    def front_end_for_gradient(self, logmel: torch.Tensor) -> tuple[torch.Tensor, list]:
        """`front_end` in eval mode (int8 where it would run int8), also returning what `input_gradient` needs:
        each branch's peaks over frequency and the bands they are at, (B, C, T) each."""
        runs = self._runs(logmel, where=True)
        return torch.cat([out for out, _, _ in runs], dim=1), [(peak, at) for _, peak, at in runs]

    @torch.no_grad()
    def input_gradient(self, g_front: torch.Tensor, saved: list, keep: float = 0.99) -> torch.Tensor:
        """d/d(log-mel) (B, n_mels, T) from d/d(`front_end` output) (B, 561, T), by hand and sparse: every (filter,
        frame) unit sends its gradient through its weights to the one patch where it peaked over frequency, which
        is what autograd does, but autograd materializes the dense (B, C, T, F') gradient and runs a transposed conv
        over it (twice the int8 forward's cost). Only the units carrying ``keep`` of each window's gradient mass
        (|gradient| x the filter's L1 norm) are sent; ``keep=1`` is exact (tested against autograd)."""
        (b, _, t), device = g_front.shape, g_front.device
        n_mels = self.input_mels
        split = g_front.split([branch.conv.out_channels for branch in self.frontend], dim=1)
        grads = [branch.unit_gradients(g, peak) for branch, g, (peak, _) in zip(self.frontend, split, saved)]
        scores = [g.abs() * br.conv.weight.abs().sum(dim=(1, 2, 3))[:, None] for br, g in zip(self.frontend, grads)]
        # keep=1: every unit with a gradient; else the smallest score within the kept mass
        threshold = torch.full((b, 1, 1), torch.finfo(g_front.dtype).tiny, device=device)
        if keep < 1:
            ranked = torch.cat(scores, dim=1).flatten(1).sort(dim=1, descending=True).values  # (B, units)
            mass = ranked.cumsum(dim=1)
            n_kept = (mass < keep * mass[:, -1:]).sum(dim=1, keepdim=True).clamp_max(ranked.shape[1] - 1)
            threshold = torch.maximum(threshold, ranked.gather(1, n_kept)[:, :, None])
        pad = max(max(branch.time_pad) for branch in self.frontend)  # the grid holds every branch's zero padding
        grad = torch.zeros(b, t + 2 * pad, n_mels, device=device)  # (B, padded T, F): no index falls outside
        for branch, g, score, (_, at) in zip(self.frontend, grads, scores, saved):
            bi, ci, ti = torch.nonzero(score >= threshold, as_tuple=True)  # the kept units
            kt, kf = branch.conv.kernel_size
            frames, bands = torch.arange(kt, device=device), torch.arange(kf, device=device)
            patch = frames[:, None] * n_mels + bands  # (kt, kf) offsets in the grid
            start = (bi * (t + 2 * pad) + ti + pad - branch.time_pad[0]) * n_mels + at[bi, ci, ti]  # (units,)
            values = branch.conv.weight[ci, 0] * g[bi, ci, ti][:, None, None]  # (units, kt, kf)
            grad.view(-1).index_add_(0, (start[:, None, None] + patch).flatten(), values.flatten())
        return grad[:, pad : pad + t].transpose(1, 2) * _bn_scale(self.input_bn)  # input batch norm: one channel

    def pooled(self, front: torch.Tensor) -> torch.Tensor:
        """(B, 561, T) -> the mid end's output pooled over time and batch-normalised (B, 1506)."""
        m1 = self.midend[0](front)
        m2 = self.midend[1](m1) + m1
        m3 = self.midend[2](m2) + m2
        features = torch.cat([front, m1, m2, m3], dim=1)  # (B, 753, T)
        pooled = torch.stack([features.amax(dim=2), features.mean(dim=2)], dim=2).flatten(1)  # TF order: max, mean
        return self.pool_bn(pooled)

    def from_pooled(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1506) -> (tag logits (B, 50), penultimate (B, 200)): the back end."""
        penultimate = self.dense_bn(F.relu(self.dense(self.dropout(pooled))))
        return self.tags(self.dropout(penultimate)), penultimate

    def from_front_end(self, front: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 561, T) -> (tag logits (B, 50), penultimate (B, 200)): mid end and back end."""
        return self.from_pooled(self.pooled(front))

    def forward(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, n_mels, T) -> (tag logits (B, 50), penultimate (B, 200))."""
        return self.from_front_end(self.front_end(logmel))
