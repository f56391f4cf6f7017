"""verify.tasks.modular and verify.harness.config: data, ops, split independence, the parameter count, validation."""

from __future__ import annotations

import json

import pytest
import torch
from pydantic import ValidationError

from verify.harness.config import load_config, make_run_config, preset, preset_names, save_config
from verify.tasks import get_task
from verify.tasks.modular import (
    OPS,
    ModelConfig,
    ModularTransformer,
    all_pairs,
    attention_weight_names,
    build_model,
    make_dataset,
)


@pytest.mark.parametrize("op", sorted(OPS))
def test_dataset_sizes(op: str) -> None:
    p = 7
    x, y = all_pairs(p, op)
    n = (p - 1) ** 2 if op == "mul" else p**2
    assert x.shape == (n, 2) and y.shape == (n,)
    assert x.dtype == y.dtype == torch.int64
    assert int(y.min()) >= 0 and int(y.max()) < p
    assert len({tuple(r) for r in x.tolist()}) == n  # every pair exactly once
    if op == "mul":
        assert int(x.min()) == 1  # a, b ∈ 1..p−1 as the author


def test_dataset_sizes_p97() -> None:
    assert len(all_pairs(97, "add")[1]) == 9409
    assert len(all_pairs(97, "mul")[1]) == 9216
    _, train_y, _, test_y = make_dataset(97, "add", 0.5, seed=0)
    assert len(train_y) == 4704 and len(test_y) == 4705


# hand-worked: (a, b) -> expected, mod 97
HAND = {
    "add": [((50, 60), 13), ((0, 0), 0), ((96, 1), 0)],
    "sub": [((3, 5), 95), ((5, 3), 2), ((0, 96), 1)],
    "mul": [((10, 10), 3), ((96, 96), 1), ((2, 49), 1)],
    "x2_y2": [((10, 10), 6), ((1, 2), 5), ((96, 0), 1)],
    "x2_xy_y2": [((1, 2), 7), ((10, 10), 9), ((96, 1), 1)],
    "x3_xy": [((2, 3), 14), ((5, 5), 53), ((96, 96), 0)],
}


@pytest.mark.parametrize("op", sorted(HAND))
def test_op_hand_examples(op: str) -> None:
    x, y = all_pairs(97, op)
    table = {tuple(r): int(v) for r, v in zip(x.tolist(), y, strict=True)}
    for pair, expected in HAND[op]:
        assert table[pair] == expected, (op, pair)


def test_unknown_op_and_bad_fraction() -> None:
    with pytest.raises(ValueError, match="unknown op"):
        all_pairs(11, "div")
    with pytest.raises(ValueError, match="train_fraction"):
        make_dataset(3, "add", 0.05, seed=0)


def test_split_is_a_partition_and_depends_only_on_data_seed() -> None:
    a = make_dataset(23, "add", 0.5, seed=1)
    b = make_dataset(23, "add", 0.5, seed=1)
    c = make_dataset(23, "add", 0.5, seed=2)
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    assert not torch.equal(a[0], c[0])
    seen = {tuple(r) for r in torch.cat([a[0], a[2]]).tolist()}
    assert len(seen) == 23**2
    # through the config: changing init/batch/diag seeds leaves the split alone
    task, cfg = get_task("modular"), preset("tiny")
    base = task.make_data(cfg.task_config, cfg.generator("data"))
    other = cfg.with_overrides(init_seed=7, batch_seed=8, diag_seed=9)
    moved = task.make_data(other.task_config, other.generator("data"))
    assert all(torch.equal(u, v) for s in ("train", "test") for u, v in zip(base[s], moved[s], strict=True))


def test_parameter_count_matches_author() -> None:
    model = build_model(ModelConfig(p=97, n_layers=2, d_model=128, n_heads=4, d_ff=256), seed=0)
    assert sum(p.numel() for p in model.parameters()) == 290_401  # grok_sweep.py total_params
    three = build_model(ModelConfig(n_layers=3), seed=0)
    assert sum(p.numel() for p in three.parameters()) == 422_881  # the author's slow regime


