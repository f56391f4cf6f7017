"""A new user's own grokking script, end to end: a plain PyTorch loop with the 3-line attach and no provenance,
then ``spectral-edge predict`` and ``spectral-edge claims`` on the two files it wrote (issue 14, item 1).

The script: a small MLP on modular addition mod 23 (70 % of the pairs to train on), full-batch AdamW lr 1e-2; the
weight-decay run (ω = 2) groks at about step 640, the control (ω = 0) memorises and never generalises. About 5 s
on one CPU thread.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from numerics import SpectralMonitor
from numerics.trajectory import read_trajectory
from verify.cli import app, main

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")

P, STEPS, EVERY_EVAL = 23, 800, 20


def users_script(path: Path, weight_decay: float, seed: int = 0) -> float:
    """What a user writes: their own model, data and loop; the monitor in three lines. Returns final test acc."""
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    x, y = torch.stack([a.flatten(), b.flatten()], 1), (a + b).flatten() % P
    perm = torch.randperm(P * P, generator=torch.Generator().manual_seed(seed))
    n_train = int(0.7 * P * P)
    train, test = perm[:n_train], perm[n_train:]
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Embedding(P, 32), torch.nn.Flatten(), torch.nn.Linear(64, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, P))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=weight_decay)

    monitor = SpectralMonitor(model, opt, window=5, every=10, path=path)  # 1. attach (no provenance given)
    acc = 0.0
    for step in range(1, STEPS + 1):
        loss = torch.nn.functional.cross_entropy(model(x[train]), y[train])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVERY_EVAL == 0:
            with torch.no_grad():
                acc = float((model(x[test]).argmax(1) == y[test]).float().mean())
            monitor.log(step, test_acc=acc)  # 2. evaluations into the same file
    monitor.close()  # 3. close
    return acc


@pytest.fixture(scope="module")
def user_runs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("user")
    paths = {"wd": d / "mlp-wd2.jsonl", "control": d / "mlp-wd0.jsonl"}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a module fixture runs before the function-scoped one_thread
    try:
        users_script(paths["wd"], 2.0)
        users_script(paths["control"], 0.0)
    finally:
        torch.set_num_threads(threads)
    return paths


def _needs_recorded_weight_decay(path: Path) -> None:
    config = read_trajectory(path).provenance.get("config") or {}
    if "weight_decay" not in config:
        pytest.xfail("numerics.monitor does not record the optimiser's weight decay in the header yet "
                     "(provenance config.weight_decay); labelling from the data needs it")


def test_predict_labels_a_users_runs_from_their_data(user_runs):
    _needs_recorded_weight_decay(user_runs["wd"])
    res = runner.invoke(app, ["predict", str(user_runs["wd"]), str(user_runs["control"]), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert list(out["groups"]) == ["all"] and out["left_out"] == []  # the monitor's default group, nothing dropped
    runs = {r["run"]: r for r in out["groups"]["all"]["runs"]}
    pos, ctrl = runs["mlp-wd2"], runs["mlp-wd0"]
    assert isinstance(pos["observed_grok_step"], int) and pos["label"] == "positive", pos
    assert pos["weight_decay"] == 2.0 and pos["labelled_by"] == "data"
    assert ctrl["label"] == "control" and ctrl["observed_grok_step"] == "did not grok"
    for s in ctrl["signals"]:  # every firing on the control is a false positive
        assert s["outcome"] == ("false positive" if s["fired"] else None)
    text = runner.invoke(app, ["predict", str(user_runs["wd"].parent)]).output
    assert "mlp-wd2" in text and "positive (grokked with weight decay > 0)" in text
    assert "control (weight decay 0)" in text
    assert ("FALSE POSITIVE" in text) == any(s["fired"] for s in ctrl["signals"])


def test_claims_on_a_users_runs(user_runs):
    _needs_recorded_weight_decay(user_runs["wd"])
    res = runner.invoke(app, ["claims", str(user_runs["wd"]), str(user_runs["control"])])
    assert res.exit_code == 0, res.output
    assert "## group all" in res.output
    assert "mlp-wd2: positive (grokked at step" in res.output and "mlp-wd0: control (weight decay 0)" in res.output
    assert "no grokking run with weight decay" not in res.output

    def row(claim: str) -> str:
        (line,) = [ln for ln in res.output.splitlines() if ln.startswith(f"| {claim}")]
        return line

    assert "**PASS**" in row("k* = 1 marks weight decay") or "**FAIL**" in row("k* = 1 marks weight decay")
    # one run per class: no spread, so no mean ± interval comparison can pass or fail
    assert "INCONCLUSIVE" in row("R lower in grokking runs than controls")
    assert "needs ≥ 2 runs per class" in row("R lower in grokking runs than controls")
    assert "INCONCLUSIVE" in row("g₂₃ declines before grokking with weight decay")


def test_overrides_and_grok_definition(user_runs):
    files = [str(user_runs["wd"]), str(user_runs["control"])]
    res = runner.invoke(app, ["predict", *files, "--control", "mlp-wd2", "--json"])
    assert res.exit_code == 0, res.output
    runs = {r["run"]: r for r in json.loads(res.stdout)["groups"]["all"]["runs"]}
    assert runs["mlp-wd2"]["label"] == "control" and runs["mlp-wd2"]["labelled_by"] == "override"
    res = runner.invoke(app, ["claims", *files, "--control", "mlp-wd2"])
    assert res.exit_code == 0 and "no grokking run with weight decay" in res.output
    # the recorded weight decay under another key: a key that holds 0 makes both runs controls
    res = runner.invoke(app, ["predict", *files, "--weight-decay-key", "optimizer.class", "--json"])
    assert res.exit_code != 0 and "is not a number" in str(res.exception)
    # --grok-definition is shared: a lower threshold gives an earlier (or equal) grokking step in both commands
    default = json.loads(runner.invoke(app, ["predict", *files, "--json"]).stdout)
    early = json.loads(runner.invoke(app, ["predict", *files, "--json", "--grok-definition", "first>=0.5"]).stdout)
    step = {r["run"]: r["observed_grok_step"] for r in default["groups"]["all"]["runs"]}["mlp-wd2"]
    step5 = {r["run"]: r["observed_grok_step"] for r in early["groups"]["all"]["runs"]}["mlp-wd2"]
    if isinstance(step, int):
        assert step5 <= step
        res = runner.invoke(app, ["claims", *files, "--grok-definition", "first>=0.5"])
        assert f"mlp-wd2: positive (grokked at step {step5} " in res.output


def test_unknown_group_is_an_error_listing_the_groups(user_runs, capsys):
    rc = main(["predict", str(user_runs["wd"]), "--group", "nope"])
    err = capsys.readouterr().err
    assert rc == 2 and "'nope'" in err and "the groups there are all" in err and len(err.strip().splitlines()) == 1
    rc = main(["claims", str(user_runs["wd"]), "--group", "attn"])
    assert rc == 2 and "the groups there are all" in capsys.readouterr().err


def test_unfinished_runs_are_reported_not_dropped_silently(user_runs, tmp_path):
    shutil.copy(user_runs["control"], tmp_path / "mlp-wd0.jsonl")
    lines = user_runs["wd"].read_text().splitlines()
    (tmp_path / "mlp-cut.jsonl").write_text("\n".join(lines[: len(lines) // 2]) + "\n")  # killed: no end record
    for cmd in ("predict", "claims"):
        res = runner.invoke(app, [cmd, str(tmp_path)])
        assert res.exit_code == 0, res.output
        assert "left out 1 run not finished" in res.output and "mlp-cut (unfinished)" in res.output
    res = runner.invoke(app, ["predict", str(tmp_path / "mlp-cut.jsonl")])
    assert res.exit_code != 0 and "none of the 1 runs is finished" in str(res.exception)
