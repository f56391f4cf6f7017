"""The package cites only what it ships (issue 14, item 3).

The working notes the package was written from (the reconstructed spec, notes on the author's code, offline-ecosystem
and corpus notes, ...) are not part of the package. No shipped or shown text may send a reader to them: the ``.py``
and ``.toml`` files of ``theory/``, ``numerics/`` and ``verify/``, ``pyproject.toml``, the book's pages, the README,
``docs/``, and the ``--help`` text of every ``spectral-edge`` command. The theory the code cites lives in the book's
own theory reference (``book/theory_reference.md``): every "theory reference §X" in the code must name a numbered
section heading of that page. Both checks are shown to fail on planted text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.testing

from verify.cli import app

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("theory", "numerics", "verify")
THEORY_REFERENCE = ROOT / "book" / "theory_reference.md"

#: Names of files that are not shipped (and the old "spec §X" shorthand for one of them).
NOT_SHIPPED = (
    "spectral-edge-math",
    "author-experiments",
    "shared/reference",
    "peers-and-design",
    "seed-research",
    "ecosystem-offline",
    "lm-corpus-offline",
)
NOT_SHIPPED_RE = re.compile("|".join([*map(re.escape, NOT_SHIPPED), r"\bspec §"]), re.IGNORECASE)

#: "theory reference §3.7, §6.11", "theory reference §3.1 point 4, §7.6", "theory reference §4–§5": the first § and
#: every § chained to it by commas, "and", "/" or dashes (text between them up to 40 characters, no other citation).
CITATION_RE = re.compile(r"theory reference\s+(§\d+(?:\.\d+)?(?:(?:[^§;()\]\"]{0,40}?)§\d+(?:\.\d+)?)*)")
SECTION_RE = re.compile(r"§(\d+(?:\.\d+)?)")
HEADING_RE = re.compile(r"^#{1,6}\s+§?(\d+(?:\.\d+)?)\.?\s", re.MULTILINE)


def code_files() -> list[Path]:
    files = [p for pkg in PACKAGES for ext in ("py", "toml") for p in (ROOT / pkg).rglob(f"*.{ext}")]
    return [*sorted(p for p in files if "__pycache__" not in p.parts), ROOT / "pyproject.toml"]


def shown_files() -> list[Path]:
    return [*code_files(), *sorted((ROOT / "book").glob("*.md")), ROOT / "README.md",
            *sorted((ROOT / "docs").glob("*.md"))]


def mentions(text: str) -> list[str]:
    """Each line that names a file the package does not ship."""
    return [line.strip() for line in text.splitlines() if NOT_SHIPPED_RE.search(line)]


def file_mentions(files: list[Path]) -> list[str]:
    return [f"{p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: {m}"
            for p in files for m in mentions(p.read_text(encoding="utf-8"))]


def command_paths(cmd: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and sub-command path of the CLI, the root included."""
    out = [path]
    if hasattr(cmd, "commands"):  # a group (typer builds on its own copy of click)
        for name, sub in sorted(cmd.commands.items()):
            out += command_paths(sub, (*path, name))
    return out


def help_texts(cli: typer.Typer = app) -> dict[str, str]:
    """``spectral-edge ... --help`` for every command path of the Typer app ``cli`` (default: the real CLI)."""
    runner = typer.testing.CliRunner()
    texts = {}
    for path in command_paths(typer.main.get_command(cli)):
        res = runner.invoke(cli, [*path, "--help"], prog_name="spectral-edge")
        assert res.exit_code == 0, f"spectral-edge {' '.join(path)} --help failed: {res.output[-2000:]}"
        texts[" ".join(("spectral-edge", *path))] = res.output
    return texts


def help_mentions(texts: dict[str, str]) -> list[str]:
    return [f"{cmd} --help: {m}" for cmd, text in texts.items() for m in mentions(text)]


def cited_sections(text: str) -> set[str]:
    """The section numbers of every "theory reference §X" citation in ``text`` (line breaks, comment and docstring
    continuations joined first, so a citation wrapped over two lines still counts)."""
    flat = re.sub(r"\s*\n\s*(?:#:?\s*)?", " ", text)
    return {s for m in CITATION_RE.finditer(flat) for s in SECTION_RE.findall(m.group(1))}


def headings(text: str) -> set[str]:
    """The numbered section headings of a page ("## 0.1 Errata", "### 3.4 The gap flow ...", "## 5. ...")."""
    return set(HEADING_RE.findall(text))


