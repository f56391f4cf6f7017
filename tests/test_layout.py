"""ParamLayout: selection, atoms, groups, gather/scatter round trip, and Gram invariance to the flattening order."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from torch import nn

from numerics.errors import ShapeMismatchError, SpectralEdgeError
from numerics.gram import RollingGram
from numerics.layout import ParamLayout, attention_selector, clean_name, per_layer_groups, select


class Attn(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d, bias=False)
        self.v_proj = nn.Linear(d, d)
        self.o_proj = nn.Linear(d, d)


class Block(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.self_attn = Attn(d)
        self.mlp = nn.Linear(d, 2 * d)


class Tiny(nn.Module):
    def __init__(self, d: int = 4, n_layers: int = 2, vocab: int = 7) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList([Block(d) for _ in range(n_layers)])
        self.head = nn.Linear(d, vocab, bias=False)
        self.head.weight = self.embed.weight  # tied: named_parameters() lists it once
        self.frozen = nn.Parameter(torch.ones(3), requires_grad=False)


@pytest.fixture
def model() -> Tiny:
    torch.manual_seed(0)
    return Tiny()


def _model_order_vector(model: nn.Module, names: list[str]) -> np.ndarray:
    params = dict(model.named_parameters())
    return np.concatenate([params[n].detach().double().numpy().ravel() for n in names])


def test_default_layout_is_every_trainable_parameter(model):
    layout = ParamLayout.from_model(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert "frozen" not in trainable and "head.weight" not in trainable
    assert layout.P == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert layout.group_dims() == {"all": layout.P}
    assert layout.param_names("all") == trainable  # one membership set → one atom in model order
    assert len(layout.atoms) == 1 and layout.groups == {"all": [0]}


def test_attention_selector_weights_only(model):
    sel = attention_selector()
    chosen = [n for n, p in model.named_parameters() if sel(n, p)]
    assert chosen == [f"layers.{i}.self_attn.{m}_proj.weight" for i in range(2) for m in "qkvo"]
    mha = nn.MultiheadAttention(8, 2)
    packed = [n for n, p in mha.named_parameters() if attention_selector(("in_proj", "out_proj"))(n, p)]
    assert packed == ["in_proj_weight", "out_proj.weight"]


def test_per_layer_groups(model):
    groups = per_layer_groups(model)
    assert list(groups) == ["layer.0", "layer.1"]
    assert all(n.startswith("layers.1.") for n in groups["layer.1"])
    attn_only = per_layer_groups(model, within=attention_selector())
    assert attn_only["layer.0"] == [f"layers.0.self_attn.{m}_proj.weight" for m in "qkvo"]


def test_overlapping_groups_become_contiguous_atoms(model):
    groups = {"attn": attention_selector(), **per_layer_groups(model), "embed": ["embed.weight"]}
    layout = ParamLayout.from_model(model, groups)
    # Membership sets: {attn, layer.0}, {layer.0}, {attn, layer.1}, {layer.1}, {embed} → five atoms, in order of
    # first appearance (layer.0's norm comes before its attention weights).
    assert [sorted(a.groups) for a in layout.atoms] == [
        ["embed"], ["layer.0"], ["attn", "layer.0"], ["layer.1"], ["attn", "layer.1"]]
    assert [a.start for a in layout.atoms] == [0, *[a.end for a in layout.atoms[:-1]]]
    assert layout.atoms[-1].end == layout.P
    assert layout.groups["attn"] == [2, 4]
    for g, selector_names in [("attn", [n for n, p in model.named_parameters() if attention_selector()(n, p)]),
                              ("layer.1", per_layer_groups(model)["layer.1"])]:
        assert sorted(layout.param_names(g)) == sorted(selector_names)
        assert layout.group_dims()[g] == sum(dict(model.named_parameters())[n].numel() for n in selector_names)
    # Only the union of the groups is stored: head/embed tied weight is in "embed", nothing else is left out here.
    assert layout.P == sum(p.numel() for p in model.parameters() if p.requires_grad)


def test_gather_scatter_round_trip(model):
    groups = {"attn": attention_selector(), "layer.0": per_layer_groups(model)["layer.0"]}
    layout = ParamLayout.from_model(model, groups)
    out = layout.new_flat()
    ptr = out.data_ptr()
    assert layout.gather(out) is out and out.data_ptr() == ptr  # filled in place
    names = layout.param_names()
    assert np.array_equal(out.double().numpy(), _model_order_vector(model, names))

    new = torch.randn(layout.P)
    layout.scatter(new)
    assert torch.equal(layout.gather(torch.empty(layout.P)), new)
    params = dict(model.named_parameters())
    for name, view in layout.views(new):
        assert torch.equal(params[name].detach(), view)
    # parameters outside the groups are untouched by scatter
    assert not any(n.startswith("embed") or n.startswith("layers.1.mlp") for n in names)

    as64 = layout.gather(torch.empty(layout.P, dtype=torch.float64))
    assert torch.equal(as64, new.double())


def test_gather_checks_buffer(model):
    layout = ParamLayout.from_model(model)
    with pytest.raises(ShapeMismatchError, match=f"\\({layout.P},\\)"):
        layout.gather(torch.empty(layout.P + 1))
    with pytest.raises(ShapeMismatchError):
        layout.scatter(torch.empty(1, layout.P))


def test_bad_group_definitions(model):
    with pytest.raises(SpectralEdgeError, match="not trainable"):
        ParamLayout.from_model(model, {"x": ["frozen"]})
    with pytest.raises(SpectralEdgeError, match=r"selects no.*embed\.weight"):  # lists the names there are
        ParamLayout.from_model(model, {"x": "nothing.weight"})
    with pytest.raises(SpectralEdgeError, match="selects no"):
        ParamLayout.from_model(model, {"x": lambda n, p: False})
    with pytest.raises(SpectralEdgeError, match="regular expression"):
        ParamLayout.from_model(model, {"x": "re:(unclosed"})
    with pytest.raises(SpectralEdgeError, match="selector"):
        ParamLayout.from_model(model, {"x": 3})
    with pytest.raises(KeyError):
        ParamLayout.from_model(model).param_names("attn")


def test_gram_is_invariant_to_flattening_order(model):
    """The layout's atom order differs from model order, yet the update Gram is identical (permutation invariance)."""
    groups = {"attn": attention_selector(), **per_layer_groups(model), "embed": ["embed.weight"]}
    layout = ParamLayout.from_model(model, groups)
    model_order = [n for n, p in model.named_parameters() if p.requires_grad]
    assert layout.param_names() != model_order
    gram = RollingGram(4, layout.atom_sizes, layout.groups, dtype=torch.float64)
    plain = RollingGram(4, layout.P, dtype=torch.float64)
    theta = layout.gather(torch.empty(layout.P, dtype=torch.float64))
    prev_model_order = _model_order_vector(model, model_order)
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))
        new = layout.gather(torch.empty(layout.P, dtype=torch.float64))
        gram.push(new - theta)
        theta = new
        cur = _model_order_vector(model, model_order)
        plain.push(torch.from_numpy(cur - prev_model_order))
        prev_model_order = cur
    G_all = sum(gram.gram(g) for g in ("embed", "layer.0", "layer.1"))  # these groups partition the layout
    assert np.allclose(G_all, plain.gram(), rtol=1e-12, atol=0)


