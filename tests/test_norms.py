"""The ``norms`` study: the recorded ‖θ‖₂ (all trainable parameters, and per monitor group) equals torch's norm of
the parameters at that step, computed on an independent twin run; measuring never changes training; a resumed run
records the same norms; the config section is strict."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from numerics.trajectory import read_trajectory
from verify.harness.config import preset
from verify.harness.loop import train
from verify.harness.measurement import Measurement, measurement_class, measurement_names
from verify.harness.runner import train_with_monitor
from verify.store import NormRecord, load_run
from verify.studies.norms import NormConfig, NormMeasurement

pytestmark = pytest.mark.usefixtures("one_thread")

STEPS = 30


def tiny(**overrides):
    """Sparse parity, tiny preset: 30 steps, eval every 10, monitor groups ``all`` and ``first_layer``."""
    return preset("tiny", task="parity", **{"max_steps": STEPS, "eval_every": 10, "norms": {"every": None},
                                            **overrides})


def torch_norm(model: torch.nn.Module, names: list[str] | None = None) -> float:
    params = [p for n, p in model.named_parameters() if names is None or n in names]
    return float(torch.linalg.vector_norm(torch.cat([p.detach().double().reshape(-1) for p in params])))


def test_the_study_is_registered_and_off_by_default() -> None:
    assert "norms" in measurement_names()
    cls = measurement_class("norms")
    assert cls is NormMeasurement and cls.record_type == "norm"
    cfg = preset("tiny")  # modular: no norms section given
    assert cfg.section("norms").every is None
    assert isinstance(cls(cfg.section("norms"), cfg), Measurement)


def test_recorded_norms_match_an_independent_twin_and_training_is_unchanged(tmp_path) -> None:
    path = tmp_path / "on.jsonl"
    on = train_with_monitor(tiny(norms={"every": 10}), path, progress=False)
    off = train(tiny(), progress=False)
    assert on.history.train_loss == off.history.train_loss  # bitwise: measuring never moves training
    for p, q in zip(on.model.parameters(), off.model.parameters(), strict=True):
        assert torch.equal(p, q)
    records = load_run(path).norms()
    assert [r.step for r in records] == [0, 10, 20, 30]
    assert all(isinstance(r, NormRecord) for r in records)
    assert [r["norm"] for r in read_trajectory(path).of_type("norm")] == [r.norm for r in records]
    for r in records:  # twin: the same config trained (unmeasured) to step r.step, its norm taken by torch
        twin = train(tiny(max_steps=r.step), progress=False).model if r.step else _init_model(tiny())
        assert r.norm == pytest.approx(torch_norm(twin), rel=1e-12)
        assert set(r.groups) == {"all", "first_layer"}
        assert r.groups["all"] == pytest.approx(r.norm, rel=1e-15)
        assert r.groups["first_layer"] == pytest.approx(torch_norm(twin, ["fc1.weight"]), rel=1e-12)


def _init_model(cfg) -> torch.nn.Module:
    from verify.tasks import get_task

    return get_task(cfg.task).build_model(cfg.task_config, cfg.generator("init"), "cpu")


def test_without_a_monitor_the_record_has_no_groups() -> None:
    res = train(tiny(norms={"every": 15}), progress=False)
    assert [r["step"] for r in res.history.norms] == [0, 15, 30]
    assert all("groups" not in r for r in res.history.norms)
    assert res.history.norms[-1]["norm"] == pytest.approx(torch_norm(res.model), rel=1e-12)


def test_state_round_trip_and_a_resumed_run_records_the_same_norms(tmp_path) -> None:
    cfg = tiny(norms={"every": 5}, checkpoint_every=10)
    m = NormMeasurement(cfg.section("norms"), cfg)
    state = m.state_dict()
    m.load_state_dict(state)
    assert m.state_dict() == state == {}
    ref = train_with_monitor(cfg, tmp_path / "ref.jsonl", progress=False)

    class Killed(Exception):
        pass

    def kill(step: int) -> None:
        if step == 17:
            raise Killed

    path = tmp_path / "cut.jsonl"
    with pytest.raises(Killed):
        train_with_monitor(cfg, path, progress=False, step_callback=kill)
    resumed = train_with_monitor(cfg, path, progress=False, resume=True)
    assert [r.norm for r in load_run(path).norms()] == [r.norm for r in load_run(tmp_path / "ref.jsonl").norms()]
    assert resumed.history.train_loss[-1] == ref.history.train_loss[-1]


@pytest.mark.parametrize("bad", [{"every": 2.5}, {"every": "5"}, {"every": -1}, {"every": 5, "groups": True}])
def test_the_config_is_strict(bad) -> None:
    with pytest.raises(ValidationError):
        NormConfig(**bad)
    with pytest.raises(ValueError, match="norms"):
        tiny(norms=bad)


def test_zero_is_off() -> None:
    assert NormConfig(every=0).every is None
    assert tiny(norms={"every": 0}).norms.every is None


def test_norm_record_parses_a_stored_record() -> None:
    r = NormRecord.from_record({"type": "norm", "step": 7, "norm": 2.5, "groups": {"all": 2.5, "w": 1}})
    assert r == NormRecord(7, 2.5, {"all": 2.5, "w": 1.0})
    assert NormRecord.from_record({"type": "norm", "step": 0, "norm": 1}).groups == {}
