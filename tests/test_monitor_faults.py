"""SpectralMonitor on a user's own loop and under faults (issue 14): provenance recorded by the monitor itself, step
units, non-finite updates, mixed parameter dtypes, and never appending to another run's file."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from numerics.errors import NonFiniteUpdateError, SpectralEdgeError
from numerics.monitor import SpectralMonitor, StepMismatchWarning
from numerics.provenance import git_commit, merge_provenance
from numerics.trajectory import read_trajectory


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def _data(n: int = 32, seed: int = 1) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(n)]


def _step(model: nn.Module, opt: torch.optim.Optimizer, batch: tuple[torch.Tensor, torch.Tensor]) -> None:
    opt.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
    opt.step()


# --- 1. provenance --------------------------------------------------------------------------------------------------


def test_monitor_records_provenance_and_config_by_itself(tmp_path):
    from verify.store import RunData  # the reader that labels runs by their recorded lr / weight decay

    model = _mlp()
    decay, no_decay = [model[0].weight, model[2].weight], [model[0].bias, model[2].bias]
    opt = torch.optim.AdamW([{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": 1.0}],
                            lr=1e-3, betas=(0.9, 0.98), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, s / 10))  # warmup: lr starts at 0
    path = tmp_path / "user.jsonl"
    with SpectralMonitor(model, opt, window=3, every=2, path=path) as mon:
        for s, batch in enumerate(_data(12)):
            _step(model, opt, batch)
            sched.step()
            if (s + 1) % 4 == 0:
                mon.log(s + 1, test_acc=1.0 if s > 6 else 0.0)
    prov = read_trajectory(path).provenance
    # the main group (most elements) gives the config the store reads; lr before the scheduler touched it
    assert prov["config"] == {"lr": 1e-3, "weight_decay": 1.0, "optimizer": "adamw"}
    assert prov["optimizer"]["class"] == "AdamW"
    g0, g1 = prov["optimizer"]["param_groups"]
    assert g0["weight_decay"] == 0.0 and g1["weight_decay"] == 1.0
    assert g1["betas"] == [0.9, 0.98] and g1["eps"] == 1e-8 and g1["initial_lr"] == 1e-3
    assert g1["n_elements"] == 4 * 8 + 8 * 3 and g0["n_elements"] == 8 + 3
    assert {"spectral-edge", "torch", "numpy"} <= set(prov["versions"])
    assert prov["device"]["device"] == "cpu"
    assert prov["git"]["commit"] == git_commit(".")["commit"] and "cwd" in prov["git"]
    rd = RunData.from_trajectory(path, group="all")
    assert rd.eta == 1e-3 and rd.weight_decay == 1.0 and not rd.is_control  # grokked with weight decay


def test_user_provenance_is_merged_not_dropped(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    path = tmp_path / "run.jsonl"
    SpectralMonitor(model, opt, window=2, every=1, path=path,
                    provenance={"seeds": {"init": 7}, "config": {"model": "mlp", "lr": 0.1},
                                "device": {"note": "mine"}}).close()
    prov = read_trajectory(path).provenance
    assert prov["seeds"] == {"init": 7}
    assert prov["config"] == {"model": "mlp", "lr": 0.1}  # a caller's config is theirs, not rewritten
    assert prov["device"]["note"] == "mine" and prov["device"]["device"] == "cpu"  # mappings merged
    assert prov["optimizer"]["class"] == "SGD" and prov["optimizer"]["param_groups"][0]["momentum"] == 0.9
    assert merge_provenance({"a": {"x": 1}, "b": 1}, {"a": {"y": 2}, "c": 3}) == {"a": {"x": 1, "y": 2}, "b": 1,
                                                                                   "c": 3}


# --- 3. step units ----------------------------------------------------------------------------------------------------


def test_log_with_steps_in_other_units_warns_once_or_raises():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    mon = SpectralMonitor(model, opt, window=2, every=1)
    data = _data(8)
    accum = 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for micro, batch in enumerate(data, start=1):  # gradient accumulation: the loop counts micro-batches
            nn.functional.cross_entropy(model(batch[0]), batch[1]).backward()
            if micro % accum == 0:
                opt.step()
                opt.zero_grad()
                mon.log(micro, loss=0.0)
    assert mon.step == 4
    mismatches = [w for w in caught if issubclass(w.category, StepMismatchWarning)]
    assert len(mismatches) == 1
    assert "log(step=2)" in str(mismatches[0].message) and "counted 1 optimizer steps" in str(mismatches[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mon.log(mon.step, loss=0.0)  # the right unit: silent
        mon.log(loss=0.0)
    strict = SpectralMonitor(model, opt, window=2, every=1, strict_steps=True)
    _step(model, opt, data[0])
    strict.log(1)
    with pytest.raises(SpectralEdgeError, match=r"log\(step=5\).*counted 1"):
        strict.log(5)


# --- 4. non-finite updates ------------------------------------------------------------------------------------------


def _poison(model: nn.Module) -> torch.Tensor:
    saved = model[2].weight.detach().clone()
    with torch.no_grad():
        model[2].weight[0, 0] = float("nan")
    return saved


def test_snapshot_advances_only_after_an_accepted_update():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = SpectralMonitor(model, opt, window=3, every=1, storage_dtype=torch.float64)
    data = _data(10)
    for b in data[:3]:
        _step(model, opt, b)
    good = _poison(model)
    with pytest.raises(NonFiniteUpdateError):
        mon.capture()
    with torch.no_grad():
        model[2].weight.copy_(good)  # the parameters are fixed ...
    for b in data[3:6]:
        _step(model, opt, b)  # ... so training (and capture) goes on
    assert mon.gram.n_pushed == 6
    assert all(r["type"] == "spectrum" for r in mon.records)


def test_an_overflowing_update_in_another_storage_dtype_restores_the_snapshot():
    """float64 parameters, float32 storage: δ is formed in the snapshot's buffer (not in the window's spare row), so a
    rejected δ must be undone there. δ = 2⁷⁰ per entry is finite but ⟨δ, δ⟩ overflows float32."""
    model = nn.Linear(4, 4).double()
    theta0 = 2.0**60
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(theta0)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    mon = SpectralMonitor(model, opt, window=3, every=10**9, storage_dtype=torch.float32)
    assert not mon._direct
    with torch.no_grad():
        for p in model.parameters():
            p.add_(2.0**70)  # exact in float64
    with pytest.raises(NonFiniteUpdateError, match="overflow"):
        mon.capture()
    assert mon.gram.n_pushed == 0 and bool((mon._prev == theta0).all())  # θ_prev rebuilt exactly
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(theta0 + 2.0**10)
    mon.capture()
    assert mon.gram.n_pushed == 1 and bool((mon.gram.window() == 2.0**10).all())


def test_on_nonfinite_skip_records_and_goes_on(tmp_path):
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    path = tmp_path / "nan.jsonl"
    mon = SpectralMonitor(model, opt, window=3, every=1, path=path, on_nonfinite="skip",
                          groups={"all": "*", "first": "0.*"})
    data = _data(10)
    for b in data[:4]:
        _step(model, opt, b)
    before = (mon.gram.n_pushed, mon.gram.gram("all"), mon._prev.clone())
    theta = [p.detach().clone() for p in model.parameters()]
    _poison(model)
    assert mon.capture() == []
    assert mon.gram.n_pushed == before[0]
    assert (mon.gram.gram("all") == before[1]).all() and torch.equal(mon._prev, before[2])
    with torch.no_grad():
        for p, t in zip(model.parameters(), theta, strict=True):
            p.copy_(t)
    for b in data[4:7]:
        _step(model, opt, b)
    mon.close()
    t = read_trajectory(path)
    bad = t.of_type("nonfinite")
    assert [(r["step"], r["group"]) for r in bad] == [(4, "all")]  # "first" (layer 0) was finite
    assert "NaN" in bad[0]["error"] and bad[0]["action"] == "skipped"
    assert [r["step"] for r in t.spectra("all")][-3:] == [5, 6, 7]
    with pytest.raises(SpectralEdgeError, match="on_nonfinite"):
        SpectralMonitor(model, opt, on_nonfinite="ignore")


# --- 5. dtypes ------------------------------------------------------------------------------------------------------


class _Mixed(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Parameter(torch.ones(16, dtype=torch.bfloat16))  # first parameter: bf16
        self.w = nn.Parameter(torch.full((32,), 100.0))  # fp32, large values, tiny updates


def test_each_parameter_keeps_its_precision_in_the_snapshot():
    model = _Mixed()
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    mon = SpectralMonitor(model, opt, window=3, every=1, groups={"w": ["w"], "all": "*"})
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        model.embed.grad = torch.zeros(16, dtype=torch.bfloat16)
        model.w.grad = 1e-4 * (1 + torch.rand(32, generator=g))  # |δ| ~ 1e-4 on |θ| = 100: below bf16's resolution
        opt.step()
    rec = mon.latest["w"]
    assert "degenerate" not in rec and rec["sigma"][0] > 1e-4
    assert mon._prev.dtype == torch.float32  # bf16 upcast, not fp32 rounded to bf16
    # float64 parameters keep float64 snapshots even with float32 storage
    m64 = nn.Linear(3, 3).double()
    assert SpectralMonitor(m64, torch.optim.SGD(m64.parameters(), lr=0.1))._prev.dtype == torch.float64


# --- 6. never append to another run's file --------------------------------------------------------------------------


def _run(path, *, wd: float, steps: int, **kw) -> SpectralMonitor:
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=wd)
    mon = SpectralMonitor(model, opt, window=3, every=2, path=path, **kw)
    for b in _data(steps):
        _step(model, opt, b)
    mon.close()
    return mon


def test_existing_file_is_refused_unless_resume_or_overwrite(tmp_path):
    path = tmp_path / "run.jsonl"
    _run(path, wd=1.0, steps=6)
    size = path.stat().st_size
    with pytest.raises(SpectralEdgeError, match=r"already holds a trajectory.*resume=True.*overwrite=True"):
        _run(path, wd=0.0, steps=6)
    assert path.stat().st_size == size  # nothing was appended
    with pytest.raises(SpectralEdgeError, match="exclude"):
        _run(path, wd=0.0, steps=2, resume=True, overwrite=True)
    _run(path, wd=0.0, steps=4, overwrite=True)
    t = read_trajectory(path)
    assert t.provenance["config"]["weight_decay"] == 0.0 and len(t.of_type("end")) == 1
    assert [r["step"] for r in t.spectra("all")] == [4]


def test_resume_continues_the_file_after_load_state_dict(tmp_path):
    path = tmp_path / "run.jsonl"
    model = _mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=1.0)
    data = _data(12)
    mon = SpectralMonitor(model, opt, window=3, every=2, path=path)
    for b in data[:6]:
        _step(model, opt, b)
    state = mon.state_dict()
    mon.detach()  # killed: no end record
    mon._writer.close()
    again = SpectralMonitor(model, opt, window=3, every=2, path=path, resume=True)
    with pytest.raises(SpectralEdgeError, match="load_state_dict"):
        _step(model, opt, data[6])  # a resume that forgot the state would restart the step count at 0
    again.close()  # gave up: no end record in the earlier run's file
    resumed = SpectralMonitor(model, opt, window=3, every=2, path=path, resume=True)
    resumed.load_state_dict(state)
    for b in data[6:10]:
        _step(model, opt, b)
    resumed.close()
    t = read_trajectory(path)
    assert [r["step"] for r in t.spectra("all")] == [4, 6, 8, 10] and t.of_type("resume")
    assert [r["step"] for r in t.of_type("end")] == [10]
    with pytest.raises(SpectralEdgeError, match="window: file 3, now 4"):
        SpectralMonitor(model, opt, window=4, every=2, path=path, resume=True)


def test_sketched_monitor_skips_a_nonfinite_update_too():
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    mon = SpectralMonitor(model, opt, window=3, every=1, sketch_dim=12, on_nonfinite="skip")
    data = _data(8)
    for b in data[:3]:
        _step(model, opt, b)
    prev = mon._prev.clone()
    good = _poison(model)
    assert mon.capture() == [] and torch.equal(mon._prev, prev) and mon.gram.n_pushed == 3
    with torch.no_grad():
        model[2].weight.copy_(good)
    _step(model, opt, data[3])
    assert mon.gram.n_pushed == 4 and mon.records[-1]["type"] == "spectrum"


def test_compiled_model_records_clean_names(tmp_path):
    model = _mlp()
    compiled = torch.compile(model)  # an OptimizedModule: parameters named "_orig_mod.…" (nothing compiles here)
    assert next(iter(dict(compiled.named_parameters()))).startswith("_orig_mod.")
    opt = torch.optim.SGD(compiled.parameters(), lr=0.1)
    path = tmp_path / "c.jsonl"
    mon = SpectralMonitor(compiled, opt, window=2, every=1, path=path, groups={"head": "2.*", "w": ["0.weight"]})
    mon.close()
    groups = read_trajectory(path).meta["groups"]
    assert groups["head"]["params"] == ["2.weight", "2.bias"] and groups["w"]["params"] == ["0.weight"]
