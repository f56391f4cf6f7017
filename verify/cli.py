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
    from verify.demo import run_demo

    report = run_demo(out, preset=preset, seed=seed, progress=progress)
    typer.echo(report.read_text())
    typer.echo(f"\nreport: {report}\nfigure: {report.with_name('demo.png')}")


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="Workload: modular.")],
    config: Annotated[Path | None, typer.Option(help="JSON config file (fields of the task's config).")] = None,
    preset: Annotated[str, typer.Option(help="Preset to start from when no --config is given.")] = "mod97",
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("out/train"),
    device: Annotated[str, typer.Option(help="torch device, e.g. cpu or cuda.")] = "cpu",
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Run once per seed (all four streams).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Override the weight decay (0 for a control).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train one workload with the spectral monitor; writes a trajectory file per seed."""
    from verify.runner import run_task

    for path in run_task(task, config=config, preset=preset, out=out, device=device, seeds=seeds,
                         weight_decay=weight_decay, progress=progress):
        typer.echo(str(path))


@app.command()
def sweep(
    task: Annotated[str, typer.Argument(help="Workload: modular.")],
    preset: Annotated[str, typer.Option(help="Preset every condition starts from.")] = "demo",
    ops: Annotated[list[str] | None, typer.Option("--ops", help="Operations (default: all six).")] = None,
    seeds: Annotated[list[int] | None, typer.Option("--seeds", help="Seeds (default 42 137 2024).")] = None,
    wds: Annotated[list[float] | None, typer.Option("--wds", help="Weight decays (default 1.0 0.0).")] = None,
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("verify/runs/modular"),
    jobs: Annotated[int, typer.Option(help="Concurrent single-threaded runs.")] = 2,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Run op × weight decay × seed; finished runs are skipped, so re-running resumes a killed sweep."""
    from numerics.errors import SpectralEdgeError
    from verify.config import preset as get_preset
    from verify.sweep import conditions, run_sweep
    from verify.tasks.modular import OPS

    if task != "modular":
        raise SpectralEdgeError(f"unknown task {task!r}; available: modular")
    cfgs = conditions(get_preset(preset), ops or list(OPS), seeds or [42, 137, 2024], wds or [1.0, 0.0])
    for row in run_sweep(cfgs, out, jobs=jobs, progress=progress):
        typer.echo(f"{row['file']}: grok step {row['grok_step']}, wall {row['wall_s']} s")


@app.command()
def inspect(
    trajectory: Annotated[Path, typer.Argument(help="A trajectory file (.jsonl).")],
    group: Annotated[str, typer.Option(help="Parameter group.")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Summarise a trajectory file: provenance, grokking step, k*, R and g23 over time."""
    from verify.summary import summarise

    summary = summarise(trajectory, group=group)
    typer.echo(json.dumps(summary, indent=2) if as_json else summary["text"])


@app.command()
def definitions() -> None:
    """List every registered definition variant with its source tag; the default is marked."""
    import numerics  # noqa: F401 - registers the numerics definitions (α, d_crit)
    import verify.grokking  # noqa: F401 - registers the grokking-step definitions
    from theory import registry

    rows = registry.table()
    width = max(len(r["quantity"]) + len(r["name"]) for r in rows) + 3
    for r in rows:
        mark = "*" if r["default"] else " "
        typer.echo(f"{mark} {r['quantity']}:{r['name']:<{width - len(r['quantity'])}} {r['source']} "
                   f"[{r['version']}]  {r['summary']}")


if __name__ == "__main__":
    app()