def missing_sections(files: list[Path], page: Path) -> list[str]:
    have = headings(page.read_text(encoding="utf-8"))
    return sorted({f"§{s} (cited in {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p})"
                   for p in files for s in cited_sections(p.read_text(encoding="utf-8")) if s not in have})


# --- the checks ------------------------------------------------------------------------------------------------


def test_shipped_files_cite_no_unshipped_file() -> None:
    found = file_mentions(shown_files())
    assert not found, "shipped files name files the package does not ship:\n" + "\n".join(found[:40])


def test_help_texts_cite_no_unshipped_file() -> None:
    texts = help_texts()
    assert len(texts) > 5, "the CLI walk found too few commands"
    found = help_mentions(texts)
    assert not found, "help texts name files the package does not ship:\n" + "\n".join(found)


def test_every_cited_section_is_a_heading_of_the_theory_reference() -> None:
    files = [*code_files(), *sorted(p for p in (ROOT / "book").glob("*.md") if p != THEORY_REFERENCE),
             ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert sum(len(cited_sections(p.read_text(encoding="utf-8"))) for p in files) > 50, "too few citations parsed"
    missing = missing_sections(files, THEORY_REFERENCE)
    assert not missing, "cited sections with no heading in book/theory_reference.md:\n" + "\n".join(missing)


def test_theory_reference_is_in_the_toc() -> None:
    toc = (ROOT / "book" / "_toc.yml").read_text()
    assert re.search(r"-\s*file:\s*theory_reference\s*$", toc, re.MULTILINE)


# --- the checks can fail ---------------------------------------------------------------------------------------


def test_citation_parser() -> None:
    text = ('source="[R] theory reference §3.7, §6.11", "[C] theory reference §4.2 #2", x = 1  # theory\n'
            "    # reference §0.1 errata 2, 3 ([S] §9.9 is not a citation of this kind)\n"
            '"""theory reference §3.1 point 4, §7.6; the statistic is [C] draft Prop 2.1; §8.8"""\n'
            "Rows (theory reference §4–§5)")
    assert cited_sections(text) == {"3.7", "6.11", "4.2", "0.1", "3.1", "7.6", "4", "5"}
    page = "# Theory reference\n\n## 0.1 Errata\n\n### 3.4 The gap flow (Thm 14.2)\n\n## 5. Numbers\n"
    assert headings(page) == {"0.1", "3.4", "5"}


@pytest.mark.parametrize("planted", ["see spectral-edge-math.md §3.4", "(spec §1.2)",
                                     "``shared/reference/author-experiments.md`` §1.2", "lm-corpus-offline.md"])
def test_unshipped_check_fails_on_a_planted_mention(tmp_path: Path, planted: str) -> None:
    """A copy of a real module with one planted mention is caught, and the clean copy is not."""
    src = (ROOT / "theory" / "gap_flow.py").read_text(encoding="utf-8")
    clean, dirty = tmp_path / "clean.py", tmp_path / "dirty.py"
    clean.write_text(src, encoding="utf-8")
    dirty.write_text(src.replace('"""', f'"""{planted} ', 1), encoding="utf-8")
    assert file_mentions([clean]) == []
    assert len(file_mentions([dirty])) == 1


def test_help_check_fails_on_a_planted_help_text() -> None:
    """The CLI walk catches a command whose help names an unshipped file, and passes the real commands next to it."""
    cli = typer.Typer()
    cli.add_typer(app, name="real")

    @cli.command()
    def planted() -> None:
        """Details in author-experiments.md §1.2."""

    texts = help_texts(cli)
    assert len([c for c in texts if c.startswith("spectral-edge real ")]) > 5
    found = help_mentions(texts)
    assert "spectral-edge planted --help: Details in author-experiments.md §1.2." in found
    assert all("planted" in f for f in found), found  # the real commands' help stays clean


def test_section_check_fails_on_a_missing_heading(tmp_path: Path) -> None:
    """A citation of a section the page lacks is reported; a page with the heading passes."""
    code = tmp_path / "mod.py"
    code.write_text('"""Gap flow (theory reference §3.4, §9.99)."""\n', encoding="utf-8")
    page = tmp_path / "page.md"
    page.write_text("# Theory reference\n\n### 3.4 The gap flow\n", encoding="utf-8")
    assert missing_sections([code], page) == [f"§9.99 (cited in {code})"]
    page.write_text("# Theory reference\n\n### 3.4 The gap flow\n\n### 9.99 Planted\n", encoding="utf-8")
    assert missing_sections([code], page) == []
