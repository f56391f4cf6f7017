"""The executable book (issue 7): it builds with every page executed, math renders, figures load, links resolve.

``test_book_builds_and_renders`` runs ``jb build book -W --keep-going`` (warnings are errors, every page executed),
checks the built HTML statically (every ``<img>`` is a decodable PNG/SVG file, every internal link and anchor
exists) and opens every page in one headless Chromium (``Chromium``: the DevTools protocol on a pipe) after MathJax
ran: math must be rendered (``mjx-container`` elements, no raw ``$$``, ``\\(`` or ``\\[`` left in the text). Two
screenshots are saved under ``book/_build/screenshots/`` as build artifacts. The checkers and the browser driver are
tested on pages built to pass and to fail them, and a one-page book that reads a missing stored run must fail its
build with a message naming the file and the command.

Needs the ``book`` extra (``pip install -e .[book]``) and Debian's ``chromium``; ``make test`` installs both.
"""

from __future__ import annotations

import base64
import fcntl
import gzip
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
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


#: Evaluated in a page once its ``load`` event fired: waits for MathJax's first typeset (when the page loads
#: MathJax) and the web fonts, then returns the serialised DOM.
_RENDERED_JS = """(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  await document.fonts.ready;
  return document.documentElement.outerHTML;
})()"""


class Chromium:
    """One headless Chromium for every page of a check, driven over the DevTools protocol on a pipe
    (``--remote-debugging-pipe``: JSON messages ending in NUL, read by the browser from its fd 3 and written to its
    fd 4): one browser start (about 1.2 CPU-s) instead of one per page. Each page opens in a new tab that is closed
    after use. A context manager; not thread-safe (one caller at a time)."""

    def __init__(self, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._profile = tempfile.TemporaryDirectory(prefix="book-chromium-")
        self._log = Path(self._profile.name) / "stderr.log"
        # The pipe ends the browser keeps, moved to fds >= 10 so that bash's 3</4> redirections cannot clobber
        # them, whichever fds the pipes got here.
        to_r, to_w = os.pipe()
        from_r, from_w = os.pipe()
        child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_r, from_w))
        os.close(to_r)
        os.close(from_w)
        self._w, self._r, self._buf, self._id = to_w, from_r, b"", 0
        self._events: list[dict] = []
        cmd = ["bash", "-c", f'exec "$0" "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-', chromium(),
               "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--hide-scrollbars", f"--user-data-dir={self._profile.name}", "--remote-debugging-pipe",
               "about:blank"]
        with open(self._log, "wb") as log:
            self.proc = subprocess.Popen(cmd, pass_fds=(child_r, child_w), stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        os.close(child_r)
        os.close(child_w)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                self.call("Browser.close", timeout=10)
                self.proc.wait(timeout=10)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            for fd in (self._w, self._r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._profile.cleanup()

    def _stderr(self) -> str:
        return self._log.read_text(errors="replace")[-2000:] if self._log.exists() else ""

    def _message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"chromium sent nothing for {self.timeout:.0f} s: {self._stderr()}")
            if select.select([self._r], [], [], left)[0]:
                chunk = os.read(self._r, 1 << 20)
                if not chunk:
                    raise RuntimeError(f"chromium closed its DevTools pipe (exit {self.proc.poll()}): "
                                       f"{self._stderr()}")
                self._buf += chunk
        message, _, self._buf = self._buf.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None, *,
             timeout: float | None = None) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept for ``wait_event``."""
        self._id += 1
        message = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._w, data):]
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"chromium: {method} failed: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self._events.pop(i)
            self._events.append(self._message(deadline))

    def _open(self, page: Path, size: tuple[int, int] | None = None) -> tuple[str, str]:
        """A new tab showing ``page`` after its ``load`` event: (target id, session id)."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        if size:
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": size[0], "height": size[1], "deviceScaleFactor": 1, "mobile": False}, session)
        self.call("Page.enable", session=session)
        self.call("Page.navigate", {"url": page.as_uri()}, session)
        self.wait_event("Page.loadEventFired", session)
        return target, session

    def rendered_dom(self, page: Path) -> str:
        """The page's DOM after MathJax ran (``_RENDERED_JS``)."""
        target, session = self._open(page)
        try:
            got = self.call("Runtime.evaluate", {"expression": _RENDERED_JS, "awaitPromise": True,
                                                 "returnByValue": True}, session)
        finally:
            self.call("Target.closeTarget", {"targetId": target})
        html = got.get("result", {}).get("value")
        assert isinstance(html, str) and html.strip(), f"chromium could not render {page}: {got}"
        return html

    def screenshot(self, page: Path, png: Path, size: tuple[int, int] = (1280, 1600)) -> Path:
        """A PNG of the page's first ``size`` pixels, after MathJax ran."""
        target, session = self._open(page, size)
        try:
            self.call("Runtime.evaluate", {"expression": _RENDERED_JS, "awaitPromise": True}, session)
            data = self.call("Page.captureScreenshot", {"format": "png"}, session)["data"]
        finally:
            self.call("Target.closeTarget", {"targetId": target})
        png.parent.mkdir(parents=True, exist_ok=True)
        tmp = png.with_name(png.name + ".tmp")
        tmp.write_bytes(base64.b64decode(data))
        tmp.replace(png)
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


def test_browser_renders_math_with_the_books_mathjax_and_shows_raw_tex_without_it(tmp_path: Path) -> None:
    """The one-browser driver (``Chromium``) on two tiny pages: with the book's own MathJax the TeX is typeset (an
    ``mjx-container``, no raw delimiter left); without it the checker sees the raw ``$$``. A screenshot is a PNG."""
    mathjax = BOOK / "_mathjax" / "mathjax" / "tex-mml-chtml.js"
    tex = "<p>the gap $$g = \\sigma_1 - \\sigma_2$$ opens</p>"
    typeset = tmp_path / "typeset.html"
    typeset.write_text(f'<html><head><script defer src="{mathjax.as_uri()}"></script></head><body>{tex}</body></html>')
    raw = tmp_path / "raw.html"
    raw.write_text(f"<html><body>{tex}</body></html>")
    with Chromium() as browser:
        assert math_problems(browser.rendered_dom(typeset), expect_math=True) == []
        assert any("$$" in p for p in math_problems(browser.rendered_dom(raw), expect_math=True))
        png = browser.screenshot(typeset, tmp_path / "shot.png", size=(1000, 400))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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

    found = {}
    with Chromium() as browser:  # one browser, one tab per page
        for name in pages:
            page = HTML / f"{name}.html"
            static = parse_page(page.read_text(encoding="utf-8"))
            found[name] = static_problems(HTML, page) + math_problems(browser.rendered_dom(page),
                                                                      expect_math=static.static_math > 0)
        shots = [browser.screenshot(HTML / f"{name}.html", SCREENSHOTS / f"{name}.png") for name in SCREENSHOT_PAGES]
    assert all(png.stat().st_size > 10_000 for png in shots), f"a blank screenshot: {shots}"
    problems = {name: p for name, p in found.items() if p}
    assert not problems, json.dumps(problems, indent=1, ensure_ascii=False)
