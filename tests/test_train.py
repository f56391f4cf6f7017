"""verify.harness.loop: determinism, independence of the four RNG streams, monitor protocol, a live grokking pair."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn
from typer.testing import CliRunner

from numerics.errors import SpectralEdgeError
from numerics.trajectory import read_trajectory
from verify.cli import app
from verify.harness.config import STREAMS, EarlyStop, RunConfig, load_config, make_run_config, preset, stream_seed
from verify.harness.loop import diag_generator, run_label, train
from verify.harness.optim import MuonAdamW, build_optimizer, lr_factor, muon_split
from verify.harness.runner import spectral_monitor_factory
from verify.tasks import get_task, register_task

pytestmark = pytest.mark.usefixtures("one_thread")


def small(**overrides: object) -> RunConfig:
    """A seconds-long config: the tiny preset cut to a few steps."""
    return preset("tiny", **{"p": 23, "d_model": 32, "max_steps": 40, "eval_every": 10, **overrides})


def same_params(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_same_seeds_give_bitwise_identical_runs() -> None:
    r1 = train(small(), progress=False)
    r2 = train(small(), progress=False)
    assert same_params(r1.model, r2.model)
    assert r1.history == r2.history
    assert r1.final_step == 40 and r1.history.steps == [0, 10, 20, 30, 40]
    # each of init and batch streams does move the trajectory
    assert not same_params(r1.model, train(small(init_seed=1), progress=False).model)
    assert not same_params(r1.model, train(small(batch_seed=1), progress=False).model)


class NoisyMonitor:
    """Measures aggressively: draws from the diagnostic stream *and* the global RNG, runs extra forwards."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, config: RunConfig) -> None:
        self.model, self.optimizer = model, optimizer
        self.gen = diag_generator(config)
        self.logged: list[tuple[int, dict[str, float]]] = []
        self.hook_steps: list[int] = []
        self.closed = False
        optimizer.register_step_post_hook(self._after_step)

    def _after_step(self, optimizer: torch.optim.Optimizer, args: object, kwargs: object) -> None:
        self.hook_steps.append(optimizer.global_step)  # type: ignore[attr-defined]
        torch.randn(100)  # global RNG
        x = torch.randint(23, (64, 2), generator=self.gen)  # diagnostic batch
        self.model.eval()
        with torch.no_grad():
            self.model(x)
        self.model.train()

    def log(self, step: int, **scalars: float) -> None:
        self.logged.append((step, scalars))
        torch.rand(10)

    def close(self) -> None:
        self.closed = True


def test_measurement_and_diag_seed_do_not_change_training() -> None:
    plain = train(small(), progress=False)
    monitors: list[NoisyMonitor] = []

    def factory(model: nn.Module, opt: torch.optim.Optimizer, cfg: RunConfig) -> NoisyMonitor:
        monitors.append(NoisyMonitor(model, opt, cfg))
        return monitors[-1]

    measured = train(small(diag_seed=99), monitor_factory=factory, progress=False)
    assert same_params(plain.model, measured.model)
    assert plain.history == measured.history
    (mon,) = monitors
    assert mon.closed
    assert mon.hook_steps == list(range(1, 41))  # global_step = completed steps, visible in the post hook
    assert [s for s, _ in mon.logged] == plain.history.steps
    assert set(mon.logged[0][1]) == {"train_acc", "test_acc", "train_loss", "test_loss"}


def test_evaluate_restores_mode() -> None:
    r = train(small(max_steps=1), progress=False)
    data = {"test": (torch.tensor([[1, 2], [3, 4]]), torch.tensor([3, 7]))}
    task = get_task("modular")
    r.model.train()
    task.evaluate(r.model, data, "test")
    assert r.model.training
    r.model.eval()
    task.evaluate(r.model, data, "test")
    assert not r.model.training


def test_early_stop_and_out_dir(tmp_path) -> None:
    # any accuracy > 0 counts: the run stops at the 2nd eval with patience 2 (seed 2: test acc > 0 at steps 0, 10)
    cfg = small(early_stop=EarlyStop(acc=1e-9, patience=2)).with_seed(2)
    r = train(cfg, tmp_path / "run", progress=False)
    assert r.final_step == 10 and r.history.steps == [0, 10]
    assert r.grok_step is None or r.grok_step in r.history.steps
    assert {p.name for p in (tmp_path / "run").iterdir()} == {"config.json", "result.json", "model.safetensors"}
    summary = json.loads((tmp_path / "run" / "result.json").read_text())
    assert summary["final_step"] == 10 and summary["n_params"] == r.n_params
    assert RunConfig.model_validate(summary["config"]) == cfg


