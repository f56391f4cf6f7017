"""Lanczos with full reorthogonalisation (numerics.lanczos) against numpy.linalg.eigvalsh, with and without the
projection (I − UUᵀ)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.lanczos import lanczos, project_out


def sym(n: int, seed: int, top: tuple[float, ...] = ()) -> np.ndarray:
    """A random symmetric n × n matrix, eigenvalues uniform in [−1, 1] except the planted ``top`` ones."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    lam = rng.uniform(-1.0, 1.0, n)
    lam[: len(top)] = top
    return (Q * lam) @ Q.T


def mv(A: np.ndarray):
    At = torch.from_numpy(A)
    return lambda x: At @ x


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_full_krylov_space_gives_every_eigenvalue(seed: int) -> None:
    A = sym(40, seed)
    ritz = lanczos(mv(A), 40, iters=40, generator=gen(seed))
    np.testing.assert_allclose(ritz, np.sort(np.linalg.eigvalsh(A))[::-1], atol=1e-10)


def test_few_iterations_find_a_separated_top_eigenvalue() -> None:
    A = sym(300, 3, top=(10.0, 6.0))
    ritz = lanczos(mv(A), 300, iters=20, generator=gen())
    assert len(ritz) == 20 and np.all(np.diff(ritz) <= 0)  # descending
    assert ritz[0] == pytest.approx(10.0, abs=1e-9)
    assert ritz[1] == pytest.approx(6.0, abs=1e-6)


@pytest.mark.parametrize("k", [1, 3])
def test_projection_gives_the_spectrum_on_the_complement(k: int) -> None:
    n = 30
    A = sym(n, 4, top=(5.0, 4.0, 3.0))
    rng = np.random.default_rng(5)
    U = np.linalg.qr(rng.standard_normal((n, k)))[0]
    Qfull = np.linalg.qr(np.column_stack([U, rng.standard_normal((n, n - k))]))[0]
    perp = Qfull[:, k:]  # orthonormal basis of span(U)^⊥
    want = np.sort(np.linalg.eigvalsh(perp.T @ A @ perp))[::-1]
    ritz = lanczos(mv(A), n, iters=n, project=torch.from_numpy(U), generator=gen())
    assert len(ritz) == n - k  # capped at the complement's dimension
    np.testing.assert_allclose(ritz, want, atol=1e-10)
    # top of (I − UUᵀ) A (I − UUᵀ) itself (positive here, so the zero eigenvalues on span U do not matter)
    Pp = np.eye(n) - U @ U.T
    assert ritz[0] == pytest.approx(np.linalg.eigvalsh(Pp @ A @ Pp)[-1], abs=1e-10)


def test_projecting_out_the_top_eigenvector_leaves_the_second() -> None:
    A = sym(200, 6, top=(9.0, 4.0))
    _, V = np.linalg.eigh(A)
    u = torch.from_numpy(V[:, -1])
    ritz = lanczos(mv(A), 200, iters=20, project=u, generator=gen())
    assert ritz[0] == pytest.approx(4.0, abs=1e-8)
    assert lanczos(mv(A), 200, iters=20, generator=gen())[0] == pytest.approx(9.0, abs=1e-9)


def test_invariant_subspace_stops_early_and_exactly() -> None:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((50, 2))
    A = X @ np.diag([3.0, 1.0]) @ X.T  # rank 2: the Krylov space closes after 3 vectors
    ritz = lanczos(mv(A), 50, iters=20, generator=gen())
    assert len(ritz) <= 3
    np.testing.assert_allclose(ritz[:2], np.sort(np.linalg.eigvalsh(A))[::-1][:2], rtol=1e-10)


def test_start_vector_and_determinism() -> None:
    A = sym(25, 8)
    v0 = torch.ones(25, dtype=torch.float64)
    a = lanczos(mv(A), 25, iters=5, v0=v0)
    assert np.array_equal(a, lanczos(mv(A), 25, iters=5, v0=v0))
    assert np.array_equal(lanczos(mv(A), 25, iters=5, generator=gen(3)), lanczos(mv(A), 25, iters=5, generator=gen(3)))


def test_project_out() -> None:
    U = torch.eye(4, dtype=torch.float64)[:, :2]
    x = torch.arange(1.0, 5.0, dtype=torch.float64)
    assert torch.equal(project_out(x, U), torch.tensor([0.0, 0.0, 3.0, 4.0], dtype=torch.float64))
    assert project_out(x, None) is x


def test_bad_input_is_refused() -> None:
    A = sym(10, 9)
    with pytest.raises(SpectralEdgeError, match="generator"):
        lanczos(mv(A), 10, iters=3)  # never the global RNG
    with pytest.raises(ShapeMismatchError, match="projection"):
        lanczos(mv(A), 10, iters=3, project=torch.zeros(9, 2, dtype=torch.float64), generator=gen())
    with pytest.raises(ShapeMismatchError, match="start vector"):
        lanczos(mv(A), 10, iters=3, v0=torch.ones(9, dtype=torch.float64))
    with pytest.raises(SpectralEdgeError, match="zero"):
        lanczos(mv(A), 10, iters=3, v0=torch.zeros(10, dtype=torch.float64))
    with pytest.raises(SpectralEdgeError, match="iters"):
        lanczos(mv(A), 10, iters=0, generator=gen())
    with pytest.raises(SpectralEdgeError, match="NaN"):
        lanczos(lambda x: x * float("nan"), 10, iters=3, generator=gen())
