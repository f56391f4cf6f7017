"""``spectral-edge export`` (verify.export): a small trajectory written here, exported to CSV and Parquet and read
back; the values match the run store's typed records."""

from __future__ import annotations

import csv

import pytest
import torch

from numerics.monitor import SpectralMonitor
from verify.export import ExportError, export_runs
from verify.store import load_run


def _tiny_run(path, steps=24, seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    x, y = torch.randn(256, 5), torch.randn(256, 2)
    groups = {"all": "*", "head": ["2.weight", "2.bias"]}
    with SpectralMonitor(model, opt, window=4, every=2, groups=groups, path=path) as mon:
        for step in range(1, steps + 1):
            opt.zero_grad()
            batch = torch.randint(0, 256, (16,))  # fresh minibatches: updates far from collinear
            loss = torch.nn.functional.mse_loss(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
            if step % 8 == 0:
                mon.log(step, train_loss=loss.item(), test_acc=step / steps)
    return path


@pytest.fixture
def run_path(tmp_path):
    return _tiny_run(tmp_path / "tiny-s0.jsonl")


def _float(v):
    return None if v == "" else float(v)


def test_csv_round_trip(run_path, tmp_path):
    out, n = export_runs([run_path], tmp_path / "t.csv")
    run = load_run(run_path)
    expected = [s for g in run.groups() for s in run.spectra(g, with_spectrum=False)]
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert n == len(rows) == len(expected) > 0
    assert list(rows[0])[:12] == ["run", "status", "weight_decay", "seed", "record", "step", "group", "w", "kstar",
                                  "R", "g", "g23"]
    assert {f"sigma_{j}" for j in range(1, 5)} <= set(rows[0]) and "sigma_5" not in rows[0]
    for row, rec in zip(rows, expected, strict=True):
        assert (row["run"], row["status"], row["record"]) == ("tiny-s0", "finished", "spectrum")
        assert (int(row["step"]), row["group"], int(row["w"])) == (rec.step, rec.group, rec.w)
        assert int(row["kstar"]) == rec.kstar
        assert _float(row["g23"]) == (None if rec.g23 is None else pytest.approx(rec.g23, rel=1e-12))
        assert _float(row["R"]) == pytest.approx(rec.R_value, rel=1e-12)
        sig = [_float(row[f"sigma_{j}"]) for j in range(1, 5)]
        assert sig[: rec.w] == pytest.approx(rec.sigma, rel=1e-12)
        assert all(s is None for s in sig[rec.w :])


def test_parquet_round_trip_with_evals(run_path, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    other = _tiny_run(tmp_path / "tiny-s1.jsonl", seed=1)
    out, n = export_runs([run_path, other], tmp_path / "t.parquet", records=["spectrum", "eval"], groups=["head"])
    table = pq.read_table(out)
    assert table.num_rows == n
    cols = table.to_pydict()
    assert set(cols["run"]) == {"tiny-s0", "tiny-s1"} and set(cols["record"]) == {"spectrum", "eval"}
    assert set(g for g, r in zip(cols["group"], cols["record"], strict=True) if r == "spectrum") == {"head"}
    assert str(table.schema.field("step").type) == "int64" and str(table.schema.field("sigma_1").type) == "double"
    for run_id, path in (("tiny-s0", run_path), ("tiny-s1", other)):
        run = load_run(path)
        rows = [i for i, (r, k) in enumerate(zip(cols["run"], cols["record"], strict=True))
                if r == run_id and k == "spectrum"]
        recs = run.spectra("head", with_spectrum=False)
        assert [cols["step"][i] for i in rows] == [s.step for s in recs]
        assert [cols["sigma_1"][i] for i in rows] == [s.sigma[0] for s in recs]
        assert [cols["kstar"][i] for i in rows] == [s.kstar for s in recs]
        ev = [i for i, (r, k) in enumerate(zip(cols["run"], cols["record"], strict=True))
              if r == run_id and k == "eval"]
        assert [cols["step"][i] for i in ev] == [8, 16, 24]
        assert [cols["test_acc"][i] for i in ev] == [e.test_acc for e in run.evals()]
        assert all(cols["sigma_1"][i] is None and cols["kstar"][i] is None for i in ev)


def test_export_errors(run_path, tmp_path):
    with pytest.raises(ExportError, match=r"\.csv or \.parquet"):
        export_runs([run_path], tmp_path / "t.xlsx")
    with pytest.raises(ExportError, match="the runs have: all, head"):
        export_runs([run_path], tmp_path / "t.csv", groups=["attn"])
    with pytest.raises(ExportError, match="no trajectory files"):
        export_runs([tmp_path / "empty"] if (tmp_path / "empty").mkdir() is None else [], tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists() and not list(tmp_path.glob(".t.csv*"))


def test_export_command(run_path, tmp_path):
    from verify.cli import main

    out = tmp_path / "cmd.csv"
    assert main(["export", str(run_path), "--out", str(out), "--records", "eval"]) == 0
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["step"]) for r in rows] == [8, 16, 24] and all(r["record"] == "eval" for r in rows)
    assert main(["export", str(run_path), "--out", str(tmp_path / "t.txt")]) == 2  # one line, exit 2