@pytest.mark.slow
def test_tiny_groks_with_weight_decay_and_not_without() -> None:
    """The tiny preset: wd 1.0 groks (~900-1,200 steps, seeds 0-2); wd 0 memorises, test acc stays near chance.

    Budget cut from 3,000 to 2,000 steps to keep the pair around 30 s on one core; the control trains 1.5× as long
    as the wd run took to grok (its own budget: the same claim, 6 s less).
    """
    cfg = preset("tiny", max_steps=2000)
    with_wd = train(cfg, progress=False)
    assert with_wd.grok_step is not None and with_wd.grok_step <= 2000
    assert with_wd.history.train_acc[-1] >= 0.99
    # delayed generalisation: train accuracy saturates well before test accuracy moves
    memorised = next(s for s, a in zip(with_wd.history.steps, with_wd.history.train_acc, strict=True) if a >= 0.99)
    assert with_wd.grok_step - memorised >= 500

    control_steps = -(-int(1.5 * with_wd.grok_step) // cfg.eval_every) * cfg.eval_every
    without = train(cfg.with_overrides(weight_decay=0.0, max_steps=control_steps), progress=False)
    assert without.final_step == control_steps
    assert without.grok_step is None
    assert without.history.train_acc[-1] > 0.95  # memorised (Adam without wd shows small late spikes)
    assert max(without.history.test_acc) < 0.1


# --- the generic harness: any registered task, optimisers, streams, validation -----------------------------------


class ToyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(128, ge=4)
    dim: int = 4
    classes: int = 3


class ToyTask:
    """Gaussian points labelled by a random linear map; an MLP *with dropout* (reads the global RNG in training)."""

    name = "toy"
    config_class = ToyConfig

    def make_data(self, config: ToyConfig, generator: torch.Generator) -> dict:
        x = torch.randn(config.n, config.dim, generator=generator)
        y = (x @ torch.randn(config.dim, config.classes, generator=generator)).argmax(1)
        h = config.n // 2
        return {"train": (x[:h], y[:h]), "test": (x[h:], y[h:])}

    def build_model(self, config: ToyConfig, generator: torch.Generator, device: str) -> nn.Module:
        model = nn.Sequential(nn.Linear(config.dim, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, config.classes))
        with torch.no_grad():
            for p in model.parameters():
                p.copy_(0.3 * torch.randn(p.shape, generator=generator))
        return model.to(device)

    def sample_batch(self, data: dict, batch_size: int, generator: torch.Generator) -> tuple:
        x, y = data["train"]
        idx = torch.randint(len(y), (batch_size,), generator=generator)
        return x[idx], y[idx]

    def loss(self, model: nn.Module, batch: tuple) -> torch.Tensor:
        return F.cross_entropy(model(batch[0]), batch[1])

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict, split: str) -> dict[str, float]:
        was = model.training
        model.eval()
        x, y = data[split]
        logits = model(x)
        model.train(was)
        return {"acc": (logits.argmax(1) == y).float().mean().item(), "loss": F.cross_entropy(logits, y).item(),
                "extra": 1.0}

    def attention_weight_names(self, model: nn.Module) -> list[str]:
        return []

    def no_decay_names(self, model: nn.Module) -> list[str]:
        return [n for n, p in model.named_parameters() if p.ndim < 2]


register_task("toy", ToyTask(), replace=True, recommended={"quick": {
    "lr": 1e-2, "batch_size": 16, "max_steps": 30, "eval_every": 10, "early_stop": None,
    "monitor": {"window": 3, "every": 5, "groups": ["all"]}}})


