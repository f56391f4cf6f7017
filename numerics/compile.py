"""The one compilation path from sympy expressions to numerical functions, in numpy and in torch.

Every predictor formula lives once, as a sympy expression in ``theory/``; numerics get their functions from
``compile_expr`` and never re-type a formula. ``compile_expr(expr, args, backend)`` returns a callable of
``len(args)`` positional arguments:

- ``backend="numpy"``: inputs become float64 arrays (ints too, so ``x**-1`` never hits integer powers) and every
  output is broadcast to the common shape of the inputs, constants included.
- ``backend="torch"``: inputs that are not tensors become float64 tensors (on the device of the first tensor
  argument); outputs keep autograd. Sympy's ``Matrix`` output would be printed as ``torch.tensor([[...]])``, which
  detaches autograd (checked with sympy 1.14), so sequences are lambdified as a *flat list* and ``torch.stack``-ed.

Output shape by ``expr`` kind: one expression → one array/tensor; a sequence of n expressions → one array/tensor
of shape (n, *batch) (stacked along axis 0); a mapping name → expression → a dict with the same keys.

Compilation is cached (``functools.lru_cache``) on the ``srepr`` of the expressions and arguments and the
backend: ``srepr`` keeps what ``==`` may blur (symbol assumptions, Float vs Integer), and compiling the same
formula twice returns the same callable object. In front of it, a lookup by object identity makes repeated calls
with the same sympy objects (module-level exports) cost microseconds instead of an ``srepr``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
import sympy as sp
import torch

from numerics.errors import SpectralEdgeError

__all__ = ["Backend", "compile_expr"]

Backend = Literal["numpy", "torch"]
ExprLike = sp.Expr | Sequence[sp.Expr] | Mapping[str, sp.Expr]


class _Keyed:
    """A sympy object hashed and compared by its ``srepr``, so it can key ``lru_cache`` unambiguously."""

    __slots__ = ("key", "obj")

    def __init__(self, obj: Any) -> None:
        self.obj = obj
        self.key = sp.srepr(obj)

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and self.key == other.key


def compile_expr(expr: ExprLike, args: Sequence[sp.Symbol], backend: Backend = "numpy") -> Callable[..., Any]:
    """Compile ``expr`` into a function of ``args`` (positional, in this order) for ``backend``.

    Raises ``SpectralEdgeError`` if ``expr`` has free symbols not in ``args``, if ``args`` repeats a symbol, or
    for an unknown backend. See the module docstring for input conversion and output shapes.
    """
    if backend not in ("numpy", "torch"):
        raise SpectralEdgeError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    args = tuple(args)
    if len(set(args)) != len(args):
        raise SpectralEdgeError(f"compile_expr: repeated argument symbols in {args}")
    if isinstance(expr, Mapping):
        kind, names, exprs = "map", tuple(str(k) for k in expr), tuple(sp.sympify(e) for e in expr.values())
    elif isinstance(expr, sp.Basic):
        kind, names, exprs = "one", (), (expr,)
    elif isinstance(expr, Sequence) and not isinstance(expr, str):
        kind, names, exprs = "seq", (), tuple(sp.sympify(e) for e in expr)
    else:
        kind, names, exprs = "one", (), (sp.sympify(expr),)
    if not exprs:
        raise SpectralEdgeError("compile_expr: nothing to compile (empty sequence or mapping)")
    # Fast path: predictors pass the same module-level sympy objects on every call, and srepr costs ~1 ms for a
    # formula like the gap flow. Identity is a safe key while the entry holds the objects (ids cannot be reused).
    fast_key = (kind, names, tuple(map(id, exprs)), tuple(map(id, args)), backend)
    hit = _BY_IDENTITY.get(fast_key)
    if hit is not None:
        return hit[1]
    free = set().union(*(e.free_symbols for e in exprs)) - set(args)
    if free:
        raise SpectralEdgeError(f"compile_expr: free symbols {sorted(map(str, free))} are not among the arguments "
                                f"{[str(a) for a in args]}")
    fn = _compile(kind, names, tuple(_Keyed(e) for e in exprs), tuple(_Keyed(a) for a in args), backend)
    if len(_BY_IDENTITY) >= _FAST_MAX:  # many one-off expressions: start over rather than grow without bound
        _BY_IDENTITY.clear()
    _BY_IDENTITY[fast_key] = ((exprs, args), fn)
    return fn


_FAST_MAX = 1024
_BY_IDENTITY: dict[tuple[Any, ...], tuple[tuple[Any, ...], Callable[..., Any]]] = {}


@functools.lru_cache(maxsize=512)
def _compile(kind: str, names: tuple[str, ...], exprs: tuple[_Keyed, ...], args: tuple[_Keyed, ...],
             backend: Backend) -> Callable[..., Any]:
    symbols = [a.obj for a in args]
    flat = [e.obj for e in exprs]
    # Always a flat list: a sympy Matrix would print as torch.tensor([[...]]) and lose autograd.
    if backend == "numpy":
        raw = sp.lambdify(symbols, flat, modules="numpy", cse=True)
        prepare, finish = _numpy_inputs, _numpy_outputs
    else:
        raw = sp.lambdify(symbols, flat, modules=[_TORCH_OVERRIDES, "torch"], cse=True)
        prepare, finish = _torch_inputs, _torch_outputs

    def compiled(*values: Any) -> Any:
        if len(values) != len(symbols):
            raise SpectralEdgeError(f"compiled function takes {len(symbols)} arguments "
                                    f"({', '.join(map(str, symbols))}), got {len(values)}")
        inputs = prepare(values)
        outs = finish(raw(*inputs), inputs)
        if kind == "one":
            return outs[0]
        if kind == "map":
            return dict(zip(names, outs, strict=True))
        return np.stack(outs) if backend == "numpy" else torch.stack(outs)

    shown = flat[0] if kind == "one" else dict(zip(names, flat, strict=True)) if kind == "map" else flat
    compiled.__doc__ = f"Compiled ({backend}) from sympy: f({', '.join(map(str, symbols))}) = {shown}"
    return compiled


# --- numpy ---------------------------------------------------------------------------------------------------------


def _numpy_inputs(values: Sequence[Any]) -> list[np.ndarray]:
    out = []
    for v in values:
        a = np.asarray(v)
        out.append(a if np.iscomplexobj(a) else a.astype(np.float64, copy=False))
    return out


def _numpy_outputs(raw: Sequence[Any], inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    # Constants (and expressions free of some argument) come back unbroadcast; give every output the batch shape.
    shape = np.broadcast_shapes(*(a.shape for a in inputs)) if inputs else ()
    outs = [np.asarray(r, dtype=np.result_type(r, np.float64)) for r in raw]
    shape = np.broadcast_shapes(shape, *(o.shape for o in outs))
    return [np.broadcast_to(o, shape).copy() for o in outs]


# --- torch ---------------------------------------------------------------------------------------------------------


def _torch_inputs(values: Sequence[Any]) -> list[torch.Tensor]:
    device = next((v.device for v in values if isinstance(v, torch.Tensor)), None)
    out = []
    for v in values:
        if isinstance(v, torch.Tensor):
            # Integer tensors would make x**-1 fail and truncate; promote, keeping float dtypes (and autograd).
            out.append(v if v.is_floating_point() or v.is_complex() else v.to(torch.float64))
        else:
            out.append(torch.as_tensor(v, dtype=torch.float64, device=device))
    return out


def _torch_outputs(raw: Sequence[Any], inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    ref = inputs[0] if inputs else torch.zeros((), dtype=torch.float64)
    # The dtype torch would give an expression of all inputs (0-dim tensors, i.e. converted scalars, do not
    # promote dimensioned ones): float32 arrays stay float32 even if a scalar-only output came out float64.
    probes = [torch.zeros((1,) if x.dim() else (), dtype=x.dtype, device="meta") for x in inputs]
    dtype = functools.reduce(torch.add, probes).dtype if probes else ref.dtype
    outs = [_as_output(r, dtype, ref.device) for r in raw]
    # broadcast_tensors returns expanded views; autograd flows through them.
    return list(torch.broadcast_tensors(*inputs, *outs)[len(inputs):]) if inputs else outs


def _as_output(r: Any, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if not isinstance(r, torch.Tensor):
        return torch.as_tensor(r, dtype=dtype, device=device)  # a constant expression
    return r.to(dtype) if r.is_floating_point() and r.dtype != dtype else r


def _tensor_pair(a: Any, b: Any) -> tuple[torch.Tensor, torch.Tensor]:
    ref = a if isinstance(a, torch.Tensor) else b
    return (torch.as_tensor(a, dtype=ref.dtype, device=ref.device),
            torch.as_tensor(b, dtype=ref.dtype, device=ref.device))


# The torch printer writes sympy Max/Min as max(a, b)/min(a, b), which torch reads as a reduction when b is a
# Python number (torch.max(x, 0) is max over dim 0). Elementwise maximum/minimum is what sympy means.
_TORCH_OVERRIDES: dict[str, Callable[..., Any]] = {
    "max": lambda a, b: torch.maximum(*_tensor_pair(a, b)),
    "min": lambda a, b: torch.minimum(*_tensor_pair(a, b)),
}
