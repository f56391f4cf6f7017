"""The claims table: the spectral rows (verify.studies.spectral), the probe rows (verify.studies.probes) and the
onset row (verify.studies.onset) on synthetic runs with known verdicts and on the stored runs when present; the
provider registry and writers of the claims kernel (verify.claims)."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.test_onset import write_run
from verify.claims import RUNS_ROOT, VERDICTS, ClaimRow, to_markdown, write_claims
from verify.stats import wilson_interval
from verify.studies.onset import claim_rows as onset_claim_rows
from verify.studies.probes import ProbeRun, gap_flow_pairs, gap_restoring_row, load_probe_runs
from verify.studies.probes import claim_rows as probe_claim_rows
from verify.studies.spectral import claims_table, load_claim_runs

STORED = Path(__file__).resolve().parents[1] / "verify" / "runs" / "modular"


def _row(rows: list[ClaimRow], prefix: str) -> ClaimRow:
    return next(r for r in rows if r.claim.startswith(prefix))


def test_synthetic_known_verdicts(tmp_path: Path) -> None:
    for seed in (42, 137, 2024):
        write_run(tmp_path / f"grok-s{seed}.jsonl", seed=seed)  # k* = 1, g23 declines 50× before grokking
        write_run(tmp_path / f"ctrl-s{seed}.jsonl", seed=seed, wd=0.0, decline_at=None, grok_at=None)
    rows = claims_table(load_claim_runs([tmp_path]))
    assert all(r.verdict in VERDICTS and r.measured for r in rows)
    # the synthetic controls have k* = 1 too: the k* rows hold on the grokking runs but do not discriminate → FAIL
    for prefix in ("k* ≤ 3", "k* = 1 for"):
        row = _row(rows, prefix)
        lo, hi = row.details["control"]["wd 0"]["diff95"]
        assert row.verdict == "FAIL" and lo < 0 < hi and row.control.startswith("wd 0: 3/3"), row.control
        assert row.criterion and row.null
    assert _row(rows, "g₂₃ declines before").verdict == "PASS"
    assert _row(rows, "g₂₃ does not decline").verdict == "PASS"  # flat controls
    # R: grok runs average R over pre-grok windows (1.2 then 2.0) vs flat controls (1.2): grok is *higher* → FAIL
    assert _row(rows, "R lower").verdict == "FAIL"
    assert _row(rows, "k* optimizer").verdict == "INCONCLUSIVE"
    md, js = write_claims(rows, tmp_path / "out", figures=False)  # figures: test_synthetic_spectral_rows_have_figures
    assert "| claim |" in md.read_text() and len(json.loads(js.read_text())) == len(rows)


def test_controls_that_decline_fail_the_control_claim(tmp_path: Path) -> None:
    for seed in (42, 137):
        write_run(tmp_path / f"grok-s{seed}.jsonl", seed=seed)
        write_run(tmp_path / f"ctrl-s{seed}.jsonl", seed=seed, wd=0.0, grok_at=None)  # g23 declines anyway
    rows = claims_table(load_claim_runs([tmp_path]))
    row = _row(rows, "g₂₃ does not decline")
    assert row.verdict == "FAIL" and row.measured.startswith("2/2")


def test_no_grokking_runs_is_inconclusive(tmp_path: Path) -> None:
    write_run(tmp_path / "ctrl-s42.jsonl", wd=0.0, grok_at=None)
    rows = claims_table(load_claim_runs([tmp_path]))
    assert [r.verdict for r in rows] == ["INCONCLUSIVE"]


def test_markdown_table_is_the_one_writer() -> None:
    """The claims table is ``verify.report.markdown_table``: cells escape '|' and flatten line breaks."""
    from verify.report import markdown_table

    row = ClaimRow("a | b", "s", "v", "x", "1\n2", "PASS", "r", control="0/3", null="n/a: none",
                   criterion="li2.detector_fires")
    label = "li2.detector_fires (fixed 2026-12-01)"
    assert to_markdown([row]) == markdown_table(
        ["claim", "source", "version", "claimed", "measured", "control", "null", "verdict", "reason", "criterion"],
        [["a | b", "s", "v", "x", "1\n2", "0/3", "n/a: none", "**PASS**", "r", label]]) + "\n"
    assert f"| a \\| b | s | v | x | 1 2 | 0/3 | n/a: none | **PASS** | r | {label} |" in to_markdown([row])


def test_bad_verdict_rejected() -> None:
    with pytest.raises(ValueError, match="verdict"):
        ClaimRow("c", "s", "v", "x", "y", "MAYBE", "r")


def test_stored_runs_claims(stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> None:
    files = sorted(STORED.glob("*.jsonl*")) if STORED.is_dir() else []
    if not files:
        pytest.skip(f"no stored runs under {STORED}")
    # the spectral provider is claims_table(load_claim_runs([RUNS_ROOT / "modular"]), "attn"): computed once per
    # session (conftest)
    assert STORED == RUNS_ROOT / "modular"
    rows = list(stored_provider_rows["spectral"])
    assert len(rows) >= 10
    for r in rows:
        assert r.verdict in VERDICTS and r.measured and r.reason
    assert "| claim |" in to_markdown(rows)


# --- the provider registry (extension point) --------------------------------------------------------------------

#: What check_provider requires of a PASS row (verify.claims.REQUIRE_CONTROLS): control, null, criterion.
_SHOWN = {"control": "0/3 controls", "null": "n/a: planted", "criterion": "li2.detector_fires"}


def _two_rows(runs_root: Path) -> list[ClaimRow]:
    def draw(fig) -> None:
        fig.add_subplot().plot([0, 1], [1, 0])

    return [ClaimRow("planted A", "[S]", "—", "x", f"root {runs_root.name}", "PASS", "r", plot=draw, **_SHOWN),
            ClaimRow("planted B", "[S]", "—", "x", "y", "FAIL", "r")]


@pytest.fixture
def registry() -> Iterator[dict[str, Any]]:
    """The claims-provider registry, restored after the test (``register_claims`` adds to it in place)."""
    from verify import claims

    saved = dict(claims.CLAIM_PROVIDERS)
    yield claims.CLAIM_PROVIDERS
    claims.CLAIM_PROVIDERS.clear()
    claims.CLAIM_PROVIDERS.update(saved)


@pytest.mark.usefixtures("registry")
def test_provider_registry_plugs_in_one_line(tmp_path: Path) -> None:
    from verify import claims

    claims.register_claims("planted", _two_rows)
    claims.register_claims("arrays", lambda root: [ClaimRow("planted D", "[S]", "—", "x", "y", "PASS", "r",
                                                       {"a": np.arange(3), "b": np.float32(1.5), "c": np.bool_(1)},
                                                       **_SHOWN)])
    assert json.loads(claims.to_json(claims.all_claims(tmp_path, only=["arrays"], strict=True)))[0]["details"] == {
        "a": [0, 1, 2], "b": 1.5, "c": True}
    claims.register_claims("one_line", lambda root: [ClaimRow("planted C", "[S]", "—", "x", "y", "INCONCLUSIVE",
                                                              "r")])
    rows = claims.all_claims(tmp_path, only=["planted", "one_line"])
    assert [r.claim for r in rows] == ["planted A", "planted B", "planted C"]
    assert rows[0].measured == f"root {tmp_path.name}"  # the provider was given the run root
    _md, js = write_claims(rows, tmp_path / "out")
    data = json.loads(js.read_text())
    assert data[0]["figure"] and "plot" not in data[0] and data[1]["figure"] is None
    png = (tmp_path / "out" / data[0]["figure"]).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000


@pytest.mark.usefixtures("registry")
def test_broken_provider_is_a_named_row_or_raises_when_strict(tmp_path: Path) -> None:
    from verify import claims

    claims.register_claims("missing", "verify.no_such_module:claim_rows")
    rows = claims.all_claims(tmp_path, only=["missing"])
    assert len(rows) == 1 and rows[0].verdict == "INCONCLUSIVE" and "no_such_module" in rows[0].reason
    with pytest.raises(ModuleNotFoundError):
        claims.all_claims(tmp_path, only=["missing"], strict=True)
    with pytest.raises(ValueError, match="unknown claims provider"):
        claims.all_claims(tmp_path, only=["nope"])
    with pytest.raises(ValueError, match=r"expected .module:"):
        claims.register_claims("bad", "verify.studies.li2")
    claims.register_claims("wrong_type", lambda root: ["not a row"])
    with pytest.raises(TypeError, match="not ClaimRow"):
        claims.all_claims(tmp_path, only=["wrong_type"], strict=True)


def test_all_claims_on_empty_root_is_inconclusive(tmp_path: Path) -> None:
    from verify.claims import all_claims

    rows = all_claims(tmp_path, strict=True)
    assert rows and all(r.verdict == "INCONCLUSIVE" for r in rows)


# --- probe rows: gap flow (Thm 14.2) and the loss decomposition (Test 8) on planted probe runs --------------------

LR, EVERY, W = 1e-3, 100, 8


def thm_14_2_twin(d: list[float], h: list[float], G: list[float], eta: float, omega: float, w: int,
                  variant: str = "corrected") -> float:
    """Thm 14.2 typed out (k* = 1): −η(h₁−h₂)d̄ − η(h̄+ω)g + η^p·W(G₁²/d₁ − G₂²/d₂), p = 2 for the corrected Term 3
    (theory reference §0.1 errata 2: σ units) and p = 1 for the quoted one (theory reference §3.4)."""
    d1, d2, h1, h2, G1, G2 = d[0], d[1], h[0], h[1], G[0], G[1]
    injection = (eta ** 2 if variant == "corrected" else eta) * w * (G1 ** 2 / d1 - G2 ** 2 / d2)
    return -eta * (h1 - h2) * (d1 + d2) / 2 - eta * ((h1 + h2) / 2 + omega) * (d1 - d2) + injection


def write_probe_run(path: Path, *, seed: int, gap: str = "agree", ablation: str = "agree", wd: float = 1.0,
                    n: int = 24) -> Path:
    """A planted probe run (k* = 1): σ₁ moves by +rate ('agree') or −rate ('oppose') per checkpoint, with rate the
    twin of Thm 14.2 and G₁ alternating so that the predicted sign alternates; 'base_rate': G₁ small (the
    prediction is always negative) and the gap shrinks at 4 of every 5 checkpoints, grows at the fifth.
    Ablation Δloss = +importance·(1 + noise) ('agree') or its negative ('oppose')."""
    from numerics.stability import alpha_half_from_gram
    from numerics.trajectory import TrajectoryWriter

    rng = np.random.default_rng(seed)
    X = rng.standard_normal((W, 30))
    gram = (X @ X.T).tolist()
    alpha = alpha_half_from_gram(np.asarray(gram))
    sigma = [10.0, 2.0, 1.0, 0.5]
    cfg = {"task_config": {"op": "add"}, "lr": LR, "weight_decay": wd}
    with TrajectoryWriter(path, provenance={"config": cfg, "seeds": {"init_seed": seed}},
                          meta={"every": EVERY, "task": "modular"}) as w:
        for i in range(n):
            s = (i + 1) * EVERY
            h = [0.1, 0.05, 0.02, 0.01]
            G = [4.0 if i % 2 and gap != "base_rate" else 0.1, 0.1, 0.05 * rng.standard_normal(), 0.01]
            Gv = list(rng.standard_normal(4))
            w.write("spectrum", s, group="attn", sigma=list(sigma), kstar=1, w=W, gram=gram, gram_extended=False)
            w.write("eval", s, train_acc=1.0, test_acc=1.0 if i > n // 2 else 0.0)
            imp = [alpha[j] * G[j] * Gv[j] for j in range(4)]
            sign = 1.0 if ablation == "agree" else -1.0
            dl = [sign * x * (1 + 0.1 * rng.standard_normal()) for x in imp]
            w.write("probe", s, group="attn", k=4, h=h, G_train=G, G_val=Gv, dloss_ablate=dl,
                    theta_proj=list(rng.standard_normal(4)))
            rate = thm_14_2_twin(sigma, h, G, LR * EVERY, wd, W)
            step_g = {"agree": rate, "oppose": -rate, "base_rate": abs(rate) * (1 if i % 5 == 4 else -1)}[gap]
            sigma = [sigma[0] + step_g, *sigma[1:]]
        w.write("end", n * EVERY)
    return path


def probe_rows(tmp_path: Path, **kw: object) -> dict[str, ClaimRow]:

    for seed in (42, 137, 2024):
        write_probe_run(tmp_path / "probes" / f"modular-add-p97-wd1-s{seed}.jsonl", seed=seed, **kw)
    rows = probe_claim_rows(tmp_path)
    return {"gap": _row(rows, "gap flow"), "dec": _row(rows, "loss decomposition")}


def test_gap_flow_pairs_use_the_next_window_and_the_compiled_theorem(tmp_path: Path) -> None:
    from numerics.trajectory import read_trajectory

    t = read_trajectory(write_probe_run(tmp_path / "r.jsonl", seed=1, n=6))
    pairs = gap_flow_pairs(t)
    assert len(pairs["step"]) == 5  # the last probe has no next window
    sig = [r["sigma"] for r in t.spectra("attn")]
    probes = t.of_type("probe", "attn")
    for i in range(5):
        want = thm_14_2_twin(sig[i], probes[i]["h"], probes[i]["G_train"], LR * EVERY, 1.0, W)
        assert pairs["predicted"][i] == pytest.approx(want, rel=1e-12)
        assert pairs["measured"][i] == pytest.approx((sig[i + 1][0] - sig[i + 1][1]) - (sig[i][0] - sig[i][1]))


@pytest.fixture(scope="module")
def agreeing_probe_rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClaimRow]:
    """The probe rows on the agreeing plants, computed once for the verdict test and the figure test (each
    computation draws the rows' time-shuffle nulls, a few CPU-seconds)."""
    return probe_rows(tmp_path_factory.mktemp("agreeing-probes"))


def test_probe_rows_pass_on_agreeing_plants(agreeing_probe_rows: dict[str, ClaimRow]) -> None:
    rows = agreeing_probe_rows
    assert rows["gap"].verdict == "PASS", rows["gap"].measured
    assert rows["gap"].details["agree"] == rows["gap"].details["n_pairs"] == 3 * 23
    assert rows["dec"].verdict == "PASS", rows["dec"].measured
    assert rows["dec"].details["spearman"] > 0.9


def test_probe_rows_fail_on_opposing_plants(tmp_path: Path) -> None:
    rows = probe_rows(tmp_path, gap="oppose", ablation="oppose")
    assert rows["gap"].verdict == "FAIL" and rows["gap"].details["agree"] == 0
    assert rows["dec"].verdict == "FAIL" and rows["dec"].details["spearman"] < -0.9


def test_gap_flow_base_rate_alone_cannot_pass(tmp_path: Path) -> None:
    """Always-negative predictions agree with a gap that mostly shrinks (80%: the Wilson interval is above 0.5), but
    the balanced accuracy of a constant-sign predictor is 0.5: FAIL."""
    rows = probe_rows(tmp_path, gap="base_rate")
    d = rows["gap"].details
    assert d["wilson95"][0] > 0.5 and d["balanced"] == pytest.approx(0.5)
    assert rows["gap"].verdict == "FAIL"


def test_probe_rows_without_probe_runs_are_inconclusive(tmp_path: Path) -> None:

    rows = probe_claim_rows(tmp_path)
    assert [r.verdict for r in rows] == ["INCONCLUSIVE"] * 3
    write_probe_run(tmp_path / "probes" / "short-s1.jsonl", seed=1, n=4)  # 3 pairs, 16 points < MIN_PROBE_PAIRS
    assert all(r.verdict == "INCONCLUSIVE" for r in probe_claim_rows(tmp_path))


def test_probe_rows_bad_input(tmp_path: Path) -> None:
    from numerics.errors import TrajectoryError

    with pytest.raises(TrajectoryError, match=r"not found: .*missing"):
        load_probe_runs([tmp_path / "missing"])
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"hello": 1}\n')
    with pytest.raises(TrajectoryError):
        load_probe_runs([foreign])
    good = write_probe_run(tmp_path / "good.jsonl", seed=3)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # truncated mid-run: no end record
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert load_probe_runs([cut]) == []  # an unfinished run is left out, not half-read
    noconf = tmp_path / "noconf.jsonl"
    from numerics.trajectory import TrajectoryWriter

    with TrajectoryWriter(noconf, meta={"every": 100}) as w:
        w.write("probe", 100, group="attn", k=2, h=[0.1, 0.1], G_train=[0.0, 0.0], G_val=[0.0, 0.0])
        w.write("end", 100)
    with pytest.raises(TrajectoryError, match=r"config\.lr"):
        load_probe_runs([noconf])


