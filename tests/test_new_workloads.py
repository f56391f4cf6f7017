"""The sparse-parity and digits workloads: data drawn from the data stream only (deterministic), labels against
brute-force twins, strict configs, the init scale α, and one tiny training run of each through the harness."""

from __future__ import annotations

import importlib.util
import itertools
import math

import pytest
import torch
from pydantic import ValidationError

from verify.harness.config import preset
from verify.harness.runner import train_with_monitor
from verify.store import load_run
from verify.tasks import get_task
from verify.tasks.parity import ParityConfig

pytestmark = pytest.mark.usefixtures("one_thread")

HAS_SKLEARN = importlib.util.find_spec("sklearn") is not None
needs_sklearn = pytest.mark.skipif(not HAS_SKLEARN, reason="the digits workload needs scikit-learn "
                                                           "(pip install 'spectral-edge[digits]')")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def same_data(a: dict, b: dict) -> bool:
    return all(torch.equal(x, y) for k in ("train", "test") for x, y in zip(a[k], b[k], strict=True))


# --- parity -------------------------------------------------------------------------------------------------------


def test_parity_data_come_from_the_data_stream_only() -> None:
    task, cfg = get_task("parity"), ParityConfig(n_bits=12, k=3, n_train=50, n_test=40)
    torch.manual_seed(0)
    a = task.make_data(cfg, gen(1))
    torch.manual_seed(99)  # the global RNG plays no part
    b = task.make_data(cfg, gen(1))
    assert same_data(a, b) and torch.equal(a["secret"], b["secret"])
    assert not same_data(a, task.make_data(cfg, gen(2)))
    x, y = a["train"]
    assert x.shape == (50, 12) and a["test"][0].shape == (40, 12) and y.dtype == torch.int64
    assert set(x.unique().tolist()) == {-1.0, 1.0}


def test_parity_labels_are_the_product_of_the_secret_bits() -> None:
    task, cfg = get_task("parity"), ParityConfig(n_bits=10, k=3, n_train=300, n_test=100)
    data = task.make_data(cfg, gen(7))
    secret = data["secret"].tolist()
    assert len(set(secret)) == 3 and all(0 <= i < 10 for i in secret)
    for split in ("train", "test"):
        x, y = data[split]
        for row, label in zip(x.tolist(), y.tolist(), strict=True):
            odd = sum(row[i] < 0 for i in secret) % 2  # brute force: an odd number of −1s ⇔ product −1 ⇔ class 1
            assert label == odd
    # the label depends on the secret bits only: flipping one other bit leaves it, flipping a secret bit flips it
    x, y = data["train"]
    other = next(i for i in range(10) if i not in secret)
    model_free = x.clone()
    model_free[:, other] *= -1
    from verify.tasks.parity import parity_labels

    assert torch.equal(parity_labels(model_free, data["secret"]), y)
    model_free[:, secret[0]] *= -1
    assert torch.equal(parity_labels(model_free, data["secret"]), 1 - y)


@pytest.mark.parametrize("bad", [{"k": 5, "n_bits": 4}, {"n_train": 0}, {"width": 0}, {"k": 0}, {"foo": 1},
                                 {"n_test": -3}])
