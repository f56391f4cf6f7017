"""End to end through the command line: train, inspect, definitions, demo (tiny budgets)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from numerics.trajectory import read_trajectory
from verify.cli import app
from verify.harness.config import preset, save_config

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def short_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "short.json"
    save_config(preset("tiny", max_steps=150, eval_every=50,
                       monitor={"window": 4, "every": 10, "groups": ["all", "attn"], "kstar": "argmax"}), path)
    return path


def test_train_then_inspect(tmp_path, short_config):
    res = runner.invoke(app, ["train", "modular", "--config", str(short_config), "--out", str(tmp_path),
                              "--seeds", "3", "--no-progress"])
    assert res.exit_code == 0, res.output
    path = tmp_path / "modular-add-p59-wd1-s3.jsonl"
    assert path.exists()
    t = read_trajectory(path)
    assert t.provenance["seeds"]["init_seed"] == 3
    assert t.provenance["config"]["max_steps"] == 150
    assert set(t.groups()) == {"all", "attn"}
    assert [r["step"] for r in t.spectra("attn")] == list(range(20, 151, 10))
    res = runner.invoke(app, ["inspect", str(path), "--group", "attn", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    assert summary["n_windows"] == 14 and summary["seeds"]["init_seed"] == 3


def test_train_refuses_to_overwrite(tmp_path, short_config):
    args = ["train", "modular", "--config", str(short_config), "--out", str(tmp_path), "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    res = runner.invoke(app, args)
    assert res.exit_code != 0 and "exists" in str(res.exception)


def test_unknown_task_and_bad_config(tmp_path):
    res = runner.invoke(app, ["train", "sorting", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "unknown task 'sorting'" in str(res.exception)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train_fraction": 1.5}))
    res = runner.invoke(app, ["train", "modular", "--config", str(bad), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "train_fraction" in str(res.exception)
    assert not list(tmp_path.glob("*.jsonl"))  # rejected before any training


def test_inspect_foreign_file(tmp_path):
    (tmp_path / "x.jsonl").write_text("hello\n")
    res = runner.invoke(app, ["inspect", str(tmp_path / "x.jsonl")])
    assert res.exit_code != 0 and "not a spectral-edge trajectory" in str(res.exception)


def test_definitions_lists_every_quantity():
    res = runner.invoke(app, ["definitions"])
    assert res.exit_code == 0
    for q in ("kstar:argmax", "alpha:dk_deltaC", "d_crit:textbook", "grok_step:first>=0.95"):
        assert q in res.output


#: SCAN's evaluation decodes the whole test split greedily: a small one keeps this test at a second.
_SMALL_DATA = {"scan": ["--set", "n_train=256", "--set", "n_test=32"]}


@pytest.mark.parametrize("task", ["dyck", "scan", "gpt2"])
def test_every_registered_workload_trains_through_the_cli(tmp_path, task):
    res = runner.invoke(app, ["train", task, "--preset", "tiny", "--out", str(tmp_path), "--no-progress",
                              "--set", "max_steps=12", "--set", "eval_every=6", "--set", "monitor.every=3",
                              "--set", "monitor.window=3", *_SMALL_DATA.get(task, [])])
    assert res.exit_code == 0, res.output
    (path,) = tmp_path.glob("*.jsonl")
    t = read_trajectory(path)
    assert t.provenance["config"]["task"] == task
    for group in t.groups():  # attention weights for the grokking tasks, all parameters for GPT-2
        assert [r["step"] for r in t.spectra(group)] == [6, 9, 12]
    assert t.groups()


def test_theorems_command_shows_the_factor_free_counterexample():
    res = runner.invoke(app, ["theorems", "--only", "davis_kahan.factor_free"])
    assert res.exit_code == 0, res.output
    assert "smallest counterexample" in res.output and "1 PASS, 0 FAIL" in res.output


def test_inspect_several_files_prints_a_table(tmp_path, short_config):
    for seed in ("1", "2"):
        assert runner.invoke(app, ["train", "modular", "--config", str(short_config), "--out", str(tmp_path),
                                   "--seeds", seed, "--no-progress"]).exit_code == 0
    files = sorted(str(p) for p in tmp_path.glob("*.jsonl"))
    res = runner.invoke(app, ["inspect", *files, "--group", "attn"])
    assert res.exit_code == 0, res.output
    lines = res.output.strip().splitlines()
    assert lines[0].startswith("| run |") and len(lines) == 4


def test_claims_and_predict_on_stored_runs(tmp_path):
    from pathlib import Path

    runs = sorted((Path(__file__).resolve().parents[1] / "verify" / "runs" / "modular").glob("*.jsonl.gz"))
    if not runs:
        pytest.skip("no stored modular runs; regenerate with `spectral-edge sweep modular`")
    # two providers: every provider's rows on the stored runs are checked by test_claims_golden (once per session)
    res = runner.invoke(app, ["claims", "--out", str(tmp_path), "--only", "multitask", "--only", "causal"])
    assert res.exit_code == 0, res.output
    assert "| claim |" in res.output and (tmp_path / "claims.json").exists()
    verdicts = [row["verdict"] for row in json.loads((tmp_path / "claims.json").read_text())]
    assert verdicts and set(verdicts) <= {"PASS", "FAIL", "INCONCLUSIVE"}
    res = runner.invoke(app, ["predict", str(runs[0]), "--json"])
    assert res.exit_code == 0, res.output
    groups = json.loads(res.stdout)["groups"]
    assert set(groups) == {"attn", "all"}  # every recorded group by default, a table each
    assert groups["attn"]["evaluation"] is None  # no calibration asked: frozen defaults, no scores
    res = runner.invoke(app, ["predict", str(runs[0].parent), "--calibration-seeds", "42", "--group", "attn",
                              "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)["groups"]["attn"]
    assert all(r["seed"] != 42 for r in out["runs"]) and out["evaluation"] is not None
    assert out["runs"][0]["observed_grok_step"] is not None


def test_main_package_errors_are_one_line_exit_2(tmp_path, capsys):
    from verify.cli import main

    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"train_fraction": 1.5}))
    cases = {
        "unknown task 'sorting'": ["train", "sorting", "--out", str(tmp_path)],
        "unknown preset 'nope'": ["train", "modular", "--preset", "nope", "--out", str(tmp_path)],
        "train_fraction": ["train", "modular", "--config", str(bad), "--out", str(tmp_path)],
        "lr: ": ["train", "modular", "--set", "lr=abc", "--out", str(tmp_path)],
        "file not found": ["train", "modular", "--config", str(tmp_path / "missing.json")],
        "trajectory file not found": ["inspect", str(tmp_path / "missing.jsonl")],
    }
    for needle, argv in cases.items():
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and err.startswith("spectral-edge: error: "), err
        assert len(err.strip().splitlines()) == 1, err  # one line, no traceback
    assert not list(tmp_path.glob("*.jsonl"))


def test_main_internal_errors_exit_1_and_debug_shows_the_traceback(monkeypatch, capsys):
    import verify.cli as cli

    def boom(*a, **k):
        raise RuntimeError("kaput")

    monkeypatch.setattr("verify.tasks.task_names", boom)
    assert cli.main(["tasks"]) == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: kaput" in err and "--debug" in err and "Traceback" not in err
    assert cli.main(["--debug", "tasks"]) == 1
    assert "Traceback (most recent call last)" in capsys.readouterr().err


def test_main_version_and_usage_errors(capsys):
    from importlib.metadata import version

    from verify.cli import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"spectral-edge {version('spectral-edge')}"
    assert main(["train", "modular", "--no-such-option"]) == 2
    assert main(["definitions"]) == 0


def test_list_options_take_several_values():
    from verify.cli import normalise_argv

    assert normalise_argv(["train", "modular", "--seeds", "42", "137", "--preset", "tiny"]) == [
        "train", "modular", "--seeds", "42", "--seeds", "137", "--preset", "tiny"]
    assert normalise_argv(["sweep", "modular", "--wds", "1", "0.5", "--ops", "add", "mul", "--jobs", "2"]) == [
        "sweep", "modular", "--wds", "1", "--wds", "0.5", "--ops", "add", "--ops", "mul", "--jobs", "2"]
    # values stop at what the option cannot take: a path after --calibration-seeds, a file after --only
    assert normalise_argv(["predict", "--calibration-seeds", "42", "137", "verify/runs/modular"]) == [
        "predict", "--calibration-seeds", "42", "--calibration-seeds", "137", "verify/runs/modular"]
    assert normalise_argv(["claims", "--only", "li2", "spectral", "x/y.jsonl"])[:4] == [
        "claims", "--only", "li2", "--only"]
    assert normalise_argv(["li2", "run", "--seeds", "0-14"]) == ["li2", "run", "--seeds", "0-14"]  # a str option
    assert normalise_argv(["train", "m", "--set", "a=1", "b=2", "--", "--seeds", "1", "2"]) == [
        "train", "m", "--set", "a=1", "--set", "b=2", "--", "--seeds", "1", "2"]


def test_train_with_space_separated_seeds(tmp_path, short_config, capsys):
    from verify.cli import main

    rc = main(["train", "modular", "--config", str(short_config), "--out", str(tmp_path), "--seeds", "5", "6",
               "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.glob("*.jsonl")) == ["modular-add-p59-wd1-s5.jsonl",
                                                                 "modular-add-p59-wd1-s6.jsonl"]
