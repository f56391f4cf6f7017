"""The ``spectral-edge`` command line."""

from __future__ import annotations

import json
import sys
import traceback
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="spectral-edge",
    help="Spectral Edge Thesis, executable: streaming update-Gram spectra, training runs, and checks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version  # local: only for --version

    try:
        return version("spectral-edge")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"spectral-edge {_package_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the package version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="On an error, show the full traceback (place it before "
                                        "the command: spectral-edge --debug claims ...).")] = False,
) -> None:
    """Spectral Edge Thesis, executable: streaming update-Gram spectra, training runs, and checks.

    List options take several values: --seeds 42 137 (same as --seeds 42 --seeds 137). A package error prints one
    line and exits 2; an internal error exits 1 (--debug shows its traceback)."""


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output directory for trajectories, report and figure.")] = Path("out/demo"),
    preset: Annotated[str, typer.Option(help="Training preset (tiny, mod97).")] = "tiny",
    seed: Annotated[int, typer.Option(help="Seed for data, init and batches (diagnostics get their own).")] = 0,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Train the embedded default with weight decay and without, with the monitor; write a report and figure."""
    from verify.demo import run_demo  # local: loaded only when the command runs (fast --help)

    report = run_demo(out, preset=preset, seed=seed, progress=progress)
    typer.echo(report.read_text())
    typer.echo(f"\nreport: {report}\nfigures: {report.with_name('demo.png')}, {report.with_name('phase.png')}")


def _task_help() -> str:
    from verify.tasks import task_names  # local: loaded only when the command runs (fast --help)

    return "Workload: " + ", ".join(task_names()) + "."


SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a field, KEY=VALUE (run or task field; dotted for sub-configs: monitor.every=50, "
    "defect.every=100). Repeatable.")]


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="Workload (see `spectral-edge tasks`), e.g. modular.")],
    config: Annotated[Path | None, typer.Option(help="JSON config file (flat or nested RunConfig).")] = None,
    preset: Annotated[str | None, typer.Option(help="Preset (default: the task's default, mod97 for modular).")]
    = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("out/train"),
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Run once per seed (all four streams).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Override the weight decay (0 for a control).")] = None,
    set_: SetOption = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue interrupted runs from their checkpoints.")]
    = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing trajectories.")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train one workload with the spectral monitor; writes a trajectory file per seed."""
    from verify.harness.runner import parse_sets, run_task  # local: loaded only when the command runs (fast --help)

    for path in run_task(task, config=config, preset=preset, out=out, device=device, seeds=seeds,
                         weight_decay=weight_decay, overrides=parse_sets(set_), progress=progress,
                         overwrite=overwrite, resume=resume, log=typer.echo):
        typer.echo(str(path))