def test_parity_config_refuses_bad_values(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ParityConfig(**bad)


def test_parity_init_is_nn_linear_default_from_the_init_stream() -> None:
    task, cfg = get_task("parity"), ParityConfig(n_bits=20, width=64)
    a, b = task.build_model(cfg, gen(3), "cpu"), task.build_model(cfg, gen(3), "cpu")
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert a.fc1.weight.abs().max() <= 1 / math.sqrt(20) and a.fc2.weight.abs().max() <= 1 / math.sqrt(64)
    assert task.monitor_groups(a) == {"first_layer": ["fc1.weight"]} and task.attention_weight_names(a) == []
    assert task.run_label(cfg) == "n20k3-N2000"


def test_parity_tiny_run_finishes_through_the_harness(tmp_path) -> None:
    cfg = preset("tiny", task="parity")
    res = train_with_monitor(cfg, tmp_path / "p.jsonl", progress=False)
    assert res.final_step == cfg.max_steps
    run = load_run(tmp_path / "p.jsonl")
    assert run.finished and run.spectra("first_layer") and run.spectra("all") and run.norms()


# --- digits ---------------------------------------------------------------------------------------------------------


@needs_sklearn
def test_digits_split_is_deterministic_and_labels_match_load_digits() -> None:
    from sklearn.datasets import load_digits

    from verify.tasks.digits import DigitsConfig

    task, cfg = get_task("digits"), DigitsConfig(n_train=300, n_test=200)
    torch.manual_seed(0)
    a = task.make_data(cfg, gen(5))
    torch.manual_seed(1)
    b = task.make_data(cfg, gen(5))
    assert same_data(a, b) and not same_data(a, task.make_data(cfg, gen(6)))
    ref = load_digits()
    for split in ("train", "test"):
        x, y = a[split]
        idx = a[f"{split}_index"].numpy()
        assert y.tolist() == ref.target[idx].tolist()
        assert torch.equal(x, torch.as_tensor(ref.data[idx], dtype=torch.float32) / 16)
    assert len(a["train"][1]) == 300 and len(a["test"][1]) == 200
    assert not set(a["train_index"].tolist()) & set(a["test_index"].tolist())
    assert len(task.make_data(DigitsConfig(n_train=1000), gen(5))["test"][1]) == 797  # default: all the rest


@needs_sklearn
@pytest.mark.parametrize("bad", [{"n_train": 1797}, {"n_train": 1000, "n_test": 800}, {"init_scale": 0.0},
                                 {"init_scale": -2.0}, {"hidden": [200, 0]}, {"hidden": []}, {"alpha": 8}])
def test_digits_config_refuses_bad_values(bad: dict) -> None:
    from verify.tasks.digits import DigitsConfig

    with pytest.raises(ValidationError):
        DigitsConfig(**bad)


@needs_sklearn
@pytest.mark.parametrize("alpha", [1.0, 8.0, 0.5])
def test_digits_init_scale_multiplies_the_default_init(alpha: float) -> None:
    from verify.tasks.digits import DigitsConfig

    task = get_task("digits")
    model = task.build_model(DigitsConfig(init_scale=alpha), gen(11), "cpu")
    # the twin: nn.Linear's default bound 1/√fan_in, the same draws in the same order (weight, bias per layer)
    g, sizes, twin = gen(11), [64, 200, 200, 10], []
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1 / math.sqrt(fan_in)
        twin += [torch.rand(fan_out, fan_in, generator=g) * 2 * bound - bound,
                 torch.rand(fan_out, generator=g) * 2 * bound - bound]
    params = list(model.parameters())
    for p, t in zip(params, twin, strict=True):
        torch.testing.assert_close(p.detach(), alpha * t, rtol=1e-6, atol=0)
    norm = torch.linalg.vector_norm(torch.cat([p.detach().reshape(-1) for p in params]))
    twin_norm = torch.linalg.vector_norm(torch.cat([t.reshape(-1) for t in twin]))
    assert float(norm) == pytest.approx(alpha * float(twin_norm), rel=1e-6)
    assert task.run_label(DigitsConfig(init_scale=alpha, n_train=300)) == f"a{alpha:g}-N300"


@needs_sklearn
def test_digits_tiny_run_finishes_through_the_harness(tmp_path) -> None:
    cfg = preset("tiny", task="digits")
    res = train_with_monitor(cfg, tmp_path / "d.jsonl", progress=False)
    assert res.final_step == cfg.max_steps
    run = load_run(tmp_path / "d.jsonl")
    assert run.finished and run.spectra("weights") and run.spectra("all")
    assert run.norms()[0].groups["weights"] < run.norms()[0].norm
