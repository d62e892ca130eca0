"""The fast paths: the Gram product's hand-written backward, bf16 on the CPU, and
the C heap's reuse of large tensors' memory."""

from __future__ import annotations

import gc
import sys

import pytest
import torch
from helpers import random_vgg_weights

from impasto import devices
from impasto.api import score
from impasto.errors import SettingsError
from impasto.loss.gram import gram_product
from impasto.model.vgg import VGG19Features
from impasto.run import evaluate, loop
from impasto.run.loop import Stylizer
from impasto.settings import Settings

CPU = torch.device("cpu")


@pytest.mark.parametrize("channels_last", [False, True])
def test_gram_backward_matches_autograd_of_the_plain_product(channels_last: bool) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 5, 4, 3, generator=gen, dtype=torch.float64)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(2, 5, 5, generator=gen, dtype=torch.float64)  # not symmetric

    def plain(f: torch.Tensor) -> torch.Tensor:
        return torch.bmm(f, f.transpose(1, 2)) / 12

    grads = []
    for gram in (plain, lambda f: gram_product(f, 12)):
        leaf = x.clone().requires_grad_(True)
        (gram(leaf.reshape(2, 5, 12)) * weight).sum().backward()
        grads.append(leaf.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-12, atol=1e-12)
    # The gradient keeps the features' memory layout (no layout conversion on the way back).
    assert grads[1].is_contiguous(memory_format=torch.channels_last) == channels_last
    leaf = x.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda f: gram_product(f.reshape(2, 5, 12), 12.0), (leaf,))


def test_gram_of_bf16_features_is_float32_and_exact() -> None:
    # Values exactly representable in bf16: the product must not round its sums.
    f = torch.tensor([[[1.0, 2.0, 3.0], [256.0, 1.0, 1.0]]])
    g = gram_product(f.bfloat16(), 1)
    assert g.dtype == torch.float32
    # 256 + 2 + 3 = 261 needs 9 significant bits: bf16 would round it to 260.
    assert g[0, 0, 1].item() == 261.0
    f_bf16 = f.bfloat16().requires_grad_(True)
    gram_product(f_bf16, 1).sum().backward()
    assert f_bf16.grad is not None and f_bf16.grad.dtype == torch.bfloat16


def test_gram_divisor_must_not_need_a_gradient() -> None:
    with pytest.raises(ValueError, match="divisor"):
        gram_product(torch.ones(1, 2, 3), torch.tensor(2.0, requires_grad=True))


def test_precision_resolution_on_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    assert devices.resolve_precision("fp32", CPU) is None
    assert devices.resolve_precision("bf16", CPU) is torch.bfloat16
    with pytest.raises(SettingsError, match="fp16 needs a CUDA device"):
        devices.resolve_precision("fp16", CPU)
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: True)
    assert devices.resolve_precision("auto", CPU) is torch.bfloat16
    monkeypatch.setattr(devices, "cpu_has_fast_bf16", lambda: False)
    assert devices.resolve_precision("auto", CPU) is None


def test_bf16_network_keeps_the_image_and_first_layer_in_float32() -> None:
    net = VGG19Features(random_vgg_weights(), last_layer="relu2_1")
    net.use_channels_last()
    net.use_dtype(torch.bfloat16)
    assert net.compute_dtype == torch.bfloat16
    assert net.gain.dtype == torch.float32  # the input conversion is not rounded
    assert net.layers["conv1_1"].weight.dtype == torch.float32
    assert net.layers["conv1_2"].weight.dtype == torch.bfloat16
    image = torch.rand(1, 3, 8, 8) * 255
    feats = net(image, ["relu1_1", "relu2_1"])
    assert feats["relu1_1"].dtype == torch.float32
    assert feats["relu2_1"].dtype == torch.bfloat16
    reference = VGG19Features(random_vgg_weights(), last_layer="relu2_1")(image, ["relu2_1"])
    error = (feats["relu2_1"].float() - reference["relu2_1"]).abs().max()
    assert error <= 0.02 * reference["relu2_1"].abs().max()
    # A change of a tenth of a pixel value still reaches the first layer's features.
    nudged = net(image + 0.1, ["relu1_1"])["relu1_1"]
    assert not torch.equal(nudged, feats["relu1_1"])


def test_bf16_lbfgs_from_the_content_image_converges(examples) -> None:
    # With torch's L-BFGS (a first step of 1 / sum|g|, far below bf16's rounding) this
    # bf16 run ended at three times float32's loss.
    content, style = examples
    common = dict(size=96, iterations=40, seed=0, tolerance=0.0, initial="content")
    best = {}
    for precision in ("fp32", "bf16"):
        st = Stylizer(content, [style], Settings(precision=precision, **common))
        history = [p.losses["total"] for p in st.run()]
        assert st.best.total < 0.05 * history[0], precision
        best[precision] = st.best.total
    assert best["bf16"] == pytest.approx(best["fp32"], rel=0.1)