def test_wilson_interval_against_its_definition() -> None:
    """The Wilson interval is {p : |k/n − p| ≤ z·√(p(1−p)/n)}: check the endpoints on a fine grid."""

    grid = np.linspace(0, 1, 200_001)
    for k, n in ((0, 10), (7, 10), (33, 33), (412, 700)):
        inside = grid[np.abs(k / n - grid) <= 1.96 * np.sqrt(grid * (1 - grid) / n)]
        lo, hi = wilson_interval(k, n)
        assert lo == pytest.approx(inside.min(), abs=2e-5) and hi == pytest.approx(inside.max(), abs=2e-5)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_probe_row_figures_are_pngs(agreeing_probe_rows: dict[str, ClaimRow], tmp_path: Path) -> None:
    rows = [copy.copy(r) for r in agreeing_probe_rows.values()]  # write_claims sets each copy's figure
    _md, js = write_claims(rows, tmp_path / "out")
    for row in json.loads(js.read_text()):
        png = (tmp_path / "out" / row["figure"]).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000


def test_synthetic_spectral_rows_have_figures(tmp_path: Path) -> None:
    for seed in (42, 137):
        write_run(tmp_path / f"grok-s{seed}.jsonl", seed=seed)
        write_run(tmp_path / f"ctrl-s{seed}.jsonl", seed=seed, wd=0.0, decline_at=None, grok_at=None)
    rows = claims_table(load_claim_runs([tmp_path]))
    _md, js = write_claims(rows, tmp_path / "out")
    data = json.loads(js.read_text())
    measured = [r for r in data if r["verdict"] != "INCONCLUSIVE"]
    assert measured and all(r["figure"] for r in measured)
    for r in measured:
        assert (tmp_path / "out" / r["figure"]).read_bytes()[:4] == b"\x89PNG"


