"""The multi-task modular workload (verify.tasks.multitask): labels, the shared trunk, the summed loss, the metrics.

Twins: labels against Python's own arithmetic; a one-op multi-task model against the single-task modular model
(same generator → the same parameters, bit for bit, and the same logits); the loss and metrics against per-task
cross-entropies computed head by head.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from verify.harness.config import preset
from verify.harness.loop import train
from verify.tasks import get_task
from verify.tasks.modular import ModularConfig
from verify.tasks.multitask import MultiTaskConfig, multitask_pairs, task_metric

TASK = get_task("multitask")
SMALL = {"p": 11, "n_layers": 1, "d_model": 16, "n_heads": 2, "d_ff": 32}


def test_labels_match_python_arithmetic() -> None:
    p, ops = 7, ("add", "mul", "x2_y2")
    x, y = multitask_pairs(p, ops)
    assert x.shape == ((p - 1) ** 2, 2) and y.shape == ((p - 1) ** 2, 3)
    expected = [[(a + b) % p, (a * b) % p, (a * a + b * b) % p] for a in range(1, p) for b in range(1, p)]
    assert x.tolist() == [[a, b] for a in range(1, p) for b in range(1, p)]
    assert y.tolist() == expected


def test_one_op_model_is_the_modular_model() -> None:
    single = get_task("modular").build_model(ModularConfig(op="mul", **SMALL), torch.Generator().manual_seed(5), "cpu")
    multi = TASK.build_model(MultiTaskConfig(ops=("mul",), **SMALL), torch.Generator().manual_seed(5), "cpu")
    ps = dict(single.named_parameters())
    pm = {k.replace("heads.mul.", "head."): v for k, v in multi.named_parameters()}
    assert ps.keys() == pm.keys()
    assert all(torch.equal(ps[k], pm[k]) for k in ps)
    x = torch.tensor([[1, 2], [3, 4]])
    assert torch.equal(multi(x)[:, 0], single(x))


def test_parameter_count_adds_one_head_per_op() -> None:
    d, p = 128, 97
    single = get_task("modular").build_model(ModularConfig(), torch.Generator(), "cpu")
    one = sum(t.numel() for t in single.parameters())
    for name, n_ops in (("dual", 2), ("tri", 3)):
        cfg = preset(name, "multitask").task_config
        model = TASK.build_model(cfg, torch.Generator().manual_seed(0), "cpu")
        assert sum(t.numel() for t in model.parameters()) == one + (n_ops - 1) * (d + 1) * p


def test_init_uses_only_the_generator() -> None:
    cfg = MultiTaskConfig(**SMALL)
    state = torch.random.get_rng_state()
    a = TASK.build_model(cfg, torch.Generator().manual_seed(1), "cpu")
    assert torch.equal(state, torch.random.get_rng_state())
    b = TASK.build_model(cfg, torch.Generator().manual_seed(1), "cpu")
    c = TASK.build_model(cfg, torch.Generator().manual_seed(2), "cpu")
    assert all(torch.equal(u, v) for u, v in zip(a.parameters(), b.parameters(), strict=True))
    assert not torch.equal(a.heads["add"].weight, c.heads["add"].weight)
    assert not torch.equal(a.heads["add"].weight, a.heads["mul"].weight)


def test_loss_and_metrics_are_the_per_head_ones() -> None:
    cfg = MultiTaskConfig(ops=("add", "mul", "x2_y2"), **SMALL)
    data = TASK.make_data(cfg, torch.Generator().manual_seed(0))
    model = TASK.build_model(cfg, torch.Generator().manual_seed(0), "cpu")
    x, y = data["test"]
    with torch.no_grad():
        logits = model(x)
        per_ce = [F.cross_entropy(logits[:, i], y[:, i]).item() for i in range(3)]
        per_acc = [(logits[:, i].argmax(-1) == y[:, i]).float().mean().item() for i in range(3)]
        loss = TASK.loss(model, (x, y)).item()
    assert loss == pytest.approx(sum(per_ce), rel=1e-5)
    m = TASK.evaluate(model, data, "test")
    assert m["acc"] == min(per_acc) and m["loss"] == pytest.approx(sum(per_ce), rel=1e-6)
    assert [m[f"acc_{op}"] for op in cfg.ops] == per_acc
    train_x, _ = data["train"]
    assert len(train_x) + len(x) == (cfg.p - 1) ** 2
    assert not set(map(tuple, train_x.tolist())) & set(map(tuple, x.tolist()))


@pytest.mark.parametrize("bad", [{"ops": ()}, {"ops": ("add", "add")}, {"ops": ("div",)}, {"d_model": 10, "n_heads": 3},
                                 {"train_fraction": 0.001}])
def test_bad_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        MultiTaskConfig(**{**SMALL, **bad})


def test_tiny_run_records_every_task() -> None:
    cfg = preset("tiny", "multitask").model_copy(update={"max_steps": 20, "eval_every": 10})
    result = train(cfg, progress=False)
    last = result.history.metrics[-1]
    for op in ("add", "mul"):
        assert task_metric(op) in last and task_metric(op, "loss", "train") in last
    assert last["test_acc"] == min(last[task_metric(op)] for op in ("add", "mul"))
