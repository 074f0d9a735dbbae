"""musicnn's front end in int8 on x86 CPUs: the timbral convolutions (most of the compute) with 8-bit inputs and
outputs and int32 accumulation, so the whole network runs several times faster, genre probabilities within a few
hundredths of float.

Explicit, never implied: `MusicnnBackbone.use_int8` builds an `Int8FrontEnd` from the float weights and the
calibrated ranges (``input_range`` and each branch's ``peak_range``, stored with the weights) once; nothing in it
changes afterwards, so threads can share it, and training code switches it off to get gradients.

Torch's quantized tensors (``quint8``, ``qint8``) are deprecated in favour of torchao, whose int8 convolutions go
through ``torch.compile`` (the PT2E flow). Until that is worth the compile step, this module makes the tensors itself
(``torch._make_per_*_quantized_tensor``; `supported` checks for every op it uses) and silences the deprecation
warning only around the one call, at packing time, that raises it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

CALIBRATION = ("input_range", "peak_range")  # buffer names; weights saved before calibration existed lack them


def supported() -> bool:
    """Whether torch's x86 int8 kernels are here (not on ARM, whose engine is slower than float for these
    convolutions, nor in a torch without quantized tensors)."""
    ops = ("_make_per_tensor_quantized_tensor", "_make_per_channel_quantized_tensor")
    return (
        torch.backends.quantized.engine in ("x86", "fbgemm")
        and all(hasattr(torch, op) for op in ops)
        and hasattr(torch.ops.quantized, "conv2d_prepack")
    )


def widened(minmax: torch.Tensor, margin: float) -> torch.Tensor:
    """Calibration: (lo, hi) widened by ``margin`` of its span on both sides and made to include zero (the
    padding, which must stay exact)."""
    lo, hi = min(minmax[0].item(), 0.0), max(minmax[1].item(), 0.0)
    pad = margin * (hi - lo)
    return torch.tensor([lo - pad, hi + pad])


def _qparams(value_range: torch.Tensor) -> tuple[float, int]:
    """Scale and zero point of unsigned 8 bits over ``value_range`` (lo <= 0 <= hi)."""
    lo, hi = value_range.tolist()
    scale = (hi - lo) / 255
    return scale, round(-lo / scale)


def quantize(x: torch.Tensor, value_range: torch.Tensor) -> torch.Tensor:
    """Float -> quint8 over ``value_range`` (values outside saturate), as ``torch.quantize_per_tensor`` rounds."""
    scale, zero = _qparams(value_range)
    q = (torch.round(x / scale) + zero).clamp_(0, 255).to(torch.uint8)
    return torch._make_per_tensor_quantized_tensor(q, scale, zero)


@dataclass(frozen=True)
class PackedConv:
    """One branch's convolution, its weights per-channel int8 and packed for the kernel."""

    packed: object  # torch's prepacked conv parameters
    out_scale: float
    out_zero: int

    @classmethod
    def of(cls, conv: nn.Conv2d, sign: torch.Tensor, peak_range: torch.Tensor) -> PackedConv:
        """``conv`` with each channel's weights and bias multiplied by ``sign``; outputs over ``peak_range``."""
        weight, bias = conv.weight.detach() * sign[:, None, None, None], conv.bias.detach() * sign
        scale = (weight.abs().amax(dim=(1, 2, 3)).clamp_min(1e-12) / 127).double()
        q = torch.round(weight / scale[:, None, None, None]).clamp_(-127, 127).to(torch.int8)
        with warnings.catch_warnings():  # at load time only, never per prediction
            warnings.filterwarnings("ignore", message="torch.quantize_per_tensor", category=UserWarning)
            qweight = torch._make_per_channel_quantized_tensor(q, scale, torch.zeros_like(scale, dtype=torch.long), 0)
        packed = torch.ops.quantized.conv2d_prepack(qweight, bias, [1, 1], [0, 0], [1, 1], 1)
        return cls(packed, *_qparams(peak_range))

    def __call__(self, x: torch.Tensor, input_range: torch.Tensor) -> torch.Tensor:
        """Padded float (B, 1, T, F) -> quint8 (B, C, T', F')."""
        return torch.ops.quantized.conv2d(quantize(x, input_range), self.packed, self.out_scale, self.out_zero)


def peaks(y: torch.Tensor, where: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """quint8 (B, C, T', F') -> its max over frequency in float (B, C, T') and, with ``where``, the band of each."""
    peak = F.max_pool2d(y, (1, y.shape[3])).dequantize()[..., 0]
    # argmax over the strided band axis of int8's channels-last layout is slower than on a contiguous copy
    return peak, y.int_repr().contiguous().argmax(dim=3) if where else None


@dataclass(frozen=True)
class Int8FrontEnd:
    """The packed convolutions of every branch and the calibrated input range; immutable."""

    input_range: torch.Tensor
    convs: tuple[PackedConv, ...]

    def __deepcopy__(self, memo: dict) -> Int8FrontEnd:  # immutable: a copied model may share it
        return self