def test_any_registered_task_trains_through_the_one_loop(tmp_path) -> None:
    cfg = preset("quick", task="toy", n=64)
    assert cfg.task_config == ToyConfig(n=64) and run_label(cfg) == "toy-wd1-s0"
    rng = torch.get_rng_state()
    a, b = train(cfg, progress=False), train(cfg, progress=False)
    assert torch.equal(torch.get_rng_state(), rng)  # the caller's global RNG is restored
    assert same_params(a.model, b.model) and a.history == b.history  # dropout is seeded from its own stream
    assert a.history.metrics[0].keys() == {"train_acc", "train_loss", "train_extra", "test_acc", "test_loss",
                                           "test_extra"}
    # measurements in train mode draw dropout masks too: inside fork_rng they leave training alone
    measured = train(cfg.with_overrides(defect={"every": 5, "pairs": 2}, probes={"every": 10, "k": 2}),
                     progress=False, monitor_factory=spectral_monitor_factory(tmp_path / "toy.jsonl"))
    assert same_params(a.model, measured.model) and a.history.metrics == measured.history.metrics
    assert len(measured.history.defect) == 7 and len(measured.history.probes) == 3  # probes at 10, 20, 30
    assert not same_params(a.model, train(cfg.with_seed(1), progress=False).model)
    groups = build_optimizer(a.model, cfg, ToyTask().no_decay_names(a.model)).param_groups  # biases: no decay
    assert [(len(g["params"]), g["weight_decay"]) for g in groups] == [(2, 1.0), (2, 0.0)]
    res = CliRunner().invoke(app, ["train", "toy", "--preset", "quick", "--set", "max_steps=10", "--out",
                                   str(tmp_path), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert read_trajectory(tmp_path / "toy-wd1-s0.jsonl").provenance["config"]["max_steps"] == 10


@pytest.mark.parametrize("optimizer", ["sgd", "muon"])
def test_other_optimisers(optimizer: str) -> None:
    cfg = small(optimizer=optimizer, max_steps=20, lr=1e-2, momentum=0.9)
    hooks: list[int] = []

    def factory(model: nn.Module, opt: torch.optim.Optimizer, c: RunConfig) -> NoisyMonitor:
        opt.register_step_post_hook(lambda o, *_: hooks.append(o.global_step))
        return NoisyMonitor(model, opt, c)

    r = train(cfg, progress=False, monitor_factory=factory)
    assert hooks == list(range(1, 21))  # step hooks fire for the combined Muon + AdamW optimizer too
    assert all(torch.isfinite(p).all() for p in r.model.parameters())
    assert not same_params(r.model, train(cfg.with_overrides(max_steps=1), progress=False).model)
    assert same_params(r.model, train(cfg, progress=False).model)  # deterministic
    if optimizer == "muon":
        matrices, rest = muon_split(r.model, cfg.muon_exclude)
        names = {id(p): n for n, p in r.model.named_parameters()}
        muon_names = sorted(names[id(p)] for p in matrices)
        assert muon_names == sorted(n for n, p in r.model.named_parameters() if n.endswith("weight") and p.ndim == 2
                                    and n not in ("tok_emb.weight", "head.weight"))
        assert {"tok_emb.weight", "pos_emb", "head.weight", "head.bias", "ln_f.weight"} <= {names[id(p)] for p in rest}
        opt = build_optimizer(r.model, cfg)
        assert isinstance(opt, MuonAdamW) and [type(p).__name__ for p in opt.parts] == ["Muon", "AdamW"]


def test_lr_schedule() -> None:
    cfg = small(max_steps=110, warmup_steps=10, lr_decay="cosine", min_lr_frac=0.1)
    assert lr_factor(cfg, 0) == pytest.approx(0.1) and lr_factor(cfg, 9) == 1.0 and lr_factor(cfg, 10) == 1.0
    assert lr_factor(cfg, 60) == pytest.approx(0.55) and lr_factor(cfg, 110) == pytest.approx(0.1)
    assert lr_factor(small(), 5) == 1.0
    lrs: list[float] = []

    def factory(model: nn.Module, opt: torch.optim.Optimizer, c: RunConfig) -> NoisyMonitor:
        opt.register_step_post_hook(lambda o, *_: lrs.append(o.param_groups[0]["lr"]))
        return NoisyMonitor(model, opt, c)

    train(cfg.with_overrides(max_steps=20, warmup_steps=4), progress=False, monitor_factory=factory)
    assert lrs[:4] == pytest.approx([c * cfg.lr for c in (0.25, 0.5, 0.75, 1.0)]) and lrs[-1] > 0.1 * cfg.lr


def test_streams_are_independent_and_plain_is_the_old_seeding() -> None:
    cfg = small().with_seed(5)
    seeds = [cfg.seed(s) for s in STREAMS]
    assert len(set(seeds)) == 4 and seeds == [stream_seed(5, s) for s in STREAMS]
    plain = cfg.with_overrides(streams="plain")
    assert [plain.seed(s) for s in STREAMS] == [5] * 4
    # same seed, different streams: the batch and diagnostics draws differ (the defect never sees training batches)
    draw = [torch.randint(100, (20,), generator=cfg.generator(s)) for s in ("batch", "diag")]
    assert not torch.equal(*draw)
    assert torch.equal(diag_generator(cfg).get_state(), cfg.generator("diag").get_state())


@pytest.mark.parametrize(("overrides", "message"), [
    ({"task": "sorting"}, "unknown task 'sorting'"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"train_fraction": 1.5}, "train_fraction"),
    ({"monitor": {"window": 1}}, "window"),
    ({"monitor": {"every": 0}}, "every"),
    ({"eval_every": 0}, "eval_every"),
    ({"probes": {"every": 10, "k": 11}}, "exceeds the monitor window"),
    ({"probes": {"every": 10, "groups": ["mlp"]}}, "not monitor groups"),
    ({"defect": {"every": 10, "pairs": 0}}, "pairs"),
    ({"defect": {"every": -1}}, "every"),
    ({"muon_lr": 0.02}, "muon_lr"),
    ({"lr": 0.0}, "lr"),
    ({"n_heads": 3}, "n_heads"),
])
def test_bad_configs_fail_validation(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_run_config(overrides.pop("task", "modular"), overrides)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"monitor": {"window": 2.7}}, "monitor.window"),
    ({"monitor": {"every": 50.0}}, "monitor.every"),
    ({"max_steps": True}, "max_steps"),
    ({"batch_size": "64"}, "batch_size"),
    ({"eval_every": 10.5}, "eval_every"),
    ({"data_seed": False}, "data_seed"),
    ({"checkpoint_every": 7.0}, "checkpoint_every"),
    ({"early_stop": {"acc": 0.9, "patience": 2.5}}, "early_stop.patience"),
    ({"defect": {"every": True}}, "defect.every"),
])
def test_int_fields_are_strict(overrides: dict, field: str) -> None:
    """No 2.7 → 2 and no true → 1: a float, bool or string where an int belongs is an error naming the field."""
    with pytest.raises(ValueError, match=rf"(?s){re.escape(field)}\n.*valid integer"):
        make_run_config("modular", overrides)


