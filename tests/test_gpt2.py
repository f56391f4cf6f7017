"""verify.tasks.gpt2: the 124M parameter count (meta device), GPT-2 init, causality, determinism from the given
generators, the Task protocol, a few AdamW / Muon steps on the tiny preset, and the presets' run settings."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from verify.corpus import BUILD_COMMAND, CorpusNotFoundError, load_corpus, write_corpus
from verify.tasks.base import Task
from verify.tasks.gpt2 import (
    GPT2,
    PRESETS,
    RECOMMENDED,
    GPT2Config,
    GPT2Model,
    ModelConfig,
    attention_weight_names,
    build_model,
    hidden_matrix_names,
    no_decay_names,
)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = GPT2Config.model_validate(PRESETS["tiny"])


@pytest.fixture(scope="module")
def tiny_data() -> dict:
    return GPT2.make_data(TINY, torch.Generator().manual_seed(0))


def _init(cfg: GPT2Config, seed: int) -> nn.Module:
    return GPT2.build_model(cfg, torch.Generator().manual_seed(seed), "cpu")


# ------------------------------------------------------------------------------------------------ architecture


def test_124m_parameter_count_on_meta() -> None:
    cfg = GPT2Config.model_validate(PRESETS["124M"])
    assert (cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_ctx, cfg.vocab_size) == (12, 768, 12, 1024, 50_257)
    with torch.device("meta"):
        model = GPT2Model(cfg.architecture())
    params = dict(model.named_parameters())
    assert sum(p.numel() for p in params.values()) == 124_439_808  # nanoGPT's GPT-2 small, tied head
    assert all(p.is_meta for p in params.values())
    assert not any("head" in name for name in params)  # the output layer is wte itself
    assert len(attention_weight_names(model)) == 4 * 12
    assert len(hidden_matrix_names(model)) == 6 * 12  # q, k, v, o, c_fc, c_proj
    assert set(no_decay_names(model)) == {n for n, p in params.items() if n.endswith("bias") or ".ln_" in n
                                          or n.startswith("ln_f")}


def test_gpt2_init_statistics() -> None:
    cfg = ModelConfig(vocab_size=50_257, n_ctx=64, n_layer=4, n_head=4, d_model=256)
    model = build_model(cfg, torch.Generator().manual_seed(0))
    p = dict(model.named_parameters())
    assert p["wte.weight"].std().item() == pytest.approx(0.02, rel=0.01)
    assert p["blocks.0.attn.q_proj.weight"].std().item() == pytest.approx(0.02, rel=0.02)
    residual = 0.02 / math.sqrt(2 * 4)
    for name in ("blocks.3.attn.o_proj.weight", "blocks.1.mlp.c_proj.weight"):
        assert p[name].std().item() == pytest.approx(residual, rel=0.02), name
    assert all(p[n].abs().max() == 0 for n in p if n.endswith("bias"))
    assert torch.equal(p["ln_f.weight"], torch.ones(256))


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="must divide"):
        GPT2Config(n_head=5)
    with pytest.raises(ValidationError, match="vocab_size"):
        GPT2Config(vocab_size=1000)
    with pytest.raises(ValidationError, match="Extra inputs"):
        GPT2Config(n_layers=2)  # a typo is an error, not a silent default
    with pytest.raises(TypeError, match="GPT2Config"):
        GPT2.build_model(ModelConfig(), torch.Generator(), "cpu")  # type: ignore[arg-type]


def test_causal_mask() -> None:
    model = _init(TINY, 0).eval()
    x = torch.randint(50_257, (2, TINY.n_ctx), generator=torch.Generator().manual_seed(1))
    t = 10
    x2 = x.clone()
    x2[:, t + 1:] = torch.randint(50_257, x2[:, t + 1:].shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a, b = model(x), model(x2)
    assert torch.allclose(a[:, :t + 1], b[:, :t + 1], atol=1e-5)  # the past never sees the future
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])
    with pytest.raises(ValueError, match="n_ctx"):
        model(torch.zeros(1, TINY.n_ctx + 1, dtype=torch.long))


# ------------------------------------------------------------------------------------------------ the task


def test_task_protocol_and_presets() -> None:
    assert isinstance(GPT2, Task) and GPT2.name == "gpt2" and GPT2.config_class is GPT2Config
    for name, over in PRESETS.items():
        cfg = GPT2Config.model_validate(over)
        assert GPT2.run_label(cfg) == name.split("-")[0]
    assert GPT2.run_label(TINY.with_overrides(n_layer=3)) == "L3-d64-T32-syn"
    small = GPT2Config.model_validate(PRESETS["small"])
    assert small.corpus == "registry" and small.n_ctx == 128 and small.n_layer <= 4


def test_recommended_runs_are_matched() -> None:
    """AdamW / Muon / SGD share everything but the update rule; W = 10, Δs = 200 over all parameters at 124M."""
    optimiser_keys = {"optimizer", "lr", "betas", "eps", "momentum", "muon_adjust_lr"}
    for size in ("124M", "small", "cpu", "tiny"):
        runs = {opt: RECOMMENDED[f"{size}-{opt}"] for opt in ("adamw", "muon", "sgd")}
        shared = [{k: v for k, v in r.items() if k not in optimiser_keys} for r in runs.values()]
        assert shared[0] == shared[1] == shared[2]
        assert {r["optimizer"] for r in runs.values()} == {"adamw", "muon", "sgd"}
        assert runs["adamw"]["lr"] == runs["muon"]["lr"] and runs["muon"]["muon_adjust_lr"] == "match_rms_adamw"
        assert RECOMMENDED[size] == runs["adamw"] and PRESETS[f"{size}-muon"] == PRESETS[size]
    assert RECOMMENDED["124M"]["monitor"] == {"window": 10, "every": 200, "groups": ["all"]}
    assert RECOMMENDED["124M"]["early_stop"] is None


def test_data_windows_and_batches(tiny_data: dict) -> None:
    T = TINY.n_ctx
    for split in ("train", "test"):
        s = tiny_data[split]
        assert s["tokens"].dtype == torch.int32 and s["eval_x"].shape == (TINY.eval_windows, T)
        assert torch.equal(s["eval_x"][:, 1:], s["eval_y"][:, :-1])
    assert tiny_data["corpus"]["kind"] == "synthetic"
    x, y = GPT2.sample_batch(tiny_data, 5, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, T) and x.dtype == torch.int64 and torch.equal(x[:, 1:], y[:, :-1])
    x2, _ = GPT2.sample_batch(tiny_data, 5, torch.Generator().manual_seed(0))
    x3, _ = GPT2.sample_batch(tiny_data, 5, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2) and not torch.equal(x, x3)
    # the batches are windows of the training tokens
    tokens = tiny_data["train"]["tokens"].long()
    windows = tokens.unfold(0, T, 1)
    assert all((windows == row).all(1).any() for row in x)


def test_determinism_from_generators(tiny_data: dict) -> None:
    state = torch.random.get_rng_state()
    a, b, c = _init(TINY, 0), _init(TINY, 0), _init(TINY, 1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is never read
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters(), strict=True):
        assert torch.equal(pa, pb), name
        if not name.endswith("bias") and ".ln_" not in name and not name.startswith("ln_f"):
            assert not torch.equal(pa, pc), name
    again = GPT2.make_data(TINY, torch.Generator().manual_seed(0))
    assert torch.equal(again["train"]["tokens"], tiny_data["train"]["tokens"])


def test_evaluate(tiny_data: dict) -> None:
    model = _init(TINY, 0)
    metrics = GPT2.evaluate(model, tiny_data, "test")
    assert metrics["loss"] == pytest.approx(math.log(50_257), abs=0.1)  # near-uniform at init
    assert 0.0 <= metrics["acc"] <= 1.0 and metrics["ppl"] == pytest.approx(math.exp(metrics["loss"]), rel=1e-6)
    assert model.training  # mode restored
    assert GPT2.evaluate(model, tiny_data, "test") == metrics  # fixed windows: same numbers twice


def _train(model: nn.Module, data: dict, optimizers: list[torch.optim.Optimizer], steps: int) -> list[float]:
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(steps):
        loss = GPT2.loss(model, GPT2.sample_batch(data, 4, gen))
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        for opt in optimizers:
            opt.step()
        losses.append(loss.item())
    return losses


def test_adamw_steps_decrease_the_loss(tiny_data: dict) -> None:
    model = _init(TINY, 0)
    before = GPT2.evaluate(model, tiny_data, "test")["loss"]
    _train(model, tiny_data, [torch.optim.AdamW(model.parameters(), lr=3e-3, betas=(0.9, 0.95))], 8)
    assert GPT2.evaluate(model, tiny_data, "test")["loss"] < before - 1.0


@pytest.mark.skipif(not hasattr(torch.optim, "Muon"), reason="torch.optim.Muon needs torch >= 2.9")
def test_muon_steps_decrease_the_loss(tiny_data: dict) -> None:
    model = _init(TINY, 0)
    named = dict(model.named_parameters())
    matrices = set(hidden_matrix_names(model))
    muon = torch.optim.Muon([named[n] for n in matrices], lr=3e-3, adjust_lr_fn="match_rms_adamw")
    adamw = torch.optim.AdamW([p for n, p in named.items() if n not in matrices], lr=3e-3, betas=(0.9, 0.95))
    before = {n: p.detach().clone() for n, p in named.items()}
    loss_before = GPT2.evaluate(model, tiny_data, "test")["loss"]
    _train(model, tiny_data, [muon, adamw], 8)
    assert GPT2.evaluate(model, tiny_data, "test")["loss"] < loss_before - 1.0
    # the orthogonalised update: the change of a hidden matrix has all singular values alike (up to momentum)
    delta = named["blocks.0.mlp.c_fc.weight"].detach() - before["blocks.0.mlp.c_fc.weight"]
    s = torch.linalg.svdvals(delta)
    assert s[min(delta.shape) // 2] > 0.1 * s[0]


# ------------------------------------------------------------------------------------------------ the corpus


def test_registry_corpus_missing_is_a_clear_error(tmp_path: Path) -> None:
    cfg = GPT2Config.model_validate({**PRESETS["small"], "corpus_dir": str(tmp_path / "none")})
    with pytest.raises(CorpusNotFoundError, match=re.escape(BUILD_COMMAND)):
        GPT2.make_data(cfg, torch.Generator())


def test_registry_corpus_from_a_tiny_cache(tmp_path: Path) -> None:
    """Text → tokens → .bin → make_data → batches, the path the real corpus takes."""
    docs = ["The quick brown fox jumps over the lazy dog. " * 8, "It was the best of times. " * 10,
            "Now is the winter of our discontent. " * 9, "Call me Ishmael. " * 12]
    write_corpus({"tiny": docs}, tmp_path, val_every=2)
    cfg = GPT2Config(corpus_dir=str(tmp_path), n_layer=1, n_head=2, d_model=16, n_ctx=16, eval_windows=3)
    data = GPT2.make_data(cfg, torch.Generator())
    cache = load_corpus(tmp_path)
    assert torch.equal(data["train"]["tokens"].long(), torch.from_numpy(cache.train.astype("int64")))
    assert data["corpus"]["kind"] == "registry" and data["test"]["eval_x"].shape == (3, 16)
    x, y = GPT2.sample_batch(data, 2, torch.Generator().manual_seed(0))
    assert GPT2.loss(_init(cfg, 0), (x, y)).item() == pytest.approx(math.log(50_257), abs=0.2)
    with pytest.raises(ValueError, match="fewer than n_ctx"):
        GPT2.make_data(cfg.with_overrides(n_ctx=512), torch.Generator())


def test_small_preset_on_the_real_corpus() -> None:
    try:
        load_corpus(verify=False)
    except CorpusNotFoundError as exc:
        pytest.skip(f"no corpus cache ({exc})")
    cfg = GPT2Config.model_validate(PRESETS["small"])
    data = GPT2.make_data(cfg, torch.Generator())
    assert len(data["train"]["tokens"]) > 9e6 and data["test"]["eval_x"].shape == (cfg.eval_windows, cfg.n_ctx)
    x, _ = GPT2.sample_batch(data, 4, torch.Generator().manual_seed(0))
    assert int(x.max()) < 50_257


# ------------------------------------------------------------------------- the stored CPU runs (verify/runs/gpt2)

STORED = Path(__file__).resolve().parents[1] / "verify" / "runs" / "gpt2"
OPTIMISER_KEYS = {"optimizer", "lr", "betas", "eps", "momentum", "muon_adjust_lr"}


def test_stored_optimiser_runs_are_matched() -> None:
    """AdamW, Muon and SGD runs of the cpu config: same settings but the update rule, spectra over all parameters
    with W = 10, backbone records at every snapshot, validation loss at every eval."""
    from numerics.backbone import gram_from_rows
    from numerics.trajectory import read_trajectory

    runs = {opt: read_trajectory(STORED / f"gpt2-cpu-{opt}-wd0.1-s42.jsonl.gz") for opt in ("adamw", "muon", "sgd")}
    configs = {opt: t.provenance["config"] for opt, t in runs.items()}
    shared = [{k: v for k, v in c.items() if k not in OPTIMISER_KEYS} for c in configs.values()]
    assert shared[0] == shared[1] == shared[2]
    for opt, t in runs.items():
        assert configs[opt]["optimizer"] == opt and t.of_type("end")
        assert t.meta["window"] == 10 and "all" in t.groups()
        assert t.meta["groups"]["all"]["P"] == 6_837_888
        evals = t.evals()
        assert evals[-1]["step"] == configs[opt]["max_steps"] and all(np.isfinite(e["test_loss"]) for e in evals)
        recs = t.of_type("backbone", "trunk")
        every = configs[opt]["backbone"]["every"]
        assert [r["step"] for r in recs] == list(range(every, configs[opt]["max_steps"] + 1, every))
        K = gram_from_rows(recs)
        np.testing.assert_allclose(np.sqrt(np.diag(K)), [r["norm"] for r in recs], rtol=1e-12)
        assert np.linalg.eigvalsh(K).min() >= -1e-9 * np.trace(K)  # a Gram matrix: positive semi-definite
