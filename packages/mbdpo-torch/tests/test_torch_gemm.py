"""fused.linear and fused.batched_linear, the model's matmuls: on an x86 CPU each product of the
forward and the backward is one oneDNN GEMM (the mbdpo::onednn_gemm op); values and gradients
against float64 numpy, and the op under torch.func.vmap (act_envs) against one call per env."""

from __future__ import annotations

import platform

import numpy as np
import pytest
import torch
from mbdpo_torch.fused import batched_linear, linear

X86 = platform.machine().lower() in ("x86_64", "amd64")


def ops_run(fn) -> set[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {event.key for event in prof.key_averages()}


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return {
        "x": rng.standard_normal((3, 5, 7)),
        "w": rng.standard_normal((7, 4)),
        "b": rng.standard_normal(4),
        "dy": rng.standard_normal((3, 5, 4)),
        "hs": rng.standard_normal((2, 6, 7)),
        "ws": rng.standard_normal((2, 7, 4)),
        "bs": rng.standard_normal((2, 1, 4)),
        "dys": rng.standard_normal((2, 6, 4)),
    }


def leaf(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float32, requires_grad=True)


@pytest.mark.skipif(not X86 or not torch.backends.mkldnn.is_available(), reason="x86 oneDNN")
def test_cpu_matmuls_run_in_onednn(arrays):
    x, w, b = leaf(arrays["x"]), leaf(arrays["w"]), leaf(arrays["b"])

    def forward_and_backward():
        linear(x, w, b).sum().backward()

    ran = ops_run(forward_and_backward)

    assert "mbdpo::onednn_gemm" in ran
    assert not {"aten::mm", "aten::addmm", "aten::bmm"} & ran


def test_linear_values_and_gradients(arrays):
    x, w, b = leaf(arrays["x"]), leaf(arrays["w"]), leaf(arrays["b"])
    dy = arrays["dy"]

    y = linear(x, w, b)
    y.backward(torch.tensor(dy, dtype=torch.float32))

    np.testing.assert_allclose(
        y.detach().numpy(), arrays["x"] @ arrays["w"] + arrays["b"], 1e-5, 1e-5
    )
    np.testing.assert_allclose(x.grad.numpy(), dy @ arrays["w"].T, 1e-5, 1e-5)
    rows_x, rows_dy = arrays["x"].reshape(-1, 7), dy.reshape(-1, 4)
    np.testing.assert_allclose(w.grad.numpy(), rows_x.T @ rows_dy, 1e-5, 1e-5)
    np.testing.assert_allclose(b.grad.numpy(), rows_dy.sum(0), 1e-5, 1e-5)


def test_batched_linear_values_and_gradients(arrays):
    h, w, b = leaf(arrays["hs"]), leaf(arrays["ws"]), leaf(arrays["bs"])
    dy = arrays["dys"]

    y = batched_linear(h, w, b)
    y.backward(torch.tensor(dy, dtype=torch.float32))

    want = np.einsum("nri,nio->nro", arrays["hs"], arrays["ws"]) + arrays["bs"]
    np.testing.assert_allclose(y.detach().numpy(), want, 1e-5, 1e-5)
    np.testing.assert_allclose(
        h.grad.numpy(), np.einsum("nro,nio->nri", dy, arrays["ws"]), 1e-5, 1e-5
    )
    np.testing.assert_allclose(
        w.grad.numpy(), np.einsum("nri,nro->nio", arrays["hs"], dy), 1e-5, 1e-5
    )
    np.testing.assert_allclose(b.grad.numpy(), dy.sum(1, keepdims=True), 1e-5, 1e-5)


@pytest.mark.parametrize("batched", [("x",), ("x", "b"), ("b",), ("x", "w"), ("w", "b")])
def test_linear_under_vmap_equals_one_call_per_env(batched):
    rng = np.random.default_rng(1)
    envs = 3
    shapes = {"x": (5, 7), "w": (7, 4), "b": (4,)}
    values = {
        k: torch.tensor(
            rng.standard_normal(((envs,) if k in batched else ()) + shape), dtype=torch.float32
        )
        for k, shape in shapes.items()
    }
    in_dims = tuple(0 if k in batched else None for k in shapes)

    got = torch.func.vmap(linear, in_dims=in_dims)(values["x"], values["w"], values["b"])

    def env(i, k):
        return values[k][i] if k in batched else values[k]

    want = torch.stack([env(i, "x") @ env(i, "w") + env(i, "b") for i in range(envs)])
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
