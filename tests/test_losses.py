"""The loss terms against values worked out by hand, and gradcheck of the total."""

from __future__ import annotations

import pytest
import torch
from helpers import random_vgg_weights

from impasto.loss.gatys import GatysLoss, content_loss, gram_matrix, style_loss, tv_loss
from impasto.model.vgg import VGG19Features
from impasto.model.weights import VGGWeights


def test_gram_matrix_by_hand() -> None:
    # F (C=2, H=1, W=2) = [[1, 2], [3, 4]]; F F^T = [[5, 11], [11, 25]]; C*H*W = 4.
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    expected = torch.tensor([[[5.0, 11.0], [11.0, 25.0]]]) / 4
    assert torch.allclose(gram_matrix(f), expected)


def test_content_loss_by_hand() -> None:
    x = {"a": torch.tensor([[[[1.0, 2.0]]]]), "b": torch.tensor([[[[0.0]]]])}
    c = {"a": torch.tensor([[[[0.0, 0.0]]]]), "b": torch.tensor([[[[3.0]]]])}
    # layer a: mean(1, 4) = 2.5; layer b: 9. Weights 0.25 / 0.75.
    loss = content_loss(x, c, {"a": 0.25, "b": 0.75})
    assert loss.item() == pytest.approx(0.25 * 2.5 + 0.75 * 9.0)


def test_style_loss_by_hand_with_blend() -> None:
    f = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])
    g = gram_matrix(f)  # [[1.25, 2.75], [2.75, 6.25]]
    zero = torch.zeros_like(g)
    ones = torch.ones_like(g)
    # Style 1 target 0: mean(g^2) = (1.5625 + 2*7.5625 + 39.0625)/4 = 13.9375
    # Style 2 target 1: mean((g-1)^2) = (0.0625 + 2*3.0625 + 27.5625)/4 = 8.4375
    loss = style_loss({"l": f}, [{"l": zero}, {"l": ones}], {"l": 1.0}, [0.75, 0.25])
    assert loss.item() == pytest.approx(0.75 * 13.9375 + 0.25 * 8.4375)


def test_tv_loss_by_hand() -> None:
    img = torch.tensor([[[[0.0, 1.0], [2.0, 4.0]]]])
    # dy: (2, 3) -> mean(4, 9) = 6.5; dx: (1, 2) -> mean(1, 4) = 2.5
    assert tv_loss(img).item() == pytest.approx(9.0)


def tiny_weights(dtype: torch.dtype = torch.float64) -> VGGWeights:
    return random_vgg_weights(dtype)


def test_total_loss_passes_gradcheck() -> None:
    net = VGG19Features(tiny_weights(), last_layer="relu2_1").double()
    gen = torch.Generator().manual_seed(1)
    content = torch.rand(1, 3, 6, 6, generator=gen, dtype=torch.float64) * 255
    style = torch.rand(1, 3, 6, 6, generator=gen, dtype=torch.float64) * 255
    loss = GatysLoss(
        net,
        content,
        [style],
        content_weight=5.0,
        content_layers={"relu2_1": 1.0},
        style_weight=500.0,
        style_layers={"relu1_1": 0.5, "relu2_1": 0.5},
        style_blend=[1.0],
        tv_weight=100.0,
    )
    x = (torch.rand(1, 3, 6, 6, generator=gen, dtype=torch.float64) * 255).requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda img: loss(img).total, (x,), eps=1e-4, atol=1e-3, rtol=1e-3
    )


def test_total_is_sum_of_weighted_terms() -> None:
    net = VGG19Features(tiny_weights(torch.float32), last_layer="relu2_1")
    content = torch.rand(1, 3, 8, 8) * 255
    style = torch.rand(1, 3, 8, 8) * 255
    kwargs = dict(content_layers={"relu2_1": 1.0}, style_layers={"relu1_1": 1.0}, style_blend=[1.0])
    full = GatysLoss(
        net, content, [style], content_weight=2.0, style_weight=3.0, tv_weight=4.0, **kwargs
    )
    unit = GatysLoss(
        net, content, [style], content_weight=1.0, style_weight=1.0, tv_weight=1.0, **kwargs
    )
    x = torch.rand(1, 3, 8, 8) * 255
    a, b = full(x), unit(x)
    assert a.content.item() == pytest.approx(2 * b.content.item(), rel=1e-5)
    assert a.style.item() == pytest.approx(3 * b.style.item(), rel=1e-5)
    assert a.tv.item() == pytest.approx(4 * b.tv.item(), rel=1e-5)
    assert a.total.item() == pytest.approx(
        a.content.item() + a.style.item() + a.tv.item(), rel=1e-6
    )
    # The content image itself has zero content loss.
    assert full(content).content.item() == pytest.approx(0.0, abs=1e-6)
