"""verify.tasks.scan: the SCAN set from its grammar (counts, checksum, hand-checked pairs), the seeded simple split,
tensors, the author's model counts, masking, causality, greedy decoding and a tiny training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from numerics.trajectory import read_trajectory
from verify.harness.config import RunConfig
from verify.tasks.base import Task
from verify.tasks.scan import (
    ACT_VOCAB,
    ACTIONS,
    CMD_VOCAB,
    COMMAND_WORDS,
    EOS,
    IGNORE,
    PAD,
    PRESETS,
    RECOMMENDED,
    SCAN,
    SCAN_SHA256,
    SOS,
    ScanConfig,
    ScanTransformer,
    checksum,
    encode,
    greedy_decode,
    interpret,
    scan_pairs,
    simple_split,
)

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL = ScanConfig(n_train=64, n_test=32, n_enc_layers=1, n_dec_layers=1, d_model=32, n_heads=4, d_ff=64)
TL, TR, WALK, LOOK, RUN, JUMP = "I_TURN_LEFT", "I_TURN_RIGHT", "I_WALK", "I_LOOK", "I_RUN", "I_JUMP"

# Worked out by hand from the interpretation function of Lake & Baroni (2018).
HAND = {
    "jump twice after walk left": [TL, WALK, JUMP, JUMP],
    "look around right": [TR, LOOK] * 4,
    "walk opposite left": [TL, TL, WALK],
    "turn around left": [TL] * 4,
    "turn opposite right twice": [TR] * 4,
    "run thrice and turn left": [RUN, RUN, RUN, TL],
    "jump": [JUMP],
    "walk around left thrice and walk around left thrice": [TL, WALK] * 24,
}
# Lines quoted verbatim from brendenlake/SCAN tasks.txt (commit 6450bb1).
QUOTED = [
    "IN: look opposite left after run OUT: I_RUN I_TURN_LEFT I_TURN_LEFT I_LOOK",
    "IN: turn left thrice and look opposite right OUT: I_TURN_LEFT I_TURN_LEFT I_TURN_LEFT I_TURN_RIGHT I_TURN_RIGHT "
    "I_LOOK",
    "IN: walk left twice after turn opposite left thrice OUT: I_TURN_LEFT I_TURN_LEFT I_TURN_LEFT I_TURN_LEFT "
    "I_TURN_LEFT I_TURN_LEFT I_TURN_LEFT I_WALK I_TURN_LEFT I_WALK",
    "IN: turn around right thrice after run opposite right twice OUT: I_TURN_RIGHT I_TURN_RIGHT I_RUN I_TURN_RIGHT "
    "I_TURN_RIGHT I_RUN" + " I_TURN_RIGHT" * 12,
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the data set ------------------------------------------------------------------------------------------------


def test_full_set_counts_and_checksum() -> None:
    pairs = scan_pairs()
    assert len(pairs) == 20_910 and len({c for c, _ in pairs}) == 20_910
    assert checksum(pairs) == SCAN_SHA256
    assert checksum(reversed(pairs)) == SCAN_SHA256  # order-free
    # tasks.txt @ 6450bb1 is 4,080,388 characters: one "IN: … OUT: …" line per pair, LF-terminated
    assert sum(len(f"IN: {c} OUT: {a}\n") for c, a in pairs) == 4_080_388
    assert max(len(c.split()) for c, _ in pairs) == 9
    assert max(len(a.split()) for _, a in pairs) == 48
    assert sorted({w for c, _ in pairs for w in c.split()}) == list(COMMAND_WORDS) and len(COMMAND_WORDS) == 13
    assert sorted({t for _, a in pairs for t in a.split()}) == list(ACTIONS) and len(ACTIONS) == 6
    assert len(CMD_VOCAB) == 16 and len(ACT_VOCAB) == 9
    assert CMD_VOCAB[:3] == ACT_VOCAB[:3] == ("<PAD>", "<SOS>", "<EOS>") and (PAD, SOS, EOS) == (0, 1, 2)


def test_hand_checked_and_quoted_pairs() -> None:
    table = dict(scan_pairs())
    for command, actions in HAND.items():
        assert table[command] == " ".join(actions), command
        assert interpret(command) == actions
    for line in QUOTED:
        command, actions = line.removeprefix("IN: ").split(" OUT: ")
        assert table[command] == actions, command


@pytest.mark.parametrize("bad", ["", "walk walk", "turn", "jump around", "look twice twice", "run and", "fly left",
                                 "walk and run after jump"])
def test_interpret_rejects_non_commands(bad: str) -> None:
    with pytest.raises(ValueError, match="not a SCAN command"):
        interpret(bad)


def test_simple_split_sizes_and_determinism() -> None:
    train, test = simple_split(gen(0))
    assert len(train) == 16_728 and len(test) == 4_182
    assert torch.equal(torch.sort(torch.cat([train, test])).values, torch.arange(20_910))
    again, _ = simple_split(gen(0))
    other, _ = simple_split(gen(1))
    assert torch.equal(train, again) and not torch.equal(train, other)


def test_make_data_subsets_come_from_the_split() -> None:
    cfg = ScanConfig(**PRESETS["author"])
    data = SCAN.make_data(cfg, gen(3))
    assert len(data["train"]["src"]) == 2048 and len(data["test"]["src"]) == 500
    assert len(data["test_full"]["src"]) == 4182
    train, test = simple_split(gen(3))  # make_data's first draw from the stream is the split
    full = encode(scan_pairs())
    assert torch.equal(data["test_full"]["src"], full["src"][test])
    key = lambda src: (src * 16 ** torch.arange(11)).sum(1)  # noqa: E731  # one int per command (unique)
    assert torch.isin(key(data["train"]["src"]), key(full["src"][train])).all()
    assert torch.isin(key(data["test"]["src"]), key(full["src"][test])).all()
    assert len(key(data["train"]["src"]).unique()) == 2048  # drawn without replacement
    # the data depend on the data stream only
    SCAN.build_model(SMALL, gen(9), "cpu")
    assert torch.equal(SCAN.make_data(cfg, gen(3))["train"]["tgt_out"], data["train"]["tgt_out"])


def test_encode_layout() -> None:
    enc = encode([("jump twice after walk left", "I_TURN_LEFT I_WALK I_JUMP I_JUMP")])
    cmd = {w: i for i, w in enumerate(CMD_VOCAB)}
    act = {a: i for i, a in enumerate(ACT_VOCAB)}
    assert enc["src"].shape == (1, 11) and enc["tgt_in"].shape == enc["tgt_out"].shape == (1, 50)
    words = [cmd[w] for w in "jump twice after walk left".split()]
    acts = [act[a] for a in (TL, WALK, JUMP, JUMP)]
    assert enc["src"][0].tolist() == words + [PAD] * 6
    assert enc["tgt_in"][0].tolist() == [SOS, *acts] + [PAD] * 45
    assert enc["tgt_out"][0].tolist() == [*acts, EOS] + [IGNORE] * 45


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"n_train": 16_729}, "n_train"), ({"n_test": 4_183}, "n_test"), ({"train_fraction": 1.0}, "train_fraction"),
     ({"n_heads": 5}, "n_heads"), ({"layers": 2}, "layers")],
)
def test_config_rejects_bad_values(overrides: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScanConfig(**overrides)


def test_task_protocol_and_presets() -> None:
    assert isinstance(SCAN, Task)
    assert SCAN.name == "scan" and SCAN.config_class is ScanConfig
    assert SCAN.run_label(ScanConfig()) == "d256-l3x3" and SCAN.run_label(ScanConfig(**PRESETS["tiny"])) == "d64-l1x1"
    assert {"author", "tiny"} <= set(PRESETS) and {"author", "tiny"} <= set(RECOMMENDED)
    for overrides in PRESETS.values():
        ScanConfig(**overrides)
    author = ScanConfig(**PRESETS["author"])
    assert (author.n_train, author.n_test, author.train_fraction) == (2048, 500, 0.8)
    assert (author.n_enc_layers, author.n_dec_layers, author.d_model, author.n_heads, author.d_ff) == (3, 3, 256, 4,
                                                                                                       512)
    run = RECOMMENDED["author"]
    assert (run["lr"], run["betas"], run["weight_decay"], run["batch_size"], run["grad_clip"]) == (1e-4, (0.9, 0.98),
                                                                                                   1.0, 256, 1.0)
    assert run["monitor"]["window"] == 5 and RECOMMENDED["author_control"]["weight_decay"] == 0.0


# --- the model ---------------------------------------------------------------------------------------------------


def test_author_parameter_and_attention_counts() -> None:
    model = SCAN.build_model(ScanConfig(), gen(0), "cpu")
    assert sum(p.numel() for p in model.parameters()) == 3_979_529  # nn.Transformer + embeddings + LN + head
    names = SCAN.attention_weight_names(model)
    expected = [f"encoder.{i}.attn.{w}_proj.weight" for i in range(3) for w in "qkvo"]
    expected += [f"decoder.{i}.{kind}_attn.{w}_proj.weight" for i in range(3) for kind in ("self", "cross")
                 for w in "qkvo"]
    assert names == expected
    params = {k: v.detach() for k, v in model.named_parameters()}
    assert sum(params[n].numel() for n in names) == 2_359_296  # self + cross attention weights
    # nn.Transformer's xavier bounds: Q/K/V √(6/4d), O √(6/2d), MLP √(6/(d + d_ff)); attention biases zero
    d = 256
    assert float(params["decoder.2.cross_attn.q_proj.weight"].abs().max()) <= (6 / (4 * d)) ** 0.5
    assert float(params["encoder.0.attn.o_proj.weight"].abs().max()) > d**-0.5  # not the nn.Linear default
    assert float(params["encoder.0.attn.o_proj.weight"].abs().max()) <= (6 / (2 * d)) ** 0.5
    assert float(params["decoder.0.mlp.0.weight"].abs().max()) <= (6 / (d + 512)) ** 0.5
    assert not params["decoder.1.self_attn.k_proj.bias"].any()


def test_init_uses_only_its_generator() -> None:
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = SCAN.build_model(SMALL, gen(3), "cpu")
    b = SCAN.build_model(SMALL, gen(3), "cpu")
    c = SCAN.build_model(SMALL, gen(4), "cpu")
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa) and not torch.equal(sa["head.weight"], sc["head.weight"])
    assert isinstance(a, ScanTransformer)


def test_source_padding_and_target_padding_are_masked() -> None:
    model = SCAN.build_model(SMALL, gen(0), "cpu").eval()
    batch = SCAN.sample_batch(SCAN.make_data(SMALL, gen(0)), 8, gen(1))
    with torch.no_grad():
        logits = model(batch["src"], batch["tgt_in"])
        assert logits.shape == (8, 50, 9)
        # more or less source padding, down to none: same outputs (the cross-attention masks padded memory)
        torch.testing.assert_close(model(batch["src"][:, :9], batch["tgt_in"]), logits)
        for i in range(3):
            n = int((batch["src"][i] != PAD).sum())
            alone = model(batch["src"][i : i + 1, :n], batch["tgt_in"][i : i + 1])
            torch.testing.assert_close(alone, logits[i : i + 1], rtol=1e-4, atol=1e-5)
    # decoder-input padding (after the last real target) changes neither the loss nor the metrics
    pad_pos = batch["tgt_in"] == PAD
    noisy = dict(batch, tgt_in=batch["tgt_in"].masked_fill(pad_pos, ACT_VOCAB.index(JUMP)))
    torch.testing.assert_close(SCAN.loss(model, noisy), SCAN.loss(model, batch))
    m1 = SCAN.evaluate(model, {"x": batch}, "x", chunk=3)
    m2 = SCAN.evaluate(model, {"x": noisy}, "x")
    assert m1 == pytest.approx(m2)
    assert set(m1) == {"acc", "greedy_acc", "tok_acc", "loss"}
    keep = batch["tgt_out"] != IGNORE
    manual = torch.nn.functional.cross_entropy(logits[keep], batch["tgt_out"][keep])
    assert m1["loss"] == pytest.approx(float(manual), rel=1e-5)


def test_decoder_is_causal() -> None:
    model = SCAN.build_model(SMALL, gen(0), "cpu").eval()
    src = encode([("walk twice", "I_WALK I_WALK")])["src"]
    tgt = torch.tensor([[SOS, 3, 4, 5, 6, 7, 8]])
    changed = tgt.clone()
    changed[0, 4:] = torch.tensor([8, 3, 3])
    with torch.no_grad():
        a, b = model(src, tgt), model(src, changed)
    torch.testing.assert_close(a[:, :4], b[:, :4])
    assert not torch.allclose(a[:, 4:], b[:, 4:])
    # incremental decoding with the key/value caches gives the same logits, in one chunk or token by token
    memory, mask = model.encode(src)
    caches = [{"self": {}, "cross": {}} for _ in model.decoder]
    with torch.no_grad():
        steps = [model.decode(tgt[:, :3], memory, mask, caches)]
        steps += [model.decode(tgt[:, t : t + 1], memory, mask, caches) for t in range(3, 7)]
    torch.testing.assert_close(torch.cat(steps, dim=1), a, rtol=1e-4, atol=1e-5)


def _train(cfg: ScanConfig, run: dict, steps: int, seed: int = 0) -> tuple[ScanTransformer, dict, list[float]]:
    """A plain AdamW loop with the run settings ``run`` (the harness has its own)."""
    data = SCAN.make_data(cfg, gen(seed))
    model = SCAN.build_model(cfg, gen(seed), "cpu")
    opt = torch.optim.AdamW(model.parameters(), lr=run["lr"], betas=run["betas"], weight_decay=run["weight_decay"])
    batches, losses = gen(seed), []
    for _ in range(steps):
        loss = SCAN.loss(model, SCAN.sample_batch(data, run["batch_size"], batches))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), run["grad_clip"])
        opt.step()
        losses.append(loss.item())
    return model, data, losses


def _greedy_reference(model: ScanTransformer, src: torch.Tensor, max_len: int = 49) -> torch.Tensor:
    """Greedy decoding the slow way: the whole prefix through the model at every step."""
    ys = torch.full((len(src), 1), SOS)
    done = torch.zeros(len(src), dtype=torch.bool)
    for _ in range(max_len):
        with torch.no_grad():
            nxt = model(src, ys)[:, -1].argmax(-1).masked_fill(done, PAD)
        ys = torch.cat([ys, nxt[:, None]], dim=1)
        done |= nxt == EOS
        if done.all():
            break
    return ys[:, 1:]


def test_greedy_decoding_terminates_and_agrees_with_teacher_forcing() -> None:
    model, data, _ = _train(SMALL, {"lr": 3e-3, "betas": (0.9, 0.98), "weight_decay": 0.0, "batch_size": 32,
                                    "grad_clip": 1.0}, steps=20)
    model.eval()
    src = data["test"]["src"]
    pred = greedy_decode(model, src)
    assert pred.shape[0] == len(src) and 1 <= pred.shape[1] <= 49
    assert torch.equal(pred, _greedy_reference(model, src))  # the cached decoder changes nothing
    # after a row's first EOS only PAD follows; rows without EOS ran to the 49-token limit
    for row in pred.tolist():
        if EOS in row:
            assert all(t == PAD for t in row[row.index(EOS) + 1 :])
        else:
            assert len(row) == 49
    # targets set to the model's own greedy output (up to its first EOS, or all 49 tokens): teacher forcing
    # reproduces it, so both exact matches are 1
    n = len(src)
    tgt_in = torch.full((n, 50), PAD, dtype=torch.int64)
    tgt_out = torch.full((n, 50), IGNORE, dtype=torch.int64)
    for i, row in enumerate(pred.tolist()):
        seq = row[: row.index(EOS) + 1] if EOS in row else row
        tgt_in[i, : len(seq)] = torch.tensor([SOS, *seq[:-1]])
        tgt_out[i, : len(seq)] = torch.tensor(seq)
    own = {"src": src, "tgt_in": tgt_in, "tgt_out": tgt_out}
    metrics = SCAN.evaluate(model, {"own": own}, "own")
    assert metrics["acc"] == metrics["greedy_acc"] == metrics["tok_acc"] == 1.0
    # a head that always says EOS stops after one step; one that never does runs to max_len
    with torch.no_grad():
        model.head.bias[EOS] = 1e4
        assert greedy_decode(model, src).tolist() == [[EOS]] * len(src)
        model.head.bias[EOS] = -1e4
        assert greedy_decode(model, src, max_len=7).shape == (len(src), 7)


def test_tiny_preset_trains() -> None:
    cfg = ScanConfig(**PRESETS["tiny"])
    model, data, losses = _train(cfg, RECOMMENDED["tiny"], steps=30)
    assert losses[-1] < 0.6 * losses[0]
    metrics = SCAN.evaluate(model, data, "test")
    assert set(metrics) == {"acc", "greedy_acc", "tok_acc", "loss"}
    assert metrics["tok_acc"] > 0.3 and metrics["loss"] < losses[0]


# --- the stored CPU runs (verify/runs/scan/, preset "cpu") -----------------------------------------------------

STORED = sorted((Path(__file__).resolve().parents[1] / "verify" / "runs" / "scan").glob("*.jsonl.gz"))


def test_stored_runs_are_the_cpu_grid() -> None:
    """3 seeds × weight decay 1 / 0 of the cpu preset, each finished, W = 5 over the self + cross attention weights."""
    names = {p.name for p in STORED}
    want = {f"scan-d64-l1x1-wd{wd}-s{s}.jsonl.gz" for wd in (1, 0) for s in (42, 137, 2024)}
    assert want <= names, f"missing stored SCAN runs: {sorted(want - names)}"
    for path in STORED:
        t = read_trajectory(path)
        assert t.of_type("end") and t.meta["window"] == 5
        cfg = RunConfig.model_validate(t.provenance["config"])
        model = SCAN.build_model(cfg.task_config, torch.Generator().manual_seed(0), "cpu")
        attn = t.meta["groups"]["attn"]
        # brute force: every q/k/v/o weight of encoder self-, decoder self- and decoder cross-attention
        want_names = [n for n, _ in model.named_parameters()
                      if n.endswith(".weight") and any(f"{a}.{x}_proj" in n for a in ("attn", "self_attn", "cross_attn")
                                                       for x in "qkvo")]
        assert attn["params"] == want_names and any("cross_attn" in n for n in want_names)
        assert attn["P"] == sum(dict(model.named_parameters())[n].numel() for n in want_names)


@pytest.mark.parametrize("path", STORED, ids=lambda p: p.name)
def test_stored_greedy_equals_teacher_forced_exact_match(path: Path) -> None:
    """Greedy decoding reproduces the target iff every teacher-forced argmax is right (each greedy step then sees
    the true prefix): the two exact-match rates must agree at every recorded eval, train and test."""
    evals = read_trajectory(path).evals()
    assert evals and all("test_greedy_acc" in e and "test_acc" in e for e in evals)
    for e in evals:
        assert e["test_greedy_acc"] == e["test_acc"] and e["train_greedy_acc"] == e["train_acc"]
