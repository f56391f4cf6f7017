"""Every ``spectral-edge ...`` command quoted in README.md and book/*.md is checked, so the docs cannot drift.

Quoted = an inline code span that starts with ``spectral-edge `` (also inside a Python string of a code cell,
implicit string concatenation undone), or a line of a fenced block that does. Synopses are expanded: ``[X]`` gives
the command without X and one with it (``a\\|b``: one per alternative), ``RUNS...`` / ``RUN.jsonl[.gz] ...`` /
``<task>`` / ``DIR`` become stored runs, a stored file, ``modular`` and a temporary directory.

- short commands (tasks, definitions, inspect, predict, claims on RUNS, theorems with one ``--only`` id) run for
  real on the stored runs (``spectral-edge theorems --profile quick`` gets ``--only svd_gram``);
- long ones (train, sweep, demo, li2 run, store-runs; claims without RUNS, which runs every provider and is run by
  ``tests/test_cli.py``) are parsed without executing: the command and every option exist and the values convert
  (click's ``make_context``), the preset exists for the task, ``--set`` overrides build a valid config, and li2's
  ``--kind`` / store-runs' kinds are known;
- a bare command name (``spectral-edge predict`` in prose) must answer ``--help``.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from verify.cli import app, main, normalise_argv

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "book").glob("*.md"))]
STORED = ROOT / "verify" / "runs" / "modular"
RUN_NOW = {"tasks", "definitions", "inspect", "predict", "theorems"}
runner = CliRunner()


def quoted_commands() -> list[tuple[str, str]]:
    """(doc:line, command text) of every quoted command, in document order, without duplicates."""
    out: dict[str, str] = {}
    for doc in DOCS:
        text = doc.read_text()
        for m in re.finditer(r"`(spectral-edge [^`]+)`", text):
            cmd = re.sub(r'"\s*\n\s*"', "", m.group(1))  # "..." "..." of a Python code cell
            out.setdefault(" ".join(cmd.split()), f"{doc.name}:{text.count(chr(10), 0, m.start()) + 1}")
        for i, line in enumerate(text.splitlines(), 1):
            s = line.strip().removeprefix("$ ")
            if s.startswith("spectral-edge ") and "`" not in s:
                out.setdefault(" ".join(s.split("#")[0].split()), f"{doc.name}:{i}")
    return [(where, cmd) for cmd, where in out.items()]


def expand(cmd: str) -> list[str]:
    """The concrete commands a quoted synopsis stands for."""
    cmd = (cmd.replace("RUN.jsonl[.gz] ...", "@FILE").replace("RUN.jsonl", "@FILE")
           .replace("RUNS...", "@RUNS").replace("<task>", "modular")
           .replace(r"\|", "|"))
    parts = re.split(r"(\[[^\]]*\])", cmd)
    optional = [i for i, p in enumerate(parts) if p.startswith("[") and p != "[.gz]"]
    variants = {"".join(p for i, p in enumerate(parts) if i not in optional)}
    for k in optional:
        for alt in parts[k][1:-1].split("|"):
            alt = alt.strip()
            if not alt.startswith("-") and variants and " " not in alt and parts[k][1:-1].count("|"):
                alt = f"{parts[k][1:-1].split('|')[0].split()[0]} {alt}"  # [--profile quick|thorough]
            variants.add("".join(alt if i == k else p for i, p in enumerate(parts) if i not in optional or i == k))
    # a|b outside brackets (FILE.csv|FILE.parquet): the first alternative
    return sorted(" ".join(t.split("|")[0] for t in v.split()) for v in variants)


def _argv(cmd: str, tmp: Path) -> list[str]:
    stored = sorted(STORED.glob("*.jsonl.gz"))
    subs = {"@FILE": str(stored[0]) if stored else "@FILE", "@RUNS": str(STORED), "DIR": str(tmp),
            "FILE.csv": str(tmp / "runs.csv")}
    args = cmd.split()[1:]
    if "verify/runs/modular/*.jsonl.gz" in args:  # what the shell's glob gives (two files are enough)
        i = args.index("verify/runs/modular/*.jsonl.gz")
        args[i:i + 1] = [str(f) for f in stored[:2]] or ["@FILE"]
    if args[:1] == ["claims"] and "@RUNS" in args:  # the whole sweep twice (both groups) is test_claims_golden's
        i = args.index("@RUNS")
        pick = [str(f) for f in stored if f.name.startswith(("modular-add-p97-wd1-s4", "modular-add-p97-wd0-s4"))]
        return [subs.get(a, a) for a in args[:i]] + (pick or ["@RUNS"]) + [subs.get(a, a) for a in args[i + 1:]]
    return [subs.get(a, a) for a in args]


def _leaf(args: list[str]) -> tuple[list[str], object, list[str]]:
    """(command path, click command, its own arguments)."""
    cmd, path, i = typer.main.get_command(app), [], 0
    while i < len(args) and args[i] in (getattr(cmd, "commands", None) or {}):
        cmd = cmd.commands[args[i]]
        path.append(args[i])
        i += 1
    return path, cmd, args[i:]


def check_parses(args: list[str]) -> dict:
    """The command and its options exist and the values convert; the semantic checks of the module docstring."""
    path, cmd, rest = _leaf(normalise_argv(args))
    assert path, f"no such command: {args[0]!r}"
    ctx = cmd.make_context(" ".join(["spectral-edge", *path]), list(rest), resilient_parsing=False)
    p = ctx.params
    if path[0] in ("train", "sweep"):
        from verify.harness.runner import base_config, parse_sets
        from verify.tasks import get_entry

        entry = get_entry(p["task"])
        if p.get("preset") is not None:
            assert p["preset"] in entry.preset_names(), f"unknown preset {p['preset']!r} for {p['task']}"
        base_config(p["task"], preset_name=p.get("preset"), overrides=parse_sets(p.get("set_")))
    if path == ["li2", "run"]:
        from verify.studies.li2 import KINDS

        assert p["kind"] in KINDS
    if path[0] == "store-runs":
        from verify.studies.backbone import STORED_KINDS

        assert set(p.get("kinds") or []) <= set(STORED_KINDS)
    return p


CASES = [(where, concrete) for where, cmd in quoted_commands() for concrete in expand(cmd)]


def test_the_docs_quote_commands():
    assert len(CASES) >= 20
    names = {c.split()[1] for _, c in CASES}
    assert {"demo", "train", "sweep", "inspect", "predict", "claims", "theorems", "tasks", "definitions"} <= names


@pytest.mark.parametrize(("where", "cmd"), CASES, ids=[f"{w} {c}" for w, c in CASES])
def test_quoted_command(where, cmd, tmp_path, capsys):
    args = _argv(cmd, tmp_path)
    if args == ["--version"]:
        assert main(args) == 0 and capsys.readouterr().out.startswith("spectral-edge ")
        return
    args = [a for a in args if a != "--debug"]  # the global option (verify.cli.main)
    path, _, rest = _leaf(args)
    assert path, f"{where}: `{cmd}` names no command"
    if not rest and path[0] not in ("tasks", "definitions", "demo", "claims", "theorems", "store-runs") \
            and path != ["li2", "claims"]:
        res = runner.invoke(app, [*path, "--help"])  # a command named in prose
        assert res.exit_code == 0, f"{where}: `{cmd} --help` failed: {res.output}"
        return
    try:
        params = check_parses(args)
    except Exception as exc:
        pytest.fail(f"{where}: `{cmd}` does not parse: {type(exc).__name__}: {exc}")
    runs_it = path[0] in RUN_NOW or (path[0] == "claims" and bool(params.get("runs")))
    if not runs_it:
        return
    if path[0] == "theorems" and "--only" not in args:
        args = [*args, "--only", "svd_gram"]
    if path[0] == "predict" and "--group" not in args:
        args = [*args, "--group", "attn"]  # both groups would double the time; the group is what the docs mean
    if any(str(STORED) in a for a in args) and not any(STORED.glob("*.jsonl.gz")):
        pytest.skip("no stored modular runs")
    res = runner.invoke(app, normalise_argv(args))
    assert res.exit_code == 0, f"{where}: `{cmd}` failed: {res.output}\n{res.exception!r}"


def test_a_quoted_command_that_does_not_parse_fails():
    for bad in (["train", "modular", "--preset", "mod97", "--seedz", "42"], ["train", "modular", "--preset", "nope"],
                ["sweep", "modular", "--set", "lr=abc"], ["li2", "run", "--kind", "nope"], ["nosuch"]):
        with pytest.raises(Exception):  # noqa: B017 - any failure to parse will do
            check_parses(bad)
    assert expand("spectral-edge theorems [--profile quick\\|thorough]") == [
        "spectral-edge theorems", "spectral-edge theorems --profile quick", "spectral-edge theorems --profile thorough"]
    assert list(itertools.chain(expand("spectral-edge predict RUNS... [--calibration-seeds 42]"))) == [
        "spectral-edge predict @RUNS", "spectral-edge predict @RUNS --calibration-seeds 42"]
