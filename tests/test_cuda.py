"""What only a CUDA GPU can check: CUDA-graph replay and half precision there.

Skipped on machines without one (CI); run on a GPU with `python -m pytest tests/test_cuda.py`.
"""

from __future__ import annotations

import pytest
import torch

from impasto.run.evaluate import CudaGraphEvaluator, EagerEvaluator
from impasto.run.loop import Stylizer
from impasto.settings import Settings

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def run(examples, **settings) -> Stylizer:
    base = {"size": 64, "iterations": 8, "tolerance": 0.0, "seed": 0, "device": "cuda"}
    st = Stylizer(*examples, Settings(**{**base, **settings}))
    for _ in st.run():
        pass
    return st


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_graph_replay_follows_the_same_path_as_eager_steps(examples, precision, optimizer) -> None:
    # The same steps, each from a replayed graph or launched one by one: the losses
    # agree to rounding (cuDNN may pick other kernels for the two).
    graph = run(examples, precision=precision, optimizer=optimizer, cuda_graphs=True)
    eager = run(examples, precision=precision, optimizer=optimizer, cuda_graphs=False)
    assert isinstance(graph.evaluator, CudaGraphEvaluator)
    assert graph.evaluator.graph is not None and not graph.evaluator.failed
    assert isinstance(eager.evaluator, EagerEvaluator)
    assert not isinstance(eager.evaluator, CudaGraphEvaluator)
    for a, b in zip(graph.history, eager.history):
        assert a["total"] == pytest.approx(b["total"], rel=2e-2)
    assert graph.history[-1]["total"] < 0.8 * graph.history[0]["total"]


def test_graphs_are_captured_afresh_at_each_scale(examples) -> None:
    st = run(examples, size=96, scales=2, min_size=48, coarse_iterations=4)
    assert st.scale_runs == [4, 8] and st.evaluator.graph is not None
    assert st.history[-1]["total"] < st.history[4]["total"]


def test_fp16_gives_finite_losses_and_progress(examples) -> None:
    st = run(examples, precision="fp16", iterations=20)
    totals = [h["total"] for h in st.history]
    assert all(map(torch.isfinite, torch.tensor(totals)))
    assert totals[-1] < 0.5 * totals[0]