@pytest.mark.parametrize("selector", [
    "layers.*.self_attn.*_proj.weight",                        # glob
    "*self_attn*weight",                                       # glob, the README's form
    re.compile(r"self_attn\.\w_proj\.weight$"),                # compiled regex
    r"re:self_attn\.[qkvo]_proj\.weight$",                     # "re:" string
    [f"layers.{i}.self_attn.{m}_proj.weight" for i in range(2) for m in "qkvo"],   # names
    attention_selector(),                                      # callable
])
def test_selector_forms_select_the_same_parameters(model, selector):
    want = [f"layers.{i}.self_attn.{m}_proj.weight" for i in range(2) for m in "qkvo"]
    layout = ParamLayout.from_model(model, {"attn": selector})
    assert layout.param_names("attn") == want
    assert select(model, selector) == want


class _Wrapper(nn.Module):
    """What DDP / DataParallel (``module.``) and torch.compile (``_orig_mod.``) do to parameter names."""

    def __init__(self, inner: nn.Module, attr: str) -> None:
        super().__init__()
        setattr(self, attr, inner)


@pytest.mark.parametrize("attrs", [["module"], ["_orig_mod"], ["module", "_orig_mod"], ["_orig_mod", "module"]])
def test_wrapper_prefixes_are_stripped(model, attrs):
    wrapped: nn.Module = model
    for attr in attrs:
        wrapped = _Wrapper(wrapped, attr)
    raw = [n for n, p in wrapped.named_parameters() if p.requires_grad]
    assert all(n.startswith(f"{attrs[-1]}.") for n in raw)
    bare = ParamLayout.from_model(model, {"attn": attention_selector(), "emb": ["embed.weight"], "all": "*"})
    layout = ParamLayout.from_model(wrapped, {"attn": attention_selector(), "emb": ["embed.weight"], "all": "*"})
    for g in ("attn", "emb", "all"):
        assert layout.param_names(g) == bare.param_names(g)  # the stored names are the clean ones
    # names given with the wrapper's prefix select the same parameter
    prefixed = ParamLayout.from_model(wrapped, {"emb": [f"{attrs[-1]}.embed.weight"]})
    assert prefixed.param_names("emb") == ["embed.weight"]
    assert clean_name("module._orig_mod.layers.0.norm.weight") == "layers.0.norm.weight"
    assert clean_name("encoder._orig_mod.fc.weight") == "encoder.fc.weight"
    assert per_layer_groups(wrapped) == per_layer_groups(model)


def test_empty_selection_lists_some_names():
    big = nn.Sequential(*[nn.Linear(2, 2) for _ in range(10)])
    with pytest.raises(SpectralEdgeError) as info:
        ParamLayout.from_model(big, {"attn": "*attn*weight"})
    msg = str(info.value)
    assert "'attn'" in msg and "'*attn*weight'" in msg and "0.weight" in msg and "20 in all" in msg
