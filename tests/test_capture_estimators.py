"""Random-probe and reference-JVP estimators against the exact ones, within their stated variance.

For a probe v with E[vvᵀ] = I and g = Jᵀv, E[g gᵀ] = M = JᵀJ and, per row,
Var[(g gᵀ)_ij] = M_ii·M_jj + M_ij² (Gaussian v), minus 2·Σ_c J_ci²J_cj² (Rademacher v).
The same holds for the reference JVP rows Ju (u Gaussian, M = (PJ)(PJ)ᵀ). docs/capture.md states these.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from capture_models import LinearNet, TinyGPT

from nil.capture import capture_agop

pytestmark = pytest.mark.filterwarnings("ignore:There is a performance drop")


@pytest.fixture
def net() -> LinearNet:
    torch.manual_seed(11)
    return LinearNet().double().eval()


def _x(n: int = 40) -> list[torch.Tensor]:
    return [torch.randn(n, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))]


def _variance(j: np.ndarray, kind: str) -> np.ndarray:
    m = j.T @ j
    var = np.outer(np.diag(m), np.diag(m)) + m**2
    if kind == "rademacher":
        var -= 2 * (j**2).T @ (j**2)
    return var


@pytest.mark.parametrize("kind", ["gaussian", "rademacher"])
def test_probe_estimator_within_its_variance(net: LinearNet, kind: str) -> None:
    j = (net.a.weight @ net.b.weight).detach().numpy()  # 3×5, the same for every sample
    exact = capture_agop(net, _x(), layers=["b"], probes="exact", progress=False)["b"].matrix
    np.testing.assert_allclose(exact, j.T @ j, rtol=1e-12)
    var = _variance(j, kind)
    z2 = []
    for seed in range(30):
        est = capture_agop(net, _x(), layers=["b"], probes=4, probe_kind=kind, seed=seed, progress=False)["b"]
        n = est.count
        assert n == 160
        z = (est.matrix - exact) / np.sqrt(var / n + 1e-300)
        assert np.abs(z).max() < 6.0
        z2.append(z[0, 0] ** 2)
    # The stated variance is the variance: mean z² over 30 seeds is 1 ± 0.26 (1 s.d.).
    assert 0.4 < float(np.mean(z2)) < 1.9


def test_reference_jvp_within_its_variance(net: LinearNet) -> None:
    p = torch.randn(2, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    pj = (p @ net.a.weight @ net.b.weight).detach().numpy()  # 2×5
    exact = capture_agop(net, _x(), mode="output", project=p, progress=False)["output"].matrix
    np.testing.assert_allclose(exact, pj @ pj.T, rtol=1e-12)
    var = _variance(pj.T, "gaussian")
    z2 = []
    for seed in range(30):
        est = capture_agop(
            net, _x(), mode="output", project=p, estimator="reference-jvp", probes=3, seed=seed, progress=False
        )["output"]
        assert est.count == 120
        z = (est.matrix - exact) / np.sqrt(var / est.count)
        assert np.abs(z).max() < 6.0
        z2.append(z[0, 1] ** 2)
    assert 0.4 < float(np.mean(z2)) < 1.9


def test_reference_jvp_on_a_transformer_within_variance() -> None:
    torch.manual_seed(0)
    gpt = TinyGPT(sdpa=False).eval()
    x = [torch.randint(0, 13, (3, 6), generator=torch.Generator().manual_seed(5))]
    p = torch.randn(3, 13, generator=torch.Generator().manual_seed(6)) / 3**0.5
    exact = capture_agop(gpt, x, mode="output", project=p, progress=False)["output"].matrix
    per_sample = [
        capture_agop(gpt, [x[0][b : b + 1]], mode="output", project=p, progress=False)["output"].matrix
        for b in range(3)
    ]
    probes = 16
    var = sum(np.outer(np.diag(m), np.diag(m)) + m**2 for m in per_sample) / (9 * probes)
    est = capture_agop(
        gpt, x, mode="output", project=p, estimator="reference-jvp", probes=probes, progress=False
    )["output"].matrix
    assert np.abs((est - exact) / np.sqrt(var)).max() < 6.0
    assert not np.allclose(est, exact, rtol=1e-6)


def _reference_loop(gpt: TinyGPT, batches: list[torch.Tensor], k: int, probes: int) -> np.ndarray:
    """The reference's estimator as it is written (METHOD §3.1): global RNG reseeded with 42, P
    drawn first, randn_like probes, functional jvp on the detached embeddings, non-finite zeroed."""
    with torch.random.fork_rng():
        torch.manual_seed(42)
        p = torch.randn(k, 13) / k**0.5
        acc = torch.zeros(k, k)
        for idx in batches:
            with torch.no_grad():
                e = gpt.embed(idx)
            for _ in range(probes):
                u = torch.randn_like(e)
                _, ju = torch.autograd.functional.jvp(lambda z: gpt.from_block(z, 0)[:, -1] @ p.t(), e, u)
                ju = torch.nan_to_num(ju, nan=0.0, posinf=0.0, neginf=0.0)
                acc += ju.t() @ ju / idx.shape[0]
        acc /= len(batches) * probes
        return (0.5 * (acc + acc.t())).double().numpy()


def test_reference_jvp_reproduces_the_reference_draws() -> None:
    torch.manual_seed(0)
    gpt = TinyGPT(sdpa=False).eval()
    batches = [torch.randint(0, 13, (3, 6), generator=torch.Generator().manual_seed(s)) for s in (1, 2)]
    want = _reference_loop(gpt, batches, 4, 3)
    got = capture_agop(gpt, batches, mode="output", project=4, estimator="reference-jvp", probes=3,
                       progress=False)["output"].matrix
    tol = 1e-5 * np.abs(want).max()  # the reference sums in float32, nil in float64
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    micro = capture_agop(gpt, batches, mode="output", project=4, estimator="reference-jvp", probes=3,
                         micro_batch=2, progress=False)["output"].matrix
    np.testing.assert_allclose(micro, want, rtol=0, atol=tol)
