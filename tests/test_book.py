"""The executable book (issue 7): it builds with every page executed, math renders, figures load, links resolve.

``test_book_builds_and_renders`` runs ``jb build book -W --keep-going`` (warnings are errors, every page executed),
checks the built HTML statically (every ``<img>`` is a decodable PNG/SVG file, every internal link and anchor
exists) and opens every page in headless Chromium after MathJax ran (``--dump-dom``): math must be rendered
(``mjx-container`` elements, no raw ``$$``, ``\\(`` or ``\\[`` left in the text). Two screenshots are saved under
``book/_build/screenshots/`` as build artifacts. The checkers are unit-tested on pages built to fail them, and a
one-page book that reads a missing stored run must fail its build with a message naming the file and the command.

Needs the ``book`` extra (``pip install -e .[book]``) and Debian's ``chromium``; ``make test`` installs both.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlparse

import pytest

from numerics.trajectory import SCHEMA, SCHEMA_VERSION
from verify.book_data import CACHE_ENV, store_rows
from verify.claims import RUNS_ROOT, ClaimRow
from verify.store import StoredRunError, load_stored, regeneration_command, run_files

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
HTML = BOOK / "_build" / "html"
SCREENSHOTS = BOOK / "_build" / "screenshots"
#: A runaway guard for the whole build (execution included), not a speed target (those live in ``make bench``): the
#: same build took 155 CPU-s on one 2-core machine and about 4× as long on another whose matrix products are 4× slower
#: (a mod-97 step: 22 ms there, 97 ms here), so a tight budget would test the machine, not the book.
BUILD_BUDGET_S = 1500.0
#: Wall-clock limit of the background build, from its start (it shares the machine with the rest of the suite).
BUILD_TIMEOUT_S = 2400.0
SCREENSHOT_PAGES = ("spectral_edge", "claims")


# --- the checkers ----------------------------------------------------------------------------------------------


class _Page(HTMLParser):
    """Collects images, links, ids, math containers and the visible text outside code/script/rendered math."""

    _SKIP: ClassVar[set[str]] = {"script", "style", "pre", "code", "mjx-container", "textarea", "noscript"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.links: list[str] = []
        self.assets: list[str] = []  # <script src>, <link rel=stylesheet href>
        self.ids: set[str] = set()
        self.mjx = 0
        self.static_math = 0
        self.text: list[str] = []
        self._skip_depth = 0
        self._stack: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "img" and a.get("src"):
            self.images.append(str(a["src"]))
        if tag == "a" and a.get("href"):
            self.links.append(str(a["href"]))
        if tag == "script" and a.get("src"):
            self.assets.append(str(a["src"]))
        if tag == "link" and "stylesheet" in (a.get("rel") or "").split() and a.get("href"):
            self.assets.append(str(a["href"]))
        if tag == "mjx-container":
            self.mjx += 1
        if "math" in (a.get("class") or "").split():
            self.static_math += 1
        if tag in ("img", "br", "hr", "meta", "link", "input", "source", "col", "area", "base", "wbr"):
            return  # void elements: no end tag
        self._stack.append(tag)
        if tag in self._SKIP:
            self._skip_depth += 1

    def handle_endtag(self, tag: str) -> None:
        if tag not in self._stack:
            return
        while self._stack:
            top = self._stack.pop()
            if top in self._SKIP:
                self._skip_depth -= 1
            if top == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._skip_depth == 0:
            self.text.append(data)


def parse_page(html: str) -> _Page:
    p = _Page()
    p.feed(html)
    p.close()
    return p


_RAW_MATH = re.compile(r"\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{")


def math_problems(rendered_html: str, *, expect_math: bool) -> list[str]:
    """Problems of a page's DOM *after* MathJax ran: raw TeX delimiters left in the visible text, or no rendered
    math at all on a page whose source has math."""
    p = parse_page(rendered_html)
    problems = []
    text = " ".join(p.text)
    for m in _RAW_MATH.finditer(text):
        lo = max(0, m.start() - 40)
        problems.append(f"raw TeX {m.group()!r} in the text: …{text[lo:m.end() + 40]}…")
    if expect_math and p.mjx == 0:
        problems.append("the page has math but no rendered mjx-container (MathJax did not run)")
    return problems


def _image_ok(path: Path) -> bool:
    """A non-empty PNG/SVG/JPEG/GIF file whose header matches its kind."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    head = path.read_bytes()[:16]
    return (head.startswith(b"\x89PNG\r\n\x1a\n") or head.startswith(b"\xff\xd8") or head.startswith(b"GIF8")
            or (path.suffix == ".svg" and b"<svg" in path.read_bytes()[:4096]))