@app.command()
def sweep(
    task: Annotated[str, typer.Argument(help="Workload (see `spectral-edge tasks`), e.g. modular.")],
    preset: Annotated[str | None, typer.Option(help="Preset every condition starts from (modular: demo).")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON config every condition starts from.")] = None,
    ops: Annotated[list[str] | None, typer.Option("--ops", help="modular: operations (default: all six).")] = None,
    grid: Annotated[list[str] | None, typer.Option(
        "--grid", help="Another axis, KEY=V1,V2,... (values as JSON where they parse). Repeatable.")] = None,
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Seeds (default 42 137 2024).")] = None,
    wds: Annotated[list[float] | None, typer.Option("--wds", help="Weight decays (default 1.0 0.0).")] = None,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default verify/runs/TASK).")] = None,
    jobs: Annotated[int, typer.Option(help="Concurrent single-threaded runs.")] = 2,
    device: Annotated[str, typer.Option(help="torch device of every run (cuda: the runs share the GPU).")] = "cpu",
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run grid × weight decay × seed; finished runs are skipped, so re-running resumes a killed sweep."""
    from numerics.errors import SpectralEdgeError  # local: loaded only when the command runs (fast --help)

    # local: loaded only when the command runs (fast --help)
    from verify.harness.runner import base_config, parse_sets, parse_value
    from verify.harness.sweep import conditions, run_sweep  # local: loaded only when the command runs (fast --help)
    from verify.tasks.modular import OPS  # local: loaded only when the command runs (fast --help)

    if preset is None and config is None and task == "modular":
        preset = "demo"
    base = base_config(task, config=config, preset_name=preset, overrides=parse_sets(set_))
    axes: dict[str, list] = {}
    if task == "modular":
        axes["op"] = ops or list(OPS)
    elif ops:
        raise SpectralEdgeError("--ops is for the modular task; use --grid KEY=V1,V2")
    for item in grid or []:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise SpectralEdgeError(f"--grid expects KEY=V1,V2,..., got {item!r}")
        axes[key] = [parse_value(v) for v in values.split(",")]
    cfgs = conditions(base, seeds or [42, 137, 2024], wds or [1.0, 0.0], **axes)
    for row in run_sweep(cfgs, out or Path("verify/runs") / task, jobs=jobs, progress=progress, device=device):
        typer.echo(f"{row['file']}: grok step {row['grok_step']}, wall {row['wall_s']} s")


@app.command()
def ensemble(
    task: Annotated[str, typer.Argument(help="Workload (modular only for now).")] = "modular",
    preset: Annotated[str | None, typer.Option(help="Preset the members start from (default mod97).")] = None,
    config: Annotated[Path | None, typer.Option(help="JSON config the members start from.")] = None,
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Seeds (default 42 137 2024).")] = None,
    wds: Annotated[list[float] | None, typer.Option("--wds", help="Weight decays (default 1.0 0.0).")] = None,
    set_: SetOption = None,
    out: Annotated[Path | None, typer.Option(help="Output directory (default verify/runs/TASK-ensemble).")] = None,
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace existing member files.")] = False,
    archive: Annotated[bool, typer.Option(help="Compress each finished member to .jsonl.gz.")] = True,
    threads: Annotated[int | None, typer.Option(help="torch threads (default: torch's own).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train the seeds × weight decays of one configuration as one vmapped model (verify.harness.ensemble); each
    member writes the trajectory its single run would write (equal to a stated tolerance: batched matrix products
    add in another order). On a CPU this is no faster than one process per core; it is meant for a GPU."""
    import torch  # local: loaded only when the command runs (fast --help)

    from verify.harness.ensemble import train_ensemble  # local: as above
    from verify.harness.runner import base_config, parse_sets  # local: as above

    if threads is not None:
        torch.set_num_threads(threads)
    base = base_config(task, config=config, preset_name=preset or (None if config else "mod97"),
                       overrides=parse_sets(set_))
    results = train_ensemble(base, seeds or [42, 137, 2024], wds or [1.0, 0.0],
                             out or Path("verify/runs") / f"{task}-ensemble", device=device, progress=progress,
                             overwrite=overwrite, archive=archive)
    for r in results:
        typer.echo(f"{r.path.name if r.path else '?'}: final step {r.final_step}, grok step {r.grok_step}"
                   + (f", error: {r.error}" if r.error else ""))


@app.command()
def tasks() -> None:
    """List the registered workloads and their presets (* = default)."""
    from verify.tasks import get_entry, task_names  # local: loaded only when the command runs (fast --help)

    for name in task_names():
        try:
            entry = get_entry(name)
        except Exception as exc:  # a broken workload module must not hide the others
            typer.echo(f"{name}: cannot load ({type(exc).__name__}: {exc})")
            continue
        names = [f"{p}*" if p == entry.default_preset else p for p in entry.preset_names()]
        typer.echo(f"{name}: presets {', '.join(names) or '(none)'}")


@app.command()
def inspect(
    trajectories: Annotated[list[Path], typer.Argument(help="Trajectory files (.jsonl or .jsonl.gz).")],
    group: Annotated[str | None, typer.Option(help="Parameter group (default: all, else the first recorded).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise trajectory files: grokking step, k*, R and g23; several files give a Markdown table."""
    from verify.summary import runs_table, summarise  # local: a command loads its modules only when it runs

    summaries = [summarise(t, group=group) for t in trajectories]
    if as_json:
        typer.echo(json.dumps(summaries[0] if len(summaries) == 1 else summaries, indent=2))
    elif len(summaries) == 1:
        typer.echo(summaries[0]["text"])
    else:
        typer.echo(runs_table(summaries))


GroupOption = Annotated[str | None, typer.Option(
    help="Parameter group (default: every group the files record, a table each). A group no file records is an "
    "error that lists the groups there are.")]
GrokDefinitionOption = Annotated[str | None, typer.Option(
    "--grok-definition", help="Grokking-step definition on the test_acc evals (registry quantity grok_step, see "
    "`spectral-edge definitions`; e.g. first>=0.99, the author's Dyck/SCAN lead times); default first>=0.95.")]
WeightDecayKeyOption = Annotated[str | None, typer.Option(
    "--weight-decay-key", help="Where the runs recorded their weight decay, when not as config weight_decay (or an "
    "optimiser's recorded weight_decay): a dotted path from the header's provenance (config.optim.wd) or a key "
    "found anywhere in it.")]
PositiveOption = Annotated[list[str] | None, typer.Option(
    "--positive", help="Label this run (its id: the file name without .jsonl[.gz]) positive, whatever its data "
    "say. Repeatable; several ids may follow one flag.")]
ControlOption = Annotated[list[str] | None, typer.Option(
    "--control", help="Label this run a control, whatever its data say. Repeatable; several ids may follow.")]


def _user_runs(paths: Sequence[Path], group: str | None, positive: Sequence[str] | None,
               control: Sequence[str] | None) -> tuple[list[Any], list[str], dict[str, str], list[str]]:
    """(finished runs, groups to report, run id → explicit label, "id (status)" of the runs left out).

    Labels come from the data (``RunData.is_control``: positive = grokked with weight decay > 0) unless
    ``--positive`` / ``--control`` name the run. Runs that are not finished (``verify.store.run_status``) are left
    out and reported: an interrupted weight-decay run cut before grokking would count as one that never grokked."""
    from numerics.errors import SpectralEdgeError  # local: a command loads its modules only when it runs
    from verify.store import load_runs  # local: as above

    every = load_runs(paths, finished_only=False)
    if not every:
        raise SpectralEdgeError(f"no trajectory files (*.jsonl, *.jsonl.gz) in {', '.join(map(str, paths))}; "
                                "give the files the monitor wrote or their directory")
    ids = [r.id for r in every]
    labels = {rid: "positive" for rid in positive or []}
    for rid in control or []:
        if labels.get(rid) == "positive":
            raise SpectralEdgeError(f"run {rid!r} is given both --positive and --control; keep one")
        labels[rid] = "control"
    unknown = sorted(set(labels) - set(ids))
    if unknown:
        raise SpectralEdgeError(f"--positive/--control: no run {', '.join(unknown)} among the files; the run ids "
                                f"(file names without .jsonl[.gz]) are {', '.join(ids)}")
    recorded = list(dict.fromkeys(g for r in every for g in r.groups()))
    if group is not None and group not in recorded:
        raise SpectralEdgeError(f"--group {group!r}: no run records it; the groups there are "
                                f"{', '.join(recorded) or 'none'}")
    finished = [r for r in every if r.finished]
    left_out = [f"{r.id} ({r.status.value})" for r in every if not r.finished]
    if not finished:
        raise SpectralEdgeError(f"none of the {len(every)} runs is finished ({', '.join(left_out)}): nothing to "
                                "score; let them finish, or resume them (spectral-edge train ... --resume)")
    return finished, [group] if group is not None else recorded, labels, left_out


def _left_out_line(left_out: Sequence[str]) -> str:
    return (f"left out {len(left_out)} run{'s' if len(left_out) > 1 else ''} not finished (a run counts once its "
            f"last end record has no interrupted record after it and no checkpoint waits): {', '.join(left_out)}")


def _label_line(d: Any) -> str:
    """``id: positive|control (why)`` of a ``RunData``."""
    why = ("set by --positive/--control" if d.label is not None else
           f"grokked at step {d.grok_step} with weight decay {d.weight_decay:g}" if not d.is_control else
           "no weight decay recorded (see --weight-decay-key)" if d.weight_decay is None else
           "weight decay 0" if not d.weight_decay > 0 else "did not grok")
    return f"{d.id}: {'control' if d.is_control else 'positive'} ({why})"


@app.command()
def predict(
    runs: Annotated[list[Path], typer.Argument(help="Trajectory files or directories.")],
    calibration_seeds: Annotated[
        list[int] | None,
        typer.Option("--calibration-seeds", help="Fit thresholds on the runs of these seeds; report on the others."),
    ] = None,
    group: GroupOption = None,
    grok_definition: GrokDefinitionOption = None,
    weight_decay_key: WeightDecayKeyOption = None,
    positive: PositiveOption = None,
    control: ControlOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict the grokking onset from spectral signals (g23 decline, gap opening, A, defect), per group. Runs are
    labelled from their data: positive = grokked (--grok-definition) with weight decay > 0 (as recorded; see
    --weight-decay-key), control = the rest, unless --positive / --control name them; a detector firing on a
    control is marked a false positive. With --calibration-seeds, thresholds are fitted on those runs only and
    precision / recall / false-positive rate are reported on the held-out runs (controls included); otherwise the
    frozen default detectors are used. Unfinished runs are left out and listed."""
    from verify.store import RunData  # local: a command loads its modules only when it runs
    from verify.studies.onset import FAMILIES, calibrate, default_detectors, evaluate, split_runs  # local: as above
    from verify.studies.onset import predict as predict_run  # local: as above

    finished, groups, labels, left_out = _user_runs(runs, group, positive, control)
    result: dict[str, Any] = {}
    for g in groups:
        data = [RunData.from_run(r, g, grok_definition, weight_decay_key=weight_decay_key, label=labels.get(r.id))
                for r in finished if g in r.groups()]
        dets, held_out, report = default_detectors(), data, None
        if calibration_seeds:
            cal, held_out = split_runs(data, calibration_seeds)
            if not cal or not held_out:
                raise typer.BadParameter(f"group {g}: need finished runs both with and without seeds "
                                         f"{calibration_seeds}", param_hint="--calibration-seeds")
            dets = [calibrate(f, cal) for f in FAMILIES]
            report = evaluate(dets, held_out)  # evaluate() refuses calibration runs
        result[g] = {"runs": [predict_run(r, dets) for r in held_out], "evaluation": report,
                     "not_recorded_by": [r.id for r in finished if g not in r.groups()]}
    if as_json:
        typer.echo(json.dumps({"groups": result, "left_out": left_out}, indent=1, default=str))
    else:
        for g, res in result.items():
            if len(result) > 1:
                typer.echo(f"== group {g} ==")
            typer.echo("\n".join(o["text"] for o in res["runs"]))
            if res["evaluation"]:
                typer.echo(res["evaluation"]["text"])
            if res["not_recorded_by"]:
                typer.echo(f"(group {g} not recorded by {', '.join(res['not_recorded_by'])})")
    if left_out:
        typer.echo(_left_out_line(left_out), err=True)


@app.command()
def forecast(
    runs: Annotated[list[Path], typer.Argument(help="Trajectory files or directories (runs in progress too).")],
    model: Annotated[Path | None, typer.Option("--model", help="Forecaster JSON (default: the shipped model).")] = None,
    group: Annotated[str, typer.Option("--group", help="Monitor group (falls back to all, then the first).")] = "all",
    metric: Annotated[str | None, typer.Option(
        "--metric", help="Eval field of the grokking event (default: test_acc; Dyck: test_seq_acc).")] = None,
    horizon: Annotated[int | None, typer.Option(
        "--horizon", help="H: report P(groks within the next H steps) (default: half the current step).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Forecast grokking for each run at its latest window: the probability that it groks within the next H steps,
    the predicted onset step with its 80% interval, and whether the model's operating point has fired (and when).
    The model is frozen (fitted on the stored calibration runs only; a run it was fitted on is flagged in-sample);
    see `spectral-edge forecast-table` for how it scores on held-out runs."""
    from verify.store import load_runs  # local: a command loads its modules only when it runs
    from verify.studies.forecast import Forecaster, forecast_run, frozen_model  # local: as above

    m = Forecaster.load(model) if model is not None else frozen_model()
    found = load_runs(runs, finished_only=False)
    if not found:
        raise typer.BadParameter(f"no trajectory files in {', '.join(map(str, runs))}", param_hint="RUNS")
    out = [forecast_run(m, r, group=group, metric=metric, horizon_steps=horizon) for r in found]
    if as_json:
        typer.echo(json.dumps([f.as_dict() for f in out], indent=1))
    else:
        typer.echo("\n".join(f.line() for f in out))


@app.command("forecast-table")
def forecast_table(
    scheme: Annotated[str, typer.Option("--scheme", help="lowo (leave one workload out) or loso (one seed).")]
    = "lowo",
    runs_root: Annotated[Path | None, typer.Option("--runs-root", help="Stored-run root (default: shipped).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The head-to-head table: the forecaster, its noise null and ablations, and every baseline (weight-norm decline,
    loss oscillation, loss gap, single spectral signals), scored on held-out runs by the same protocol."""
    from verify.store import RUNS_ROOT  # local: as above
    from verify.studies.forecast import evaluate, format_table, head_to_head, load_signals  # local: as above

    if scheme not in ("lowo", "loso"):
        raise typer.BadParameter("must be lowo or loso", param_hint="--scheme")
    rows = head_to_head(evaluate(load_signals(runs_root or RUNS_ROOT), scheme))
    typer.echo(json.dumps(rows, indent=1, default=str) if as_json else format_table(rows))


@app.command("forecast-fit")
def forecast_fit(
    out: Annotated[Path | None, typer.Option("--out", help="Where to write the model (default: the shipped file).")]
    = None,
    runs_root: Annotated[Path | None, typer.Option("--runs-root", help="Stored-run root (default: shipped).")]
    = None,
) -> None:
    """Fit the forecaster on every stored run of the forecast workloads and write it (the shipped model is this)."""
    from verify.store import RUNS_ROOT  # local: as above
    from verify.studies.forecast import MODEL_FILE, fit_stored  # local: as above

    model = fit_stored(runs_root or RUNS_ROOT)
    model.save(out or MODEL_FILE)
    typer.echo(f"fitted on {len(model.calibrated_on)} runs; operating point F(0.5) >= {model.threshold:.4g}; "
               f"wrote {out or MODEL_FILE}")


@app.command("gpu-kit")
def gpu_kit(
    budget_s: Annotated[float, typer.Option("--budget-s", help="Wall-clock budget in seconds; the kit plans fewer "
                                            "steps (or drops jobs, saying why) rather than overrun it.")] = 480.0,
    out: Annotated[Path, typer.Option(help="Output directory (new or empty; --resume: the kit's own).")]
    = Path("gpu-out"),
    device: Annotated[str, typer.Option(help="torch device of the runs (cuda, cuda:1).")] = "cuda",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="The whole path on the CPU at tiny sizes (under a "
                                          "minute; `make test` runs it).")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Continue a kit in --out: its plan.json's steps, "
                                         "finished runs skipped.")] = False,
    corpus_dir: Annotated[Path | None, typer.Option(help="GPT-2 corpus cache (python -m verify.corpus); default "
                                                    "$SPECTRAL_EDGE_CORPUS or ~/.cache/spectral-edge/corpus. "
                                                    "Without one GPT-2 is left out.")] = None,
    plan_only: Annotated[bool, typer.Option("--plan-only", help="Check, calibrate and print the plan; run "
                                            "nothing.")] = False,
) -> None:
    """Every GPU-sized run in one command within a budget: the mod-97 six-op sweep, Dyck and SCAN at the author's
    sizes with controls, GPT-2 124M with AdamW / Muon / SGD; writes trajectories, timing and the Gram push
    bandwidth to --out. Exit code 1 if a planned job did not run."""
    from verify.gpukit import run_kit  # local: torch only when the command runs (fast --help)

    argv = ["spectral-edge", "gpu-kit", f"--budget-s={budget_s:g}", f"--out={out}",
            *(["--dry-run"] if dry_run else [f"--device={device}"]), *(["--resume"] if resume else []),
            *([f"--corpus-dir={corpus_dir}"] if corpus_dir else []), *(["--plan-only"] if plan_only else [])]
    result = run_kit(out, budget_s=budget_s, device=device, dry_run=dry_run, resume=resume, corpus_dir=corpus_dir,
                     plan_only=plan_only, log=typer.echo, argv=argv)
    if not plan_only and not result.ok:
        raise typer.Exit(1)


@app.command()
def claims(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Trajectory files or directories: the spectral rows on these only, a table per group (default: every "
        "provider's rows on the stored runs).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write claims.md, claims.json and one PNG per row here (per "
                                                  "group in GROUP/ when RUNS record several).")] = None,
    group: GroupOption = None,
    grok_definition: GrokDefinitionOption = None,
    weight_decay_key: WeightDecayKeyOption = None,
    positive: PositiveOption = None,
    control: ControlOption = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Row providers (verify.claims.CLAIM_PROVIDERS).")]
    = None,
    runs_root: Annotated[Path | None, typer.Option(help="Stored-run root given to the providers.")] = None,
) -> None:
    """Check the quantitative claims of the thesis (the book's claims page) on stored runs (every provider in
    verify.claims.CLAIM_PROVIDERS, each on its runs under verify/runs/), or the spectral rows on RUNS: labels as
    in `predict` (positive = grokked with weight decay > 0, unless --positive / --control); a row that needs a
    spread over runs is INCONCLUSIVE with fewer than 2 per class; unfinished runs are left out and listed."""
    from numerics.errors import SpectralEdgeError  # local: loaded when run
    from verify.claims import RUNS_ROOT, all_claims, summary, to_markdown, write_claims  # local: loaded when run
    from verify.studies.spectral import claims_table, spectral_runs  # local: as above

    tables: dict[str, list[Any]] = {}
    left_out: list[str] = []
    if runs:
        if only or runs_root:
            raise SpectralEdgeError("--only and --runs-root select the stored runs' providers; with RUNS the "
                                    "spectral rows are computed on RUNS (drop one or the other)")
        finished, groups, labels, left_out = _user_runs(runs, group, positive, control)
        for g in groups:
            sruns = spectral_runs([r for r in finished if g in r.groups()], [g], grok_definition=grok_definition,
                                  weight_decay_key=weight_decay_key, labels=labels)
            tables[g] = claims_table(sruns, g)
            typer.echo(f"## group {g}\nruns: " + "; ".join(_label_line(r.data[g]) for r in sruns))
            _print_claims(tables[g], to_markdown, summary)
    else:
        used = [name for name, v in (("--group", group), ("--grok-definition", grok_definition),
                                     ("--weight-decay-key", weight_decay_key), ("--positive", positive),
                                     ("--control", control)) if v]
        if used:
            verb = "applies" if len(used) == 1 else "apply"
            raise SpectralEdgeError(f"{', '.join(used)} {verb} only to RUNS; the stored providers use their own "
                                    "fixed groups and definitions (give RUNS, or drop them)")
        try:
            tables[""] = all_claims(runs_root or RUNS_ROOT, only=only)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--only") from exc
        _print_claims(tables[""], to_markdown, summary)
    if out is not None:
        for g, rows in tables.items():
            md, js = write_claims(rows, out / g if len(tables) > 1 else out)
            typer.echo(f"wrote {md}, {js} and {sum(r.figure is not None for r in rows)} figures")
    if left_out:
        typer.echo(_left_out_line(left_out), err=True)


def _print_claims(rows: list[Any], to_markdown: Any, summary: Any) -> None:
    typer.echo(to_markdown(rows))
    typer.echo(summary(rows))


@app.command()
def theorems(
    profile: Annotated[str, typer.Option(help="quick (50 examples per theorem) or thorough (1000).")] = "quick",
    only: Annotated[list[str] | None, typer.Option("--only", help="Theorem ids or id prefixes (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Property-test the theory reference §6 theorems with hypothesis (the factor-free Davis–Kahan bound must fail)."""
    from verify.theorems import theorems_command  # local: loaded only when the command runs (fast --help)

    raise typer.Exit(theorems_command(profile, only, as_json))


@app.command()
def definitions() -> None:
    """List every registered definition variant with its source tag; the default is marked."""
    import numerics  # noqa: F401 - registers the numerics definitions (α, d_crit)
    import verify.grokking  # registers the grokking-step definitions
    import verify.studies.defect  # registers the defect-onset definitions
    import verify.studies.modes  # noqa: F401 - registers the functional-mode definitions (binds the same `verify` name)
    from theory import registry  # local: loaded only when the command runs (fast --help)

    rows = registry.table()
    width = max(len(r["quantity"]) + len(r["name"]) for r in rows) + 3
    for r in rows:
        mark = "*" if r["default"] else " "
        typer.echo(f"{mark} {r['quantity']}:{r['name']:<{width - len(r['quantity'])}} {r['source']} "
                   f"[{r['version']}]  {r['summary']}")



# --- the stored runs of studies (train them again) -----------------------------------------------------------------

li2_app = typer.Typer(help="The Li₂ lock-in study (verify.studies.li2): train its stored runs, print its claims rows.",
                      no_args_is_help=True)
app.add_typer(li2_app, name="li2")


def _int_ranges(text: str) -> list[int]:
    """``0-14`` or ``0,3,5`` or ``0-4,9`` → the integers (empty text → none)."""
    out: list[int] = []
    for part in filter(None, text.replace(" ", "").split(",")):
        lo, _, hi = part.partition("-")
        try:
            out += list(range(int(lo), int(hi) + 1)) if hi else [int(lo)]
        except ValueError:
            raise typer.BadParameter(f"expected integers and ranges such as 0-14 or 0,3,5, got {text!r}") from None
    return out


@li2_app.command("run")
def li2_run(
    kind: Annotated[str, typer.Option(help="Condition: grok (σ = x², η = 2e-4), control (η = 0), relu, tiny.")],
    seeds: Annotated[str, typer.Option(help="Seeds, e.g. 0-14 or 0,3,5.")] = "0-14",
    repulsion_seeds: Annotated[str, typer.Option(help="Seeds that measure the Theorem-6 statistic, e.g. 0-2.")] = "",
    out: Annotated[Path | None, typer.Option(help="Output directory (default verify/runs/li2).")] = None,
) -> None:
    """Train and store Li₂ runs one at a time, single-threaded (slimmed, compressed; stored runs are skipped)."""
    import torch  # local, as every command's: `spectral-edge --help` imports neither torch nor a study

    from verify.studies.li2 import DEFAULT_OUT, KINDS, li2_configs, run_li2  # local: as above

    if kind not in KINDS:
        raise typer.BadParameter(f"choose from {', '.join(KINDS)}", param_hint="--kind")
    torch.set_num_threads(1)
    run_li2(li2_configs(kind, _int_ranges(seeds)), out or DEFAULT_OUT, repulsion_seeds=_int_ranges(repulsion_seeds),
            progress=False, log=typer.echo)


@li2_app.command("claims")
def li2_claims(
    paths: Annotated[list[Path] | None, typer.Argument(help="Run files or directories (default verify/runs/li2).")]
    = None,
) -> None:
    """Print the Li₂ claims rows on these runs."""
    from verify.studies.li2 import DEFAULT_OUT, li2_rows, load_li2_runs  # local: torch only when a command runs

    for row in li2_rows(load_li2_runs(paths or [DEFAULT_OUT])):
        typer.echo(f"[{row.verdict}] {row.claim}\n    claimed: {row.claimed}\n    measured: {row.measured}")


@app.command("store-runs")
def store_runs(
    kinds: Annotated[list[str] | None, typer.Argument(
        help="gpt2 (AdamW / Muon / SGD optimiser runs) and/or backbone (mod-97 runs with the backbone tracker); "
        "default both.")] = None,
    size: Annotated[str, typer.Option(help="GPT-2 size preset: cpu and cpu4 (stored), small, 124M (GPU).")] = "cpu",
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Output directory (default verify/runs/KIND).")] = None,
    only: Annotated[list[str] | None, typer.Option(
        "--only", help="Train only the runs whose name contains one of these (e.g. adamw), so that two processes "
        "can share the cores.")] = None,
) -> None:
    """Train the missing stored runs of the backbone study (verify.studies.backbone) one after the other,
    single-threaded, compressed (a stopped run resumes from its checkpoint); writes runs.json."""
    from verify.studies.backbone import STORED_KINDS  # local: torch only when a command runs
    from verify.studies.backbone import store_runs as store  # local: as above

    unknown = [k for k in kinds or [] if k not in STORED_KINDS]
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; choose from {', '.join(STORED_KINDS)}", param_hint="KINDS")
    for kind in kinds or list(STORED_KINDS):
        for row in store(kind, out, progress=True, size=size, device=device, only=only):
            typer.echo(str(row))


@app.command()
def export(
    runs: Annotated[list[Path], typer.Argument(help="Trajectory files (.jsonl, .jsonl.gz) or directories of them.")],
    out: Annotated[Path, typer.Option(help="Output table: FILE.csv, or FILE.parquet (needs pyarrow).")],
    records: Annotated[list[str] | None, typer.Option(
        "--records", help="Record types, one table: spectrum (default), eval, or any other (defect, onset, ...).")]
    = None,
    group: Annotated[list[str] | None, typer.Option(
        "--group", help="Parameter groups of the spectrum rows (default: every group in the files).")] = None,
) -> None:
    """Export trajectories to a CSV or Parquet table: one row per record (run, step, group, w, k*, R, g, g23,
    sigma_1..sigma_W for spectrum records; the metrics for eval records), for pandas, polars or a spreadsheet."""
    from verify.export import export_runs  # local: a command loads its modules only when it runs

    path, n = export_runs(runs, out, records=records or ["spectrum"], groups=group)
    typer.echo(f"wrote {n} rows to {path}")


# --- the entry point: readable errors, --debug, list options with several values -----------------------------------


def _list_options(command: Any, argv: Sequence[str]) -> dict[str, Any]:
    """The options that take several values (``multiple=True``) of the click command ``argv`` names (walking
    sub-commands), by every flag spelling."""
    ctx_cmd = command
    for tok in argv:
        if tok.startswith("-"):
            continue
        if tok in (getattr(ctx_cmd, "commands", None) or {}):
            ctx_cmd = ctx_cmd.commands[tok]
            continue
        break
    multi = {}
    for p in getattr(ctx_cmd, "params", []):  # typer ships its own click: duck-typed, not isinstance
        if getattr(p, "multiple", False) and p.opts and p.opts[0].startswith("-"):
            for flag in p.opts:
                multi[flag] = p
    return multi


def _takes(param: Any, tok: str) -> bool:
    """Whether ``tok`` (not an option) is one more value of the list option ``param``: it converts to the option's
    type; a text value must not look like a path (a run file or directory after ``--only x``) and a KEY=VALUE
    option (``--set``, ``--grid``) needs an ``=``."""
    if tok.startswith("-") and not _is_number(tok):
        return False
    elem = _element_type(param)
    if elem in (int, float):
        try:
            elem(tok)
        except ValueError:
            return False
        return True
    if "/" in tok or "\\" in tok or Path(tok).exists() or tok.endswith((".jsonl", ".gz")):
        return False
    return "=" in tok if any(f in ("--set", "--grid") for f in param.opts) else True


def _element_type(param: Any) -> Any:
    """The element type of a list option (``list[int]`` → int); str when it cannot be told."""
    descriptor = getattr(param, "type_descriptor", None)
    args = typing.get_args(getattr(descriptor, "annotation", None))
    return args[0] if args else str


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def normalise_argv(argv: Sequence[str]) -> list[str]:
    """``--seeds 42 137`` → ``--seeds 42 --seeds 137``: consecutive values after a list option (one declared with
    ``multiple=True`` on the command ``argv`` names: ``--seeds``, ``--wds``, ``--ops``, ``--calibration-seeds``,
    ``--only``, ``--positive``, ``--control``, ``--set``, ``--grid``) become repeated options, as long as each
    converts to the option's type (``_takes``). Everything after ``--`` is left alone."""
    multi = _list_options(typer.main.get_command(app), argv)
    out: list[str] = []
    i, n = 0, len(argv)
    while i < n:
        tok = argv[i]
        out.append(tok)
        i += 1
        if tok == "--":
            out.extend(argv[i:])
            break
        param = multi.get(tok)
        if param is None or i >= n:
            continue
        out.append(argv[i])  # the option's first value, whatever it is (click validates it)
        i += 1
        while i < n and _takes(param, argv[i]):
            out += [tok, argv[i]]
            i += 1
    return out


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error_line(exc: BaseException) -> str | None:
    """The one line a package error prints (what, which file or option, what to do); None for an internal error."""
    from numerics.errors import SpectralEdgeError  # local: cheap, no torch

    if isinstance(exc, SpectralEdgeError):
        return _one_line(str(exc))
    if isinstance(exc, FileNotFoundError):
        name = exc.filename or str(exc)
        return f"file not found: {name}; check the path (relative paths start at {Path.cwd()})"
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and isinstance(exc, pydantic.ValidationError):
        parts = [f"{'.'.join(map(str, e.get('loc', ()))) or e.get('type')}: {e.get('msg')}"
                 + (f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else "")
                 for e in exc.errors()]
        return _one_line(f"invalid {exc.title} configuration: {'; '.join(parts)}; fix the field in the --config "
                         "file or the --set override (spectral-edge train TASK --help lists them)")
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """The ``spectral-edge`` console script: ``app`` with readable errors.

    A package error (``numerics.errors.SpectralEdgeError`` and its subclasses, e.g. ``TrajectoryError``,
    ``CheckpointError``; a config's ``pydantic.ValidationError``; ``FileNotFoundError`` of an input) prints one line
    to stderr and exits 2, as click's usage errors do; any other exception is internal: a short message, exit 1.
    ``--debug`` (anywhere before ``--``) prints the traceback as well. List options take several values
    (``normalise_argv``). Returns the exit code."""
    from typer.core import _click as click  # the click typer runs on (typer ships its own)

    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--") if "--" in args else len(args)
    debug = "--debug" in args[:cut]
    args = [a for i, a in enumerate(args) if not (i < cut and a == "--debug")]
    try:
        args = normalise_argv(args)
        rv = typer.main.get_command(app).main(args=args, prog_name="spectral-edge", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except typer.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 130
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as exc:
        if debug:
            traceback.print_exc()
        line = _error_line(exc)
        if line is not None:
            typer.echo(f"spectral-edge: error: {line}", err=True)
            return 2
        typer.echo(f"spectral-edge: internal error: {type(exc).__name__}: {_one_line(str(exc))[:300]}"
                   + ("" if debug else " (run with --debug for the traceback; please report it)"), err=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
