"""Parameter layout: selected named parameters of a model as one flat vector θ ∈ ℝ^P, with named groups.

The spectral engine works on flat vectors (θ_s, δ_t = θ_{s_t} − θ_{s_{t−1}}, theory reference §1.1). A *group* is a
named subset of parameters whose update Gram is wanted separately ("all", "attn" = W_Q, W_K, W_V, W_O of all layers,
"layer.N"). Groups may overlap, so the layout orders tensors by *group-membership set* and merges consecutive
tensors with the same membership into an *atom*: a contiguous slice [start, end) of the flat vector. Every group is
a union of atoms, so one pass over memory per atom yields every group's Gram (`numerics.gram.RollingGram`):
G_group = Σ_{atom ∈ group} X_atom X_atomᵀ.

Flattening order is irrelevant to every quantity the package computes: the Gram G = X Xᵀ is invariant under any
permutation of the P coordinates (X ↦ XΠ, theory reference §1.1 and §6.2), so the order chosen here is only a memory
layout.

Selectors: a predicate ``(name, param) -> bool``, a sequence of names, a glob string (``"*"``, ``"*attn*weight"``,
matched with ``fnmatch.fnmatchcase``), a compiled regex or ``"re:<pattern>"`` (``re.search``). Names are *clean*:
the wrapper prefixes ``_orig_mod.`` (``torch.compile``) and ``module.`` (DDP / ``DataParallel``) are stripped before
matching, and the layout stores the clean names, so a compiled or distributed model selects and records the same
names as the bare one. A group that selects nothing raises, listing some of the names there are.

Which parameters the author flattens [C, P]: all trainable tensors for language models (GPT-2 skips the tied
`lm_head.weight`; `named_parameters()` already drops tied duplicates), attention weights only for the grokking
tasks (`attention_selector`), the first-layer weight only for the Tian Li₂ setup.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from numerics.errors import ShapeMismatchError, SpectralEdgeError

__all__ = ["Atom", "ParamLayout", "Selector", "attention_selector", "clean_name", "per_layer_groups", "select"]

Selector = Callable[[str, Tensor], bool] | Sequence[str] | str | re.Pattern[str]
"""A group definition: a predicate on (clean parameter name, tensor), a sequence of names, a glob string, a compiled
regex or ``"re:<pattern>"``."""

_WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def clean_name(name: str) -> str:
    """``name`` without wrapper prefixes: leading ``_orig_mod.`` (torch.compile) / ``module.`` (DDP, DataParallel),
    in any nesting (``module._orig_mod.fc.weight`` → ``fc.weight``), and inner ``._orig_mod.`` components (a
    compiled submodule)."""
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name.replace("._orig_mod.", ".")


@dataclass(frozen=True)
class Atom:
    """A maximal run of tensors with the same group membership: the flat slice [start, end)."""

    start: int
    end: int
    groups: frozenset[str]
    names: tuple[str, ...]

    @property
    def size(self) -> int:
        return self.end - self.start


def attention_selector(
    names: Sequence[str] = ("q_proj", "k_proj", "v_proj", "o_proj"),
) -> Callable[[str, Tensor], bool]:
    """Select attention projection *weights* (never biases) whose dotted name has a component in `names`.

    Matches `...q_proj.weight` and, for packed layouts, `...<name>_weight`; e.g. `names=("in_proj", "out_proj")`
    selects `nn.MultiheadAttention`'s `in_proj_weight` (W_Q, W_K, W_V stacked) and `out_proj.weight` (W_O).
    The grokking-task spectra of the author use exactly these four matrices per layer [C, P].
    """
    wanted = frozenset(names)

    def select(name: str, param: Tensor) -> bool:
        parts = name.split(".")
        if parts[-1] == "weight":
            return any(p in wanted for p in parts[:-1])
        return parts[-1].endswith("_weight") and parts[-1][: -len("_weight")] in wanted

    return select


def per_layer_groups(
    model: nn.Module, pattern: str = r"layers\.(\d+)\.", *, within: Selector | None = None
) -> dict[str, list[str]]:
    """Groups {"layer.0": [names…], "layer.1": …} from the layer index captured by `pattern` (first group).

    Only trainable parameters are considered, under their clean names; `within` (optional) further restricts each
    layer, e.g. `within=attention_selector()` gives per-layer attention groups. Layers are ordered by their index.
    """
    regex = re.compile(pattern)
    keep = _as_predicate(within) if within is not None else None
    layers: dict[int, list[str]] = {}
    for name, param in _named_trainable(model):
        m = regex.search(name)
        if m is None or (keep is not None and not keep(name, param)):
            continue
        layers.setdefault(int(m.group(1)), []).append(name)
    return {f"layer.{i}": layers[i] for i in sorted(layers)}


def _as_predicate(selector: Selector) -> Callable[[str, Tensor], bool]:
    """A selector as a predicate on (clean name, tensor); see the module docstring for the accepted forms."""
    if isinstance(selector, re.Pattern):
        return lambda name, _param: selector.search(name) is not None
    if isinstance(selector, str):
        if selector.startswith("re:"):
            try:
                regex = re.compile(selector[3:])
            except re.error as exc:
                raise SpectralEdgeError(f"selector {selector!r} is not a valid regular expression: {exc}") from None
            return lambda name, _param: regex.search(name) is not None
        return lambda name, _param: fnmatch.fnmatchcase(name, selector)
    if callable(selector):
        return selector
    if isinstance(selector, Iterable):
        chosen = frozenset(clean_name(str(n)) for n in selector)
        return lambda name, _param: name in chosen
    raise SpectralEdgeError(f"a group selector is a glob or 're:' string, a compiled regex, a list of names or a "
                            f"callable (name, param) -> bool; got {type(selector).__name__}")


def _named_trainable(model: nn.Module) -> list[tuple[str, Tensor]]:
    """(clean name, parameter) of every trainable parameter, in model order; clean names must stay distinct."""
    named: list[tuple[str, Tensor]] = []
    seen: dict[str, str] = {}
    for raw, param in model.named_parameters():
        if not param.requires_grad:
            continue
        name = clean_name(raw)
        if name in seen:
            raise SpectralEdgeError(f"parameters {seen[name]!r} and {raw!r} have the same name {name!r} once the "
                                    "wrapper prefixes (_orig_mod., module.) are stripped")
        seen[name] = raw
        named.append((name, param))
    return named


def _some_names(names: Sequence[str], n: int = 8) -> str:
    shown = ", ".join(names[:n])
    return f"{shown}, … ({len(names)} in all)" if len(names) > n else shown


def select(model: nn.Module, selector: Selector) -> list[str]:
    """Clean names of the trainable parameters of ``model`` that ``selector`` picks (model order)."""
    keep = _as_predicate(selector)
    return [n for n, p in _named_trainable(model) if keep(n, p)]


def _describe(selector: Selector) -> str:
    if isinstance(selector, str):
        return repr(selector)
    if isinstance(selector, re.Pattern):
        return f"re.compile({selector.pattern!r})"
    if callable(selector):
        return getattr(selector, "__name__", type(selector).__name__)
    return repr(list(selector))


class ParamLayout:
    """Selected parameters → one flat vector of length P, ordered into atoms; groups are lists of atom indices.

    Build with `ParamLayout.from_model`. Only parameters in the union of the groups are stored. Tensors are ordered
    so that equal group-membership sets are contiguous (sets in order of first appearance in the model, tensors in
    model order within a set), then consecutive tensors with equal membership are merged into atoms.
    """

    def __init__(self, named_params: Sequence[tuple[str, Tensor]], membership: Mapping[str, frozenset[str]],
                 group_names: Sequence[str]) -> None:
        self.group_names: tuple[str, ...] = tuple(group_names)
        by_set: dict[frozenset[str], list[tuple[str, Tensor]]] = {}
        for name, param in named_params:
            groups = membership.get(name, frozenset())
            if groups:
                by_set.setdefault(groups, []).append((name, param))

        self._tensors: list[tuple[str, Tensor, int, int]] = []  # (name, param, start, end)
        atoms: list[Atom] = []
        offset = 0
        for groups, members in by_set.items():  # dicts keep first-appearance order
            start = offset
            for name, param in members:
                self._tensors.append((name, param, offset, offset + param.numel()))
                offset += param.numel()
            if offset > start:  # an all-empty run of zero-size tensors would be an empty atom
                atoms.append(Atom(start, offset, groups, tuple(n for n, _ in members)))
        self.atoms: tuple[Atom, ...] = tuple(atoms)
        self.P: int = offset
        """Total number of stored coordinates Σ_atoms (end − start)."""
        self.groups: dict[str, list[int]] = {
            g: [i for i, a in enumerate(self.atoms) if g in a.groups] for g in self.group_names
        }
        empty = [g for g, idx in self.groups.items() if not idx]
        if empty:
            raise SpectralEdgeError(f"groups select no (non-empty) trainable parameter: {empty}")

    @classmethod
    def from_model(cls, model: nn.Module, groups: Mapping[str, Selector] | None = None) -> ParamLayout:
        """Layout of `model`'s trainable parameters; default groups {"all": every trainable parameter}.

        Each group is a selector (module docstring): a predicate `(name, tensor) -> bool`, a sequence of names
        (unknown names raise), a glob, a regex. Names are matched and stored without wrapper prefixes.
        """
        named = _named_trainable(model)
        if groups is None:
            groups = {"all": lambda _n, _p: True}
        known = [n for n, _ in named]
        membership: dict[str, set[str]] = {n: set() for n in known}
        for gname, selector in groups.items():
            if isinstance(selector, Iterable) and not isinstance(selector, str | re.Pattern) and not callable(selector):
                unknown = sorted({clean_name(str(n)) for n in selector} - set(known))
                if unknown:
                    raise SpectralEdgeError(f"group {gname!r} names parameters that are not trainable parameters "
                                            f"of the model: {unknown}; trainable parameters: {_some_names(known)}")
            keep = _as_predicate(selector)
            hits = 0
            for name, param in named:
                if keep(name, param):
                    membership[name].add(gname)
                    hits += param.numel() > 0
            if not hits:
                raise SpectralEdgeError(f"group {gname!r} (selector {_describe(selector)}) selects no non-empty "
                                        f"trainable parameter; trainable parameters: {_some_names(known) or 'none'}")
        return cls(named, {n: frozenset(s) for n, s in membership.items()}, list(groups))

    # --- shape information -------------------------------------------------------------------------------------

    @property
    def atom_sizes(self) -> list[int]:
        """Sizes of the atoms, the `atom_sizes` argument of `RollingGram`."""
        return [a.size for a in self.atoms]

    @property
    def atom_slices(self) -> list[tuple[int, int]]:
        return [(a.start, a.end) for a in self.atoms]

    def group_dims(self) -> dict[str, int]:
        """{group: P_g} with P_g = Σ_{atom ∈ g} |atom| (the P to hand to Marchenko–Pastur edges, theory reference
        §1.7)."""
        return {g: sum(self.atoms[i].size for i in idx) for g, idx in self.groups.items()}

    def parameters(self) -> list[Tensor]:
        """The stored parameter tensors, in flat-vector order."""
        return [param for _name, param, _start, _end in self._tensors]

    def param_names(self, group: str | None = None) -> list[str]:
        """Names of the parameters of `group` (all stored parameters if None), in flat-vector order."""
        if group is not None and group not in self.groups:
            raise KeyError(f"unknown group {group!r}; groups are {list(self.groups)}")
        return [n for a in self.atoms if group is None or group in a.groups for n in a.names]

    # --- data movement -----------------------------------------------------------------------------------------

    def _check_flat(self, flat: Tensor, what: str) -> None:
        if flat.dim() != 1 or flat.numel() != self.P:
            raise ShapeMismatchError(f"{what}: expected a flat vector of shape ({self.P},), got {tuple(flat.shape)}")

    @torch.no_grad()
    def gather(self, out: Tensor) -> Tensor:
        """Write the current parameter values into the preallocated flat buffer `out` (length P) and return it.

        One `copy_` per tensor into a view of `out`: no `torch.cat`, no P-sized temporary, and no host round trip
        when `out` lives on the parameters' device. `out` may have another dtype (the copy casts).
        """
        self._check_flat(out, "gather")
        for _name, param, start, end in self._tensors:
            out[start:end].view(param.shape).copy_(param)
        return out

    @torch.no_grad()
    def scatter(self, flat: Tensor) -> None:
        """Inverse of `gather`: write the flat vector back into the parameters (e.g. to restore θ)."""
        self._check_flat(flat, "scatter")
        for _name, param, start, end in self._tensors:
            param.copy_(flat[start:end].view(param.shape))

    def new_flat(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> Tensor:
        """An uninitialised flat buffer of length P (dtype/device default to the first parameter's)."""
        first = self._tensors[0][1]
        return torch.empty(self.P, dtype=dtype or first.dtype, device=device or first.device)

    def views(self, flat: Tensor) -> Iterable[tuple[str, Tensor]]:
        """(name, view of `flat` shaped like the parameter) pairs: read a flat δ per parameter without copies."""
        self._check_flat(flat, "views")
        for name, param, start, end in self._tensors:
            yield name, flat[start:end].view(param.shape)

    def __repr__(self) -> str:
        dims = ", ".join(f"{g}={d}" for g, d in self.group_dims().items())
        return f"ParamLayout(P={self.P}, atoms={self.atom_sizes}, groups: {dims})"