def static_problems(html_dir: Path, page: Path) -> list[str]:
    """Broken images, broken internal links (file or #anchor) and scripts/stylesheets that are missing or would be
    fetched from the network (the built HTML must work offline) of one built page."""
    p = parse_page(page.read_text(encoding="utf-8"))
    problems = []
    scripts = [urlparse(a).path for a in p.assets if not a.endswith(".css") and ".css?" not in a]
    for twice in sorted({x for x in scripts if scripts.count(x) > 1}):
        problems.append(f"script {twice} is loaded {scripts.count(twice)} times")
    for src in p.assets:
        u = urlparse(src)
        if u.scheme in ("http", "https") or src.startswith("//"):
            problems.append(f"asset loaded from the network: {src}")
        elif u.scheme != "data" and not (page.parent / unquote(u.path)).resolve().is_file():
            problems.append(f"asset {src} is missing")
    for src in p.images:
        u = urlparse(src)
        if u.scheme in ("http", "https"):
            problems.append(f"image loaded from the network: {src}")
            continue
        if u.scheme == "data":
            continue
        target = (page.parent / unquote(u.path)).resolve()
        if not _image_ok(target):
            problems.append(f"image {src} does not load ({target} missing, empty or not an image)")
    for href in p.links:
        u = urlparse(href)
        if u.scheme in ("http", "https", "mailto", "javascript") or href.startswith("//"):
            continue
        target = page if not u.path else (page.parent / unquote(u.path)).resolve()
        if not target.exists():
            problems.append(f"broken link {href}: {target} does not exist")
            continue
        if u.fragment and target.suffix == ".html":
            ids = parse_page(target.read_text(encoding="utf-8")).ids if target != page else p.ids
            if unquote(u.fragment) not in ids:
                problems.append(f"broken anchor {href}: no id {u.fragment!r} in {target.name}")
    return problems


# --- headless Chromium -----------------------------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        exe = shutil.which(name)
        if exe:
            return exe
    pytest.fail("headless Chromium is missing: `make test` installs it (apt-get install -y chromium), or run "
                "`apt-get update && apt-get install -y --no-install-recommends chromium fonts-dejavu-core`")


def _chromium(args: list[str], url: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="book-chromium-") as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args, url]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def rendered_dom(page: Path) -> str:
    out = _chromium(["--dump-dom"], page.as_uri())
    assert out.returncode == 0 and out.stdout.strip(), f"chromium could not open {page}: {out.stderr[-2000:]}"
    return out.stdout


def screenshot(page: Path, png: Path) -> Path:
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    out = _chromium(["--window-size=1280,1600", f"--screenshot={png}"], page.as_uri())
    assert png.is_file() and png.stat().st_size > 10_000, f"no screenshot of {page}: {out.stderr[-2000:]}"
    return png


# --- building --------------------------------------------------------------------------------------------------


def jb() -> list[str]:
    exe = Path(sys.executable).parent / "jb"
    if not exe.exists():
        pytest.fail("jupyter-book is missing: `make test` installs the book extra (pip install -e '.[book]')")
    return [str(exe)]


def _build_command(book: Path, claims_cache: Path | None) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    if claims_cache is not None:
        env[CACHE_ENV] = str(claims_cache)
    return [*jb(), "build", str(book), "-W", "--keep-going"], env