def test_bf16_run_on_the_cpu_matches_float32_and_scores_in_float32(examples) -> None:
    content, style = examples
    # On the CPU even where a GPU is present (device auto would pick it).
    common = dict(size=48, iterations=15, seed=3, tolerance=0.0, device="cpu")
    results = {}
    for precision in ("fp32", "bf16"):
        st = Stylizer(content, [style], Settings(precision=precision, **common))
        assert st.targets.net.compute_dtype == (
            torch.float32 if precision == "fp32" else torch.bfloat16
        )
        for _ in st.run():
            pass
        results[precision] = st.result()
    start = results["fp32"].history[0]["total"]
    fp32, bf16 = (results[p].losses["total"] for p in ("fp32", "bf16"))
    assert fp32 < 0.5 * start and bf16 < 0.5 * start  # both optimised
    assert bf16 == pytest.approx(fp32, rel=0.15)
    # `score` defaults to float32 whatever the run used: the same image scores the same.
    image = results["bf16"].image
    auto = score(image, content, [style], Settings(device="cpu"))
    exact = score(image, content, [style], Settings(device="cpu", precision="fp32"))
    assert auto == exact
    rounded = score(image, content, [style], Settings(device="cpu", precision="bf16"))
    assert rounded["total"] == pytest.approx(exact["total"], rel=0.02)
    assert rounded["total"] != exact["total"]


def test_a_failed_cuda_graph_capture_falls_back_to_plain_steps(examples, monkeypatch) -> None:
    # On a GPU a capture can fail (an operation a graph cannot hold); the run must go
    # on step by step, with one warning, to the same result. Emulated on the CPU.
    settings = Settings(size=32, iterations=4, tolerance=0.0, seed=0, precision="fp32")
    plain = Stylizer(*examples, settings)
    for _ in plain.run():
        pass

    def fail(self, x):
        raise RuntimeError("operation not permitted when stream is capturing\ndetails")

    monkeypatch.setattr(evaluate.CudaGraphEvaluator, "capture", fail)
    # Every evaluator of the run is a CUDA-graph one, as on a GPU.
    monkeypatch.setattr(
        loop,
        "make_evaluator",
        lambda loss, machine, graphs: evaluate.CudaGraphEvaluator(loss, machine),
    )
    st = Stylizer(*examples, settings)
    with pytest.warns(UserWarning, match=r"capture failed \(operation not permitted[^\n]*\)"):
        for _ in st.run():
            pass
    assert st.evaluator.failed and st.evaluator.graph is None
    assert [h["total"] for h in st.history] == [h["total"] for h in plain.history]


@pytest.mark.parametrize(
    "device",
    [
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
        ),
    ],
)
def test_gram_backward_for_bf16_features_matches_float32(device: str) -> None:
    # The backward's product runs in bf16 for bf16 features: its gradient must agree
    # with the float32 one to about bf16's rounding, not just in sign.
    torch.manual_seed(0)
    f32 = torch.randn(2, 16, 300, device=device).requires_grad_(True)
    f16 = f32.detach().bfloat16().requires_grad_(True)
    target = torch.randn(2, 16, 16, device=device)
    for f in (f32, f16):
        ((gram_product(f, 300.0) - target) ** 2).sum().backward()
    assert f16.grad is not None and f32.grad is not None
    assert f16.grad.dtype == torch.bfloat16
    err = (f16.grad.float() - f32.grad).norm() / f32.grad.norm()
    assert 0 < err < 1e-2


def _faults_of_a_fresh_64mb_tensor() -> int:
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(16 << 20)  # 64 MB, every page written
    del t
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_large_tensors_reuse_freed_memory_until_it_is_released() -> None:
    if not devices.keep_freed_memory():
        pytest.skip("this C library has no mallopt (not glibc)")
    # An earlier test's unfinished run, collected midway, would release the memory
    # from its generator's `finally`: collect first, then hold the collector off.
    gc.collect()
    gc.disable()
    try:
        # The first ones take memory from the system: a freed chunk fits the next
        # aligned request only once the heap has settled, as over a run's steps.
        for _ in range(3):
            _faults_of_a_fresh_64mb_tensor()
        # 64 MB of new pages would be 16,384 faults of 4 KiB; reused memory needs none.
        assert _faults_of_a_fresh_64mb_tensor() < 1000
        devices.release_freed_memory()
        assert _faults_of_a_fresh_64mb_tensor() > 8000  # handed back, so taken anew
    finally:
        gc.enable()
