"""The Gram product F F^T, in float32, with a backward that uses its symmetry.

It is the one matrix product of the style loss, and autograd's generic backward for
``bmm(f, f.transpose(1, 2))`` costs two products and a sum of two full-size
gradients. Since G = F F^T / n is symmetric, dL/dF = (dG + dG^T) F / n: one
product. At 512 px that saves a third of the style loss's matrix work.

The product itself is summed in float32; for bf16 features the backward's product
runs in bf16 (see ``backward``), which measured 6-10% off a 512 px CPU step with
the same gradient error against float32 (5.27% at 256 px, before and after).
"""

from __future__ import annotations

from typing import Any

import torch


def wide(t: torch.Tensor) -> torch.Tensor:
    """Half-precision features (under AMP) are summed in float32: with bf16's 8-bit
    mantissa, sums over every pixel would lose the small differences between the
    image's and the style's statistics."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


def _bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b outside autocast, which would otherwise run it in half precision again."""
    with torch.autocast(a.device.type, enabled=False):
        return torch.bmm(a, b)


class _GramProduct(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, f: torch.Tensor, divisor: torch.Tensor | float) -> torch.Tensor:
        # F is kept as given (bf16 under AMP) and widened again in backward, so no
        # float32 copy of the features stays alive between forward and backward.
        ctx.save_for_backward(f)
        ctx.divisor = divisor
        w = wide(f)
        return _bmm(w, w.transpose(1, 2)) / divisor

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        (f,) = ctx.saved_tensors
        sym = (grad + grad.transpose(1, 2)) / ctx.divisor
        if f.dtype == torch.bfloat16:
            # The product's output goes to bf16 convolutions anyway, and bf16 products
            # accumulate in float32: rounding dG (C x C) to bf16 costs 2^-9 per entry,
            # and saves widening F and a float32 product (on a CPU with AMX, 40 of the
            # ~500 ms of a 512 px step). Not for fp16, whose range dG can leave.
            w, sym = f, sym.to(f.dtype)
        else:
            w = wide(f)
        # Features from a channels-last network are stored pixel-major (stride 1 along
        # channels): the product is then formed as F^T (dG + dG^T), so that the
        # gradient keeps their layout and meets the convolutions' gradients in it.
        pixel_major = w.stride(1) == 1
        df = _bmm(w.transpose(1, 2), sym).transpose(1, 2) if pixel_major else _bmm(sym, w)
        return df.to(f.dtype), None


def gram_product(f: torch.Tensor, divisor: torch.Tensor | float) -> torch.Tensor:
    """F F^T / divisor in float32 for F of shape (N, C, M); returns (N, C, C).

    ``divisor`` is a number or a tensor that needs no gradient (a mask's weight).
    """
    if isinstance(divisor, torch.Tensor) and divisor.requires_grad:
        raise ValueError("gram_product: the divisor must not require a gradient")
    return _GramProduct.apply(f, divisor)