def test_cli_claims_writes_a_png_per_row_from_the_run_root(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from verify.cli import app

    root = tmp_path / "runs"
    for seed in (42, 137, 2024):
        write_probe_run(root / "probes" / f"modular-add-p97-wd1-s{seed}.jsonl", seed=seed)
    runner = CliRunner()
    res = runner.invoke(app, ["claims", "--runs-root", str(root), "--only", "probes", "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "out" / "claims.json").read_text())
    fields = set(ClaimRow.__dataclass_fields__)
    gap = _row([ClaimRow(**{k: v for k, v in r.items() if k in fields}) for r in data], "gap flow")
    assert gap.verdict in VERDICTS and gap.criterion == "probes.gap_flow" and gap.control and gap.null
    figures = [r["figure"] for r in data if r["figure"]]
    assert len(figures) == 3 and all((tmp_path / "out" / f).stat().st_size > 1000 for f in figures)
    bad = runner.invoke(app, ["claims", "--runs-root", str(root), "--only", "nope"])
    assert bad.exit_code != 0 and "unknown claims provider" in bad.output


@pytest.mark.parametrize("defect_at, verdict", [(1500, "PASS"), (3000, "FAIL")])
def test_defect_onset_row_on_planted_dyck_runs(tmp_path: Path, defect_at: int, verdict: str) -> None:
    """Spike 1000 steps before grokking (PASS) or 500 after it (FAIL); flat controls never fire."""

    for seed in (42, 137, 2024):
        write_run(tmp_path / "dyck" / f"dyck-wd1-s{seed}.jsonl", seed=seed, task="dyck", defect_at=defect_at)
        write_run(tmp_path / "dyck" / f"dyck-wd0-s{seed}.jsonl", seed=seed, task="dyck", wd=0.0, grok_at=None,
                  decline_at=None, defect=True)
    (row,) = onset_claim_rows(tmp_path)
    assert row.verdict == verdict, row.measured
    assert row.details["leads"]["dyck-wd1-s42"] == 2500 - defect_at
    assert not any(row.details["controls_fired"].values())
    assert onset_claim_rows(tmp_path / "empty")[0].verdict == "INCONCLUSIVE"


PROBES = Path(__file__).resolve().parents[1] / "verify" / "runs" / "probes"


def test_stored_probe_runs_re_derive(stored_provider_rows: dict[str, tuple[ClaimRow, ...]]) -> None:
    """The stored probe sweep: every predicted rate is Thm 14.2 (typed-out twin) of the file's own σ, h, G, every
    measured one the forward difference of the file's σ; with two runs or more the rows give verdicts."""
    from numerics.trajectory import read_trajectory

    files = sorted(PROBES.glob("*.jsonl.gz")) if PROBES.is_dir() else []
    if not files:
        pytest.skip(f"no stored probe runs under {PROBES}")
    t = read_trajectory(files[0])
    cfg = t.provenance["config"]
    eta, omega, every = cfg["lr"] * t.meta["every"], cfg["weight_decay"], t.meta["every"]
    pairs = gap_flow_pairs(t)
    spectra = {r["step"]: r for r in t.spectra("attn")}
    probes = {r["step"]: r for r in t.of_type("probe", "attn")}
    assert len(pairs["step"]) >= 5
    for i, s in enumerate(pairs["step"]):
        rec, pr, ks = spectra[s], probes[s], int(pairs["kstar"][i])
        sl = slice(ks - 1, ks + 1)
        want = thm_14_2_twin(rec["sigma"][sl], pr["h"][sl], pr["G_train"][sl], eta, omega, rec["w"])
        assert pairs["predicted"][i] == pytest.approx(want, rel=1e-9)
        now, nxt = rec["sigma"], spectra[s + every]["sigma"]
        assert pairs["measured"][i] == pytest.approx((nxt[ks - 1] - nxt[ks]) - (now[ks - 1] - now[ks]))
    if len(files) >= 2:
        assert PROBES.parent == RUNS_ROOT
        rows = stored_provider_rows["probes"]  # probe_claim_rows(RUNS_ROOT), computed once per session (conftest)
        assert all(r.verdict in ("PASS", "FAIL") and r.details for r in rows), [r.reason for r in rows]


@pytest.mark.parametrize("slope, verdict", [(-0.3, "PASS"), (0.3, "FAIL")])
def test_gap_restoring_row_on_planted_pairs(slope: float, verdict: str) -> None:
    """Δg = slope·(g − 1) + noise: a negative slope is a restoring drift (PASS), a positive one is not (FAIL)."""

    runs = []
    for seed in (1, 2, 3):
        rng = np.random.default_rng(seed)
        g = rng.uniform(0.5, 1.5, 30)
        gap = {"g": g, "measured": slope * (g - 1) + 0.01 * rng.standard_normal(30)}
        runs.append(ProbeRun(f"r{seed}", "add", 1.0, seed, None, gap, {}))
    row = gap_restoring_row(runs)
    assert row.verdict == verdict and np.sign(row.details["spearman"]) == np.sign(slope)
    short = ProbeRun("x", "add", 1.0, 1, None, {"g": np.ones(3), "measured": np.ones(3)}, {})
    assert gap_restoring_row([short]).verdict == "INCONCLUSIVE"


@pytest.mark.usefixtures("registry")
def test_placeholder_rows_give_way_to_the_provider_that_measures_them(tmp_path: Path) -> None:
    from verify import claims

    holder = ClaimRow("c", "s", "v", "x", "y", "INCONCLUSIVE", "r", {claims.PLACEHOLDER_KEY: "measurer"})
    claims.register_claims("holder", lambda root: [holder])
    claims.register_claims("measurer", lambda root: [ClaimRow("c", "s", "v", "x", "1.0", "PASS", "r", **_SHOWN)])
    assert [r.verdict for r in claims.all_claims(tmp_path, only=["holder"])] == ["INCONCLUSIVE"]
    assert [r.verdict for r in claims.all_claims(tmp_path, only=["holder", "measurer"])] == ["PASS"]
    claims.register_claims("measurer", "verify.no_such_module:claim_rows")  # failed: the placeholder stays
    kept = claims.all_claims(tmp_path, only=["holder", "measurer"])
    assert [r.details.get(claims.PLACEHOLDER_KEY) for r in kept] == ["measurer", None]
