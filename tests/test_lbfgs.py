"""impasto's L-BFGS: the algorithm on problems with known answers, and its state."""

from __future__ import annotations

import pytest
import torch

from impasto.lbfgs import LBFGS


def quadratic(x: torch.Tensor) -> torch.Tensor:
    # f = sum_i c_i (x_i - i)^2 with curvatures from 1 to 100: minimum 0 at x_i = i.
    n = x.numel()
    c = torch.logspace(0, 2, n, dtype=x.dtype)
    target = torch.arange(n, dtype=x.dtype)
    return (c * (x.reshape(-1) - target) ** 2).sum()


def run(opt: torch.optim.Optimizer, x: torch.Tensor, steps: int) -> list[float]:
    losses = []

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = quadratic(x)
        loss.backward()
        return loss

    for _ in range(steps):
        losses.append(float(opt.step(closure).detach()))
    return losses


def test_minimises_an_ill_conditioned_quadratic() -> None:
    x = torch.zeros(2, 5, dtype=torch.float64, requires_grad=True)
    losses = run(LBFGS([x], history_size=10), x, 40)
    assert losses[-1] < 1e-10 * losses[0]
    assert torch.allclose(x.detach().reshape(-1), torch.arange(10.0, dtype=torch.float64))


def test_first_step_moves_the_steepest_element_by_first_step() -> None:
    x = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    run(LBFGS([x], first_step=3.0), x, 1)
    # The gradient at 0 is -2 c_i i: largest for the last element, which moves by 3.
    assert x.detach().abs().max().item() == pytest.approx(3.0)
    assert x.detach()[0].item() == 0.0


def test_history_is_a_ring_of_the_newest_pairs() -> None:
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = LBFGS([x], history_size=3)
    run(opt, x, 8)
    state = opt.state[x]
    assert state["s"].shape == (3, 6) and state["count"] == 3


def test_state_dict_resumes_to_the_same_iterates() -> None:
    x = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    opt = LBFGS([x], history_size=4)
    run(opt, x, 12)
    expected = x.detach().clone()

    y = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    first = LBFGS([y], history_size=4)
    run(first, y, 5)
    saved = first.state_dict()
    z = y.detach().clone().requires_grad_(True)
    second = LBFGS([z], history_size=4)
    second.load_state_dict(saved)
    run(second, z, 7)
    assert torch.equal(z.detach(), expected)


def test_refuses_more_than_one_tensor() -> None:
    with pytest.raises(ValueError, match="exactly one tensor"):
        LBFGS([torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)])
