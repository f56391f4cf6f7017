"""verify.tasks.dyck: the author's Dyck-1 generator, split independence, the model's counts, masking, causality."""

from __future__ import annotations

import random

import pytest
import torch
from pydantic import ValidationError

from verify.tasks.base import Task
from verify.tasks.dyck import (
    CLOSE,
    DYCK,
    IGNORE,
    OPEN,
    PAD,
    PRESETS,
    RECOMMENDED,
    DyckConfig,
    DyckTransformer,
    dyck_sequence,
    make_dataset,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = DyckConfig(n_sequences=300, n_train=20, n_layers=2, d_model=32, n_heads=4, d_ff=64)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_task_protocol_and_presets() -> None:
    assert isinstance(DYCK, Task)
    assert DYCK.name == "dyck" and DYCK.config_class is DyckConfig
    assert DYCK.run_label(DyckConfig()) == "d128-l2" and DYCK.run_label(DyckConfig(**PRESETS["tiny"])) == "d64-l1"
    assert {"author", "tiny"} <= set(PRESETS) and {"author", "tiny"} <= set(RECOMMENDED)
    for overrides in PRESETS.values():
        DyckConfig(**overrides)  # valid
    author = DyckConfig(**PRESETS["author"])
    assert (author.n_sequences, author.n_train, author.max_pairs, author.ctx_len, author.p_open) == (5050, 50, 12, 24,
                                                                                                     0.55)
    assert (author.n_layers, author.d_model, author.n_heads, author.d_ff, author.n_positions) == (2, 128, 4, 256, 48)
    run = RECOMMENDED["author"]
    assert (run["lr"], run["betas"], run["weight_decay"], run["batch_size"], run["grad_clip"]) == (1e-3, (0.9, 0.98),
                                                                                                   1.0, 50, 1.0)
    assert run["monitor"]["window"] == 3 and run["monitor"]["every"] == 200
    assert RECOMMENDED["author_control"]["weight_decay"] == 0.0
    assert RECOMMENDED["author_dense"]["monitor"]["every"] == 50


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"n_train": 5050}, "n_train"), ({"n_heads": 3}, "n_heads"), ({"ctx_len": 64}, "n_positions"),
     ({"p_open": 1.0}, "p_open"), ({"batch": 3}, "batch")],
)
def test_config_rejects_bad_values(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DyckConfig(**overrides)


def test_generator_sequences_are_balanced_with_correct_depths() -> None:
    rng = random.Random(0)
    lengths = []
    for _ in range(2000):
        seq = dyck_sequence(12, 0.55, rng)
        depth = 0
        for tok in seq:
            depth += 1 if tok == OPEN else -1
            assert 0 <= depth <= 12
        assert depth == 0 and len(seq) % 2 == 0
        lengths.append(len(seq) // 2)
    assert set(lengths) == set(range(1, 13))  # n_pairs ~ U{1..12}
    assert abs(sum(lengths) / len(lengths) - 6.5) < 0.3


def test_generator_draw_order_matches_author() -> None:
    # Hand-traced against [P] gen_balanced_parentheses: randint(1, max_pairs), then one random() per step where
    # both moves are legal; forced moves draw nothing.
    class Scripted(random.Random):
        def __init__(self, n_pairs: int, coins: list[float]) -> None:
            super().__init__(0)
            self.n_pairs, self.coins, self.calls = n_pairs, list(coins), 0

        def randint(self, a: int, b: int) -> int:
            return self.n_pairs

        def random(self) -> float:
            self.calls += 1
            return self.coins.pop(0)

    rng = Scripted(3, [0.1, 0.9, 0.3, 0.0])  # ( forced; coins: open, close, open; then ) ) forced
    assert dyck_sequence(12, 0.55, rng) == [OPEN, OPEN, CLOSE, OPEN, CLOSE, CLOSE]
    assert rng.calls == 3
    rng = Scripted(2, [0.9, 0.0])  # ( forced, coin: close, ( forced, ) forced
    assert dyck_sequence(12, 0.55, rng) == [OPEN, CLOSE, OPEN, CLOSE]
    assert rng.calls == 1


def test_dataset_shapes_targets_and_split() -> None:
    cfg = DyckConfig()
    data = make_dataset(cfg, seed=0)
    (xtr, ytr), (xte, yte) = data["train"], data["test"]
    assert xtr.shape == ytr.shape == (50, 24) and xte.shape == yte.shape == (5000, 24)
    x, y = torch.cat([xtr, xte]), torch.cat([ytr, yte])
    real = x != PAD
    assert torch.equal(real, y != IGNORE)  # padding targets are exactly the padding tokens
    assert torch.equal(real, torch.arange(24) < real.sum(1, keepdim=True))  # padding only at the end
    depth = torch.cumsum(torch.where(x == OPEN, 1, -1) * real, dim=1)
    assert torch.equal(y[real], depth[real])
    assert int(y.max()) <= 12 and int(y[real].min()) >= 0
    assert int(real.sum(1).max()) == 24  # 12-pair sequences fill the context exactly


def test_split_depends_only_on_the_data_stream() -> None:
    a = DYCK.make_data(SMALL, gen(1))
    b = DYCK.make_data(SMALL, gen(1))
    c = DYCK.make_data(SMALL, gen(2))
    assert all(torch.equal(u, v) for s in ("train", "test") for u, v in zip(a[s], b[s], strict=True))
    assert not torch.equal(a["train"][0], c["train"][0])
    # a fixed data seed ignores the stream: the author's DATA_SEED procedure
    fixed = SMALL.model_copy(update={"fixed_data_seed": 0})
    d, e = DYCK.make_data(fixed, gen(1)), DYCK.make_data(fixed, gen(2))
    ref = make_dataset(fixed, seed=0)
    assert all(torch.equal(u, v) and torch.equal(u, w) for s in ("train", "test")
               for u, v, w in zip(d[s], e[s], ref[s], strict=True))
    # building models (init stream) does not move the data
    DYCK.build_model(SMALL, gen(5), "cpu")
    assert torch.equal(DYCK.make_data(SMALL, gen(1))["train"][0], a["train"][0])


def test_author_parameter_and_attention_counts() -> None:
    model = DYCK.build_model(DyckConfig(), gen(0), "cpu")
    assert sum(p.numel() for p in model.parameters()) == 273_421  # nn.TransformerEncoder module shapes
    names = DYCK.attention_weight_names(model)
    assert names == [f"layers.{i}.attn.{w}_proj.weight" for i in range(2) for w in "qkvo"]
    params = dict(model.named_parameters())
    assert sum(params[n].numel() for n in names) == 131_072  # p of the author's Gram group


def test_init_uses_only_its_generator() -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = DYCK.build_model(SMALL, gen(3), "cpu")
    torch.manual_seed(123)
    b = DYCK.build_model(SMALL, gen(3), "cpu")
    c = DYCK.build_model(SMALL, gen(4), "cpu")
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not torch.equal(sa["layers.0.attn.q_proj.weight"], sc["layers.0.attn.q_proj.weight"])
    torch.manual_seed(0)
    DYCK.build_model(SMALL, gen(3), "cpu")
    assert torch.equal(torch.get_rng_state(), state)  # the global RNG was not consumed
    assert isinstance(a, DyckTransformer)
    # the author's distributions: Q/K/V U(±√(6/4d)), O U(±1/√d), attention biases 0, embeddings N(0, 1)
    d = SMALL.d_model
    assert float(sa["layers.1.attn.k_proj.weight"].abs().max()) <= (6 / (4 * d)) ** 0.5
    assert float(sa["layers.1.attn.o_proj.weight"].abs().max()) <= d**-0.5
    assert not sa["layers.0.attn.v_proj.bias"].any()
    assert abs(float(sa["pos_emb"].std()) - 1.0) < 0.1


def test_causal_mask_future_tokens_do_not_change_earlier_logits() -> None:
    model = DYCK.build_model(SMALL, gen(0), "cpu").eval()
    x = torch.tensor([[OPEN, OPEN, CLOSE, OPEN, CLOSE, CLOSE, PAD, PAD]])
    y = x.clone()
    y[0, 4:] = torch.tensor([OPEN, PAD, CLOSE, OPEN])
    with torch.no_grad():
        a, b = model(x), model(y)
    assert a.shape == (1, 8, 13)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_padding_does_not_affect_loss_or_metrics() -> None:
    model = DYCK.build_model(SMALL, gen(0), "cpu")
    data = DYCK.make_data(SMALL, gen(0))
    x, y = DYCK.sample_batch(data, 16, gen(1))
    assert x.shape == (16, 24)
    other = x.masked_fill(y == IGNORE, OPEN)  # change every padding token
    torch.testing.assert_close(DYCK.loss(model, (x, y)), DYCK.loss(model, (other, y)))
    # the loss equals the mean CE over the real tokens only
    with torch.no_grad():
        logits = model(x)
    keep = y != IGNORE
    manual = torch.nn.functional.cross_entropy(logits[keep], y[keep])
    torch.testing.assert_close(DYCK.loss(model, (x, y)).detach(), manual)
    m1 = DYCK.evaluate(model, {"test": (x, y)}, "test", chunk=5)
    m2 = DYCK.evaluate(model, {"test": (other, y)}, "test")
    assert m1 == pytest.approx(m2)
    assert set(m1) == {"acc", "loss", "seq_acc"} and 0.0 <= m1["seq_acc"] <= m1["acc"] <= 1.0
    assert m1["loss"] == pytest.approx(float(manual), rel=1e-5)


def test_sample_batch_uses_only_its_generator() -> None:
    data = DYCK.make_data(SMALL, gen(0))
    a = DYCK.sample_batch(data, 50, gen(7))
    torch.manual_seed(99)
    b = DYCK.sample_batch(data, 50, gen(7))
    assert all(torch.equal(u, v) for u, v in zip(a, b, strict=True))
    rows = {tuple(r) for r in data["train"][0].tolist()}
    assert all(tuple(r) in rows for r in a[0].tolist())


def test_tiny_preset_trains() -> None:
    """A few AdamW steps on the tiny preset (the harness integration is tested with the harness)."""
    cfg = DyckConfig(**PRESETS["tiny"])
    run = RECOMMENDED["tiny"]
    data = DYCK.make_data(cfg, gen(0))
    model = DYCK.build_model(cfg, gen(0), "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=run["lr"], betas=run["betas"], weight_decay=run["weight_decay"])
    batches = gen(0)
    before = DYCK.evaluate(model, data, "train")
    for _ in range(40):
        loss = DYCK.loss(model, DYCK.sample_batch(data, run["batch_size"], batches))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), run["grad_clip"])
        opt.step()
    after = DYCK.evaluate(model, data, "train")
    assert after["loss"] < 0.5 * before["loss"] and after["acc"] > max(before["acc"], 0.6)