def test_strict_ints_keep_json_configs_and_int_floats(tmp_path) -> None:
    cfg = small(lr=1, monitor={"window": 3, "every": 5})  # an int where a float belongs is fine
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert RunConfig.model_validate_json(cfg.model_dump_json()) == cfg
    (tmp_path / "c.json").write_text(cfg.model_dump_json())
    assert load_config(tmp_path / "c.json") == cfg


def test_zero_cadence_is_off_and_flat_configs_load(tmp_path) -> None:
    cfg = small(defect={"every": 0}, probes={"every": 0}, checkpoint_every=0)
    assert cfg.defect.every is None and cfg.probes.every is None and cfg.checkpoint_every is None
    # the flat ModularConfig of runs stored before issue 5 still loads (as task modular)
    flat = {"p": 59, "op": "mul", "train_fraction": 0.5, "n_layers": 1, "lr": 3e-3, "weight_decay": 0.0,
            "betas": [0.9, 0.98], "max_steps": 3000, "data_seed": 42, "monitor": {"window": 10, "every": 50}}
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    loaded = load_config(tmp_path / "flat.json")
    assert loaded.task == "modular" and loaded.task_config.op == "mul" and loaded.lr == 3e-3
    assert run_label(loaded) == "modular-mul-p59-wd0-s0"
    with pytest.raises(ValueError, match="not 'dyck'"):
        make_run_config("dyck", {"task": "modular"})


def test_runtime_requirements_are_checked_before_the_first_step(tmp_path) -> None:
    steps: list[int] = []
    with pytest.raises(SpectralEdgeError, match="probes need the spectral monitor"):
        train(small(probes={"every": 10, "k": 2}), progress=False, step_callback=steps.append)
    with pytest.raises(SpectralEdgeError, match="checkpoint"):
        train(small(checkpoint_every=10), progress=False, step_callback=steps.append)
    assert steps == []


def test_cli_sweep_any_grid(tmp_path) -> None:
    """One-run sweep through the CLI (spawned single-thread worker); a second call skips the finished run."""
    args = ["sweep", "modular", "--preset", "tiny", "--set", "p=23", "--set", "d_model=32", "--set", "max_steps=20",
            "--set", "eval_every=10", "--set", "monitor.every=5", "--set", "monitor.window=3", "--ops", "sub",
            "--seeds", "1", "--wds", "0.5", "--jobs", "1", "--out", str(tmp_path), "--no-progress"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    gz = tmp_path / "modular-sub-p23-wd0.5-s1.jsonl.gz"
    t = read_trajectory(gz)
    assert t.provenance["config"]["task_config"]["op"] == "sub" and t.provenance["config"]["weight_decay"] == 0.5
    rows = json.loads((tmp_path / "sweep.json").read_text())["runs"]
    assert [r["file"] for r in rows] == [gz.name] and rows[0]["final_step"] == 20
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0 and json.loads((tmp_path / "sweep.json").read_text())["runs"][0]["final_step"] is None
    # a later invocation for another seed keeps the earlier run in the one manifest
    seed2 = [a if a != "1" else "2" for a in args]
    assert CliRunner().invoke(app, seed2).exit_code == 0
    files = [r["file"] for r in json.loads((tmp_path / "sweep.json").read_text())["runs"]]
    assert files == [gz.name, "modular-sub-p23-wd0.5-s2.jsonl.gz"]
    res = CliRunner().invoke(app, [*args[:-3], "--grid", "lr=0.001,0.002", "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "share run names" in str(res.exception)