def build(book: Path, timeout: float = 1200, *, claims_cache: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``jb build book -W --keep-going``; ``claims_cache``: the claims cache the pages read (``verify.book_data``)."""
    cmd, env = _build_command(book, claims_cache)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=ROOT)


#: Environment variable naming the session's shared build folder (``tests/conftest.py`` creates it before any
#: pytest-xdist worker starts, so every worker sees the same one).
WORK_ENV = "SPECTRAL_EDGE_BOOK_WORK"

#: Runs the build as its child, then writes ``result.json`` (exit code, wall s, CPU-s of the build and its kernels)
#: atomically: any process of the session can wait for the result, whichever started the build.
_WRAPPER = """
import json, os, resource, subprocess, sys, time
work, cmd = sys.argv[1], json.loads(sys.argv[2])
t0 = time.time()
with open(os.path.join(work, "build.log"), "wb") as log:
    code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
use = resource.getrusage(resource.RUSAGE_CHILDREN)
tmp = os.path.join(work, "result.json.tmp")
with open(tmp, "w") as f:
    json.dump({"code": code, "wall": time.time() - t0, "cpu": use.ru_utime + use.ru_stime}, f)
os.replace(tmp, os.path.join(work, "result.json"))
"""


@dataclass
class BackgroundBuild:
    """The real book's build, started once per session (``start_book_build``: by ``tests/conftest.py`` when the
    suite's collection ends, else by the test itself) in a session-shared folder. The page kernels run one after the
    other on one core, so the build runs beside the rest of the suite instead of after it (on 2 cores, with or without
    pytest-xdist). The session's claims rows are in the build's claims cache (``start_book_build``), and the pages
    read them (``verify.book_data.book_claims``)."""

    work: Path  # the session's build folder: claim, pid, build.log, result.json, claims-cache

    def wait(self, timeout: float) -> tuple[int, float, float, str]:
        """(exit code, wall s, CPU-s of jb and its kernels, the log); kills the build at ``timeout`` s after its
        start. The CPU time is the build's own (``RUSAGE_CHILDREN`` of its wrapper), whatever else the suite ran."""
        result = self.work / "result.json"
        while not result.exists():
            started = (self.work / "pid").stat().st_mtime if (self.work / "pid").exists() else time.time()
            if time.time() - started > timeout:
                self.stop()
                log = (self.work / "build.log").read_text(encoding="utf-8", errors="replace")
                return -9, time.time() - started, float("nan"), log
            time.sleep(1.0)
        r = json.loads(result.read_text())
        return int(r["code"]), float(r["wall"]), float(r["cpu"]), (self.work / "build.log").read_text(
            encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """Kill a build that is still running (its whole process group)."""
        pid = self.work / "pid"
        if pid.exists() and not (self.work / "result.json").exists():
            try:
                os.killpg(int(pid.read_text()), 9)
            except (ProcessLookupError, ValueError, PermissionError):
                pass


def start_book_build(work: Path | None = None, digest: str | None = None,
                     provider_rows: Mapping[str, Sequence[ClaimRow]] | None = None) -> BackgroundBuild:
    """The session's book build in ``work`` (default: the folder named by ``WORK_ENV``, else a new temporary one),
    started unless a process of the session already claimed it (an exclusive ``claim`` file: one build per session
    across pytest-xdist workers). The claims rows of ``provider_rows``, computed on the stored runs whose inputs
    digest is ``digest``, go into the build's claims cache first, so that the pages read them instead of computing
    them (without them, the first claims page computes them)."""
    if work is None:
        env = os.environ.get(WORK_ENV)
        work = Path(env) if env else Path(tempfile.mkdtemp(prefix="spectral-edge-book-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(work / "claim", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        while not (work / "pid").exists():  # the claimant is storing the rows; the build starts right after
            time.sleep(0.5)
        return BackgroundBuild(work)
    cache = work / "claims-cache"
    if digest is not None and provider_rows:
        for name, rows in provider_rows.items():
            store_rows(name, list(rows), RUNS_ROOT, cache, digest=digest)
    shutil.rmtree(BOOK / "_build", ignore_errors=True)
    cmd, env = _build_command(BOOK, cache)
    proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(work), json.dumps(cmd)], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    tmp = work / "pid.tmp"
    tmp.write_text(str(proc.pid))
    tmp.replace(work / "pid")
    return BackgroundBuild(work)


def toc_pages(book: Path) -> list[str]:
    """Page names of ``_toc.yml`` (root and every ``file:`` entry)."""
    text = (book / "_toc.yml").read_text()
    return re.findall(r"^root:\s*(\S+)", text, re.M) + re.findall(r"-\s*file:\s*(\S+)", text)


# --- the checkers can fail -------------------------------------------------------------------------------------


def test_math_checker_flags_raw_tex() -> None:
    raw = "<html><body><p>the gap $$g = \\sigma_1 - \\sigma_2$$ opens</p></body></html>"
    assert math_problems(raw, expect_math=True)
    inline = "<html><body><p>where \\(k^*\\) is</p><mjx-container>x</mjx-container></body></html>"
    assert any("\\(" in p for p in math_problems(inline, expect_math=True))
    unrendered = '<html><body><span class="math">x</span></body></html>'
    assert math_problems(unrendered, expect_math=True)
    ok = ("<html><body><p>k</p><mjx-container><mjx-math>\\(</mjx-math></mjx-container><pre>$$ in code</pre>"
          "</body></html>")
    assert math_problems(ok, expect_math=True) == []


def test_static_checker_flags_broken_links_and_images(tmp_path: Path) -> None:
    png = tmp_path / "ok.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "other.html").write_text('<html><body><h1 id="here">x</h1></body></html>')
    page = tmp_path / "page.html"
    (tmp_path / "mathjax.js").write_text("// local")
    page.write_text('<html><head><script src="mathjax.js?v=1"></script></head><body><img src="ok.png">'
                    '<a href="other.html#here">ok</a><a href="#top" id="top">t</a>'
                    '<a href="https://example.org">external</a></body></html>')
    assert static_problems(tmp_path, page) == []
    bad = tmp_path / "bad.html"
    bad.write_text('<html><head><script src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>'
                   '<link rel="stylesheet" href="gone.css">'
                   '<script defer src="mathjax.js?v=1"></script><script src="mathjax.js?v=1"></script></head>'
                   '<body><img src="missing.png"><img src="empty.png"><img src="https://cdn/x.png">'
                   '<a href="nowhere.html">x</a><a href="other.html#gone">y</a></body></html>')
    problems = static_problems(tmp_path, bad)
    assert len(problems) == 8, problems
    assert any("cdn.jsdelivr" in p for p in problems) and any("gone.css" in p for p in problems)
    assert any("loaded 2 times" in p for p in problems)
    assert any("missing.png" in p for p in problems) and any("nowhere.html" in p for p in problems)
    assert any("gone" in p for p in problems) and any("network" in p for p in problems)


# --- stored-run loading: missing and stale files are named with their command --------------------------------


def _write_run(path: Path, *, version: int = SCHEMA_VERSION, end: int | None = 200) -> None:
    header = {"schema": SCHEMA, "version": version,
              "provenance": {"config": {"lr": 1e-3, "streams": "derived"},
                             "argv": [".venv/bin/spectral-edge", "sweep", "modular", "--preset", "tiny"]},
              "meta": {"window": 3, "every": 10}}
    lines = [header, {"type": "spectrum", "step": 100, "group": "all", "sigma": [2.0, 1.0], "kstar": 1}]
    if end is not None:
        lines.append({"type": "end", "step": end})
    path.write_bytes(gzip.compress(("\n".join(json.dumps(x) for x in lines) + "\n").encode()))


def _sweep(d: Path, files: dict[str, int]) -> None:
    manifest = {"provenance": {"argv": [".venv/bin/spectral-edge", "sweep", "modular", "--preset", "tiny", "--out",
                                        str(d)]},
                "runs": [{"file": f, "final_step": s} for f, s in files.items()]}
    (d / "sweep.json").write_text(json.dumps(manifest))


def test_missing_and_stale_runs_name_the_file_and_the_command(tmp_path: Path) -> None:
    d = tmp_path / "runs"
    with pytest.raises(StoredRunError, match=r"does not exist.*regenerate with"):
        run_files(d)
    d.mkdir()
    _write_run(d / "a.jsonl.gz")
    _sweep(d, {"a.jsonl.gz": 200})
    assert len(load_stored(d)) == 1
    cmd = regeneration_command(d)
    assert cmd.startswith("spectral-edge sweep modular --preset tiny")
    # listed in sweep.json but missing
    _sweep(d, {"a.jsonl.gz": 200, "b.jsonl.gz": 200})
    with pytest.raises(StoredRunError, match=r"b\.jsonl\.gz.*regenerate with: spectral-edge sweep modular"):
        load_stored(d)
    # present but not listed (another sweep invocation wrote it): read, not refused
    _sweep(d, {})
    assert list(load_stored(d).runs) == ["a"]
    # final step disagrees with the manifest
    _sweep(d, {"a.jsonl.gz": 300})
    with pytest.raises(StoredRunError, match=r"a\.jsonl\.gz ends at step 200 but .*final_step 300"):
        load_stored(d)
    # unfinished run
    _write_run(d / "a.jsonl.gz", end=None)
    _sweep(d, {"a.jsonl.gz": 200})
    with pytest.raises(StoredRunError, match=r"a\.jsonl\.gz is unfinished \(no final 'end' record\)"):
        load_stored(d)
    # a schema version that is not a positive integer (read_trajectory refuses it, and newer ones)
    _write_run(d / "a.jsonl.gz", version=0)
    with pytest.raises(StoredRunError, match=r"schema version 0.*delete .*a\.jsonl\.gz and regenerate"):
        load_stored(d)
    # corrupt file
    (d / "a.jsonl.gz").write_bytes(b"not gzip")
    with pytest.raises(StoredRunError, match=r"a\.jsonl\.gz.*regenerate with"):
        load_stored(d)


_PAGE = """---
jupytext:
  text_representation:
    format_name: myst
kernelspec:
  name: python3
  display_name: Python 3
---

# Needs a stored run

```{{code-cell}} ipython3
from verify.store import load_stored
load_stored({directory!r})
```
"""


def test_book_build_fails_naming_a_missing_run(tmp_path: Path) -> None:
    """A page that reads a missing stored run fails the build, and the error names the file and the command."""
    book = tmp_path / "book"
    book.mkdir()
    runs = tmp_path / "runs"
    runs.mkdir()
    _write_run(runs / "a.jsonl.gz")
    _sweep(runs, {"a.jsonl.gz": 200, "gone.jsonl.gz": 200})
    (book / "_config.yml").write_text("title: t\nexecute:\n  execute_notebooks: force\n  timeout: 120\n")
    (book / "_toc.yml").write_text("format: jb-book\nroot: page\n")
    (book / "page.md").write_text(_PAGE.format(directory=str(runs)))
    out = build(book, timeout=600)
    assert out.returncode != 0, "the build must fail when a stored run is missing"
    reports = "".join(p.read_text(errors="replace") for p in (book / "_build" / "html" / "reports").glob("*.log"))
    text = re.sub(r"\x1b\[[0-9;]*m", "", out.stdout + out.stderr + reports)
    assert "gone.jsonl.gz" in text and "regenerate with: spectral-edge sweep modular --preset tiny" in text, \
        text[-3000:]


# --- the book ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_book_builds_and_renders() -> None:
    # Started when collection ended (conftest), or now when this test runs without that hook.
    code, wall, cpu, log = start_book_build().wait(timeout=BUILD_TIMEOUT_S)
    log = re.sub(r"\x1b\[[0-9;]*m", "", log)
    warnings = [line for line in log.splitlines() if "WARNING" in line and "TCP without encryption" not in line]
    assert code == 0 and not warnings, f"book build failed (exit {code}):\n" + "\n".join(warnings) + log[-4000:]
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(f"book build: {wall:.0f} s wall beside the rest of the suite, {cpu:.0f} CPU-s (budget "
          f"{BUILD_BUDGET_S:.0f} s), load average per core {load:.1f}")
    assert cpu < BUILD_BUDGET_S, f"book build used {cpu:.0f} CPU-s, over the {BUILD_BUDGET_S:.0f} s runaway guard"

    pages = toc_pages(BOOK)
    assert len(pages) >= 16
    missing = [name for name in pages if not (HTML / f"{name}.html").is_file()]
    assert not missing, f"pages not built: {missing}"

    def check(name: str) -> list[str]:
        page = HTML / f"{name}.html"
        static = parse_page(page.read_text(encoding="utf-8"))
        return static_problems(HTML, page) + math_problems(rendered_dom(page), expect_math=static.static_math > 0)

    with ThreadPoolExecutor(max_workers=2) as pool:  # two browsers at a time: the machine has two cores
        found = dict(zip(pages, pool.map(check, pages), strict=True))
    problems = {name: p for name, p in found.items() if p}
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)
    for name in SCREENSHOT_PAGES:
        screenshot(HTML / f"{name}.html", SCREENSHOTS / f"{name}.png")
