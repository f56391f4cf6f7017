"""The ``spectral-edge`` command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    name="spectral-edge",
    help="Spectral Edge Thesis, executable: streaming update-Gram spectra, training runs, and checks.",
    no_args_is_help=True,
    add_completion=False,
)


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


@app.command()
def predict(
    runs: Annotated[list[Path], typer.Argument(help="Trajectory files or directories.")],
    calibration_seeds: Annotated[
        list[int] | None,
        typer.Option("--calibration-seeds", help="Fit thresholds on the runs of these seeds; report on the others."),
    ] = None,
    group: Annotated[str, typer.Option(help="Parameter group.")] = "attn",
    grok_definition: Annotated[str | None, typer.Option(
        help="Grokking-step definition (registry quantity grok_step, e.g. first>=0.99: the author's Dyck/SCAN "
        "lead times); default first>=0.95.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Predict the grokking onset from spectral signals (g23 decline, gap opening, A, defect). With
    --calibration-seeds, thresholds are fitted on those runs only and precision / recall / false-positive rate
    are reported on the held-out runs (controls included); otherwise the frozen default detectors are used."""
    from verify.store import load_rundata  # local: a command loads its modules only when it runs
    from verify.studies.onset import FAMILIES, calibrate, default_detectors, evaluate, split_runs  # local: as above
    from verify.studies.onset import predict as predict_run  # local: as above

    loaded = {r.id: r for r in load_rundata(runs, group, grok_definition=grok_definition)}  # a file named twice once
    all_runs = list(loaded.values())
    dets, held_out, report = default_detectors(), all_runs, None
    if calibration_seeds:
        cal, held_out = split_runs([r for r in all_runs if r.finished], calibration_seeds)
        if not cal or not held_out:
            raise typer.BadParameter(f"need runs both with and without seeds {calibration_seeds}", param_hint="runs")
        dets = [calibrate(f, cal) for f in FAMILIES]
        report = evaluate(dets, held_out)  # evaluate() refuses calibration runs
    outs = [predict_run(r, dets) for r in held_out]
    if as_json:
        typer.echo(json.dumps({"runs": outs, "evaluation": report}, indent=1, default=str))
    else:
        typer.echo("\n".join(o["text"] for o in outs))
        if report:
            typer.echo(report["text"])


@app.command()
def claims(
    runs: Annotated[list[Path] | None, typer.Argument(
        help="Trajectory files or directories: the spectral rows on these only (default: every provider's rows "
        "on the stored runs).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write claims.md, claims.json and one PNG per row here.")] = None,
    group: Annotated[str, typer.Option(help="Parameter group (spectral rows on RUNS).")] = "attn",
    only: Annotated[list[str] | None, typer.Option("--only", help="Row providers (verify.claims.CLAIM_PROVIDERS).")]
    = None,
    runs_root: Annotated[Path | None, typer.Option(help="Stored-run root given to the providers.")] = None,
) -> None:
    """Check the quantitative claims of spectral-edge-math.md §4–§5 on stored runs (every provider in
    verify.claims.CLAIM_PROVIDERS, each on its runs under verify/runs/)."""
    from verify.claims import RUNS_ROOT, all_claims, summary, to_markdown, write_claims  # local: loaded when run
    from verify.studies.spectral import claims_table, load_claim_runs  # local: as above

    if runs:
        rows = claims_table(load_claim_runs(runs), group)
    else:
        try:
            rows = all_claims(runs_root or RUNS_ROOT, only=only)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--only") from exc
    typer.echo(to_markdown(rows))
    typer.echo(summary(rows))
    if out is not None:
        md, js = write_claims(rows, out)
        typer.echo(f"wrote {md}, {js} and {sum(r.figure is not None for r in rows)} figures")


@app.command()
def theorems(
    profile: Annotated[str, typer.Option(help="quick (50 examples per theorem) or thorough (1000).")] = "quick",
    only: Annotated[list[str] | None, typer.Option("--only", help="Theorem ids or id prefixes (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Property-test the spec §6 theorems with hypothesis (the factor-free Davis–Kahan bound must fail)."""
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
    size: Annotated[str, typer.Option(help="GPT-2 size preset: cpu (stored), small, 124M (GPU).")] = "cpu",
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Output directory (default verify/runs/KIND).")] = None,
) -> None:
    """Train the missing stored runs of the backbone study (verify.studies.backbone) one after the other,
    single-threaded, compressed; writes runs.json."""
    from verify.studies.backbone import STORED_KINDS  # local: torch only when a command runs
    from verify.studies.backbone import store_runs as store  # local: as above

    unknown = [k for k in kinds or [] if k not in STORED_KINDS]
    if unknown:
        raise typer.BadParameter(f"unknown {unknown}; choose from {', '.join(STORED_KINDS)}", param_hint="KINDS")
    for kind in kinds or list(STORED_KINDS):
        for row in store(kind, out, progress=True, size=size, device=device):
            typer.echo(str(row))

if __name__ == "__main__":
    app()
