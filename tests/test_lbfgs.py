"""impasto's L-BFGS: the algorithm on problems with known answers, and its state."""

from __future__ import annotations

import pytest
import torch

from impasto.optim.lbfgs import LBFGS


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
    assert state["w"].shape == (2 * 3, 6) and state["count"] == 3


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


def two_loop_direction(pairs: list[tuple[torch.Tensor, torch.Tensor]], g: torch.Tensor, gamma):
    """-H g by the textbook two-loop recursion (Nocedal & Wright, Algorithm 7.4)."""
    q = g.clone()
    alphas = []
    for s, y in reversed(pairs):
        alpha = s.dot(q) / y.dot(s)
        q -= alpha * y
        alphas.append(alpha)
    r = gamma * q
    for (s, y), alpha in zip(pairs, reversed(alphas)):
        r += s * (alpha - y.dot(r) / y.dot(s))
    return -r


@pytest.mark.parametrize("steps", [3, 6, 13])  # ring part-filled, just full, wrapped
def test_direction_equals_the_two_loop_recursion(steps: int) -> None:
    torch.manual_seed(steps)
    x = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = LBFGS([x], history_size=5)
    run(opt, x, steps)
    state = opt.state[x]
    k, m, head = state["count"], 5, state["head"]
    assert k == min(steps - 1, m) and (steps < 13 or head == 2)
    first = head if k == m else 0
    slots = [(first + j) % m for j in range(k)]
    pairs = [(state["w"][i], state["w"][m + i]) for i in slots]
    g = torch.randn(12, dtype=torch.float64)
    expected = two_loop_direction(pairs, g, state["h_diag"])
    assert torch.allclose(opt.direction(g), expected, rtol=1e-9, atol=1e-12)