def test_forward_shape_and_attention_names() -> None:
    model = build_model(ModelConfig(p=11, n_layers=2, d_model=16, n_heads=4, d_ff=32), seed=0)
    assert model(torch.tensor([[1, 2], [3, 4], [10, 0]])).shape == (3, 11)
    names = attention_weight_names(model)
    assert names == [f"layers.{i}.attn.{w}_proj.weight" for i in range(2) for w in "qkvo"]
    params = dict(model.named_parameters())
    assert all(params[n].shape == (16, 16) for n in names)


def test_init_uses_only_its_seed() -> None:
    cfg = ModelConfig(p=11, n_layers=1, d_model=16, n_heads=2, d_ff=32)
    torch.manual_seed(0)
    a = build_model(cfg, seed=3)
    state = torch.get_rng_state()
    torch.manual_seed(123)  # a different global RNG state must not matter
    b = build_model(cfg, seed=3)
    c = build_model(cfg, seed=4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["tok_emb.weight"], sc["tok_emb.weight"])
    torch.manual_seed(0)
    build_model(cfg, seed=3)
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not consumed
    assert isinstance(a, ModularTransformer)


# --- config validation -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"train_fraction": 1.0}, "train_fraction"),
        ({"train_fraction": 0.0}, "train_fraction"),
        ({"monitor": {"window": 1}}, "window"),
        ({"monitor": {"every": 0}}, "every"),
        ({"eval_every": 0}, "eval_every"),
        ({"op": "div"}, "op"),
        ({"weight_decay": -0.1}, "weight_decay"),
        ({"n_heads": 3}, "n_heads"),
        ({"betas": (0.9, 1.0)}, "betas"),
        ({"lr": 0.0}, "lr"),
        ({"learning_rate": 1e-3}, "learning_rate"),
        ({"monitor": {"windw": 5}}, "windw"),
    ],
)
def test_config_validation_names_the_field(overrides: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_run_config("modular", overrides)
    locs = [loc for err in info.value.errors() for loc in err["loc"]]
    assert field in locs, info.value
    assert field in str(info.value)


def test_presets_are_valid_and_round_trip_json(tmp_path) -> None:
    assert {"mod97", "tiny", "demo"} <= set(preset_names("modular"))
    author = preset("mod97")
    tc = author.task_config
    assert (tc.p, tc.op, tc.n_layers, tc.d_model, tc.n_heads, tc.d_ff) == (97, "add", 2, 128, 4, 256)
    assert (author.lr, author.betas, author.weight_decay, author.batch_size, author.grad_clip) == (1e-3, (0.9, 0.98),
                                                                                                   1.0, 512, 1.0)
    assert tc.train_fraction == 0.5 and author.early_stop is not None and author.early_stop.patience == 3
    for name in preset_names("modular"):
        cfg = preset(name)
        path = save_config(cfg, tmp_path / f"{name}.json")
        assert load_config(path) == cfg
    # unknown keys in a JSON file are errors too
    bad = json.loads((tmp_path / "tiny.json").read_text()) | {"wd": 0.0}
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValidationError, match="wd"):
        load_config(tmp_path / "bad.json")
    with pytest.raises(ValidationError, match="max_steps"):
        preset("tiny", max_steps=0)
    with pytest.raises(KeyError, match="unknown preset"):
        preset("huge")
    # presets are copies: mutating one must not leak into the next
    cfg = preset("tiny")
    cfg.max_steps = 5
    cfg.task_config.p = 7
    assert preset("tiny").max_steps != 5 and preset("tiny").task_config.p == 59


def test_with_seed_sets_all_four_streams() -> None:
    cfg = preset("tiny").with_seed(7)
    assert (cfg.data_seed, cfg.init_seed, cfg.batch_seed, cfg.diag_seed) == (7, 7, 7, 7)
