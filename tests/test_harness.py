"""The harness knows no study: every registered measurement honours the protocol, and a new study plugs in by
registration alone — its config section validates, it measures at its cadence on its own stream without moving
training, its records reach the trajectory and the history, and its state survives a checkpoint bitwise."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import Field

from numerics.trajectory import read_trajectory
from verify.harness.config import CadenceConfig, RunConfig, preset
from verify.harness.loop import train
from verify.harness.measurement import (
    BaseMeasurement,
    Measurement,
    RunContext,
    measurement_class,
    measurement_names,
)
from verify.harness.runner import train_with_monitor
from verify.plugins import MEASUREMENTS, register_measurement

pytestmark = pytest.mark.usefixtures("one_thread")

STUDY_MEASUREMENTS = ["defect", "probes", "backbone", "lch"]


def test_the_studies_register_their_measurements_in_order() -> None:
    assert measurement_names()[: len(STUDY_MEASUREMENTS)] == STUDY_MEASUREMENTS


@pytest.mark.parametrize("name", STUDY_MEASUREMENTS)
def test_every_registered_measurement_honours_the_protocol(name: str) -> None:
    cls = measurement_class(name)
    assert issubclass(cls.Config, CadenceConfig), f"{name}: Config must be a CadenceConfig (every = 0/None: off)"
    assert isinstance(cls.record_type, str) and cls.record_type
    assert cls.Config().every is None, f"{name}: a study is off unless its section turns it on"
    cfg = preset("tiny")
    assert isinstance(cls(cfg.section(name), cfg), Measurement)


class NormConfig(CadenceConfig):
    """The toy study's section: ‖θ‖ plus a noisy probe of it, every ``every`` steps."""

    noise: float = Field(0.1, ge=0.0)


class NormMeasurement(BaseMeasurement):
    """A toy study in a dozen lines: ‖θ‖ and ‖θ‖ + noise from its own stream (its state is that stream)."""

    Config = NormConfig
    record_type = "norm"

    def at_setup(self, ctx: RunContext) -> None:
        self.gen = ctx.generator("diag")
        torch.randn(1000)  # a careless study: draws from the global RNG, which the loop must shield training from

    def measure(self, ctx: RunContext, step: int, *, final: bool) -> list[dict[str, Any]]:
        norm = float(torch.sqrt(sum((p.detach().double() ** 2).sum() for p in ctx.model.parameters())))
        return [{"norm": norm, "noisy": norm + self.config.noise * float(torch.randn(1, generator=self.gen))}]

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])


@pytest.fixture
def norm_study():
    register_measurement("norm", NormMeasurement)  # the one registration line of a new study
    yield
    MEASUREMENTS.pop("norm", None)


def small(**overrides: Any) -> RunConfig:
    return preset("tiny", **{"p": 23, "d_model": 32, "max_steps": 30, "eval_every": 10, "early_stop": None,
                             **overrides})


def test_a_new_study_plugs_in_by_registration_alone(norm_study, tmp_path) -> None:
    with pytest.raises(ValueError, match=r"norm\.noise"):
        small(norm={"every": 5, "noise": -1})
    on = train_with_monitor(small(norm={"every": 5}), tmp_path / "on.jsonl", progress=False)
    off = train(small(), progress=False)
    assert on.history.train_loss == off.history.train_loss  # measuring never changes the run
    assert [r["step"] for r in on.history.norm] == [0, 5, 10, 15, 20, 25, 30]
    stored = read_trajectory(tmp_path / "on.jsonl").of_type("norm")
    assert [r["norm"] for r in stored] == [r["norm"] for r in on.history.norm]


def test_a_new_studys_state_is_checkpointed(norm_study, tmp_path) -> None:
    cfg = small(norm={"every": 5}, checkpoint_every=10)
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
    assert resumed.history.norm == ref.history.norm  # the noisy draws continue the same stream


def test_an_unknown_section_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match=r"norm\s+Extra inputs are not permitted"):
        small(norm={"every": 5})
