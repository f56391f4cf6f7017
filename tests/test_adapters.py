"""The trainer adapters (numerics.adapters): a Hugging Face Trainer and a Lightning Trainer on tiny models, CPU, no
downloads. Each writes a trajectory with spectrum and eval records and an ``end``, and leaves training unchanged."""

from __future__ import annotations

import sys

import pytest
import torch

from verify.store import load_run


def test_numerics_does_not_import_the_trainers():
    """The adapters are imported by their users only: ``import numerics`` loads neither trainer library."""
    import subprocess

    code = ("import sys, numerics, numerics.adapters; "
            "bad = [m for m in ('transformers', 'lightning', 'pytorch_lightning') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unwrap_optimizer_and_metrics():
    from numerics.adapters import numeric_metrics, unwrap_optimizer

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=0.1)

    class Wrapper:
        def __init__(self, optimizer):
            self.optimizer = optimizer

    assert unwrap_optimizer(Wrapper(Wrapper(opt))) is opt
    with pytest.raises(TypeError):
        unwrap_optimizer(object())
    m = numeric_metrics({"a": torch.tensor(0.5), "b": "x", "c": True, "epoch": 1.0, "d": 2}, {"a": "test_acc"},
                        drop=("epoch",))
    assert m == {"test_acc": 0.5, "d": 2.0}


# --- Hugging Face -----------------------------------------------------------------------------------------------


def _hf_train(tmp_path, callback):
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

    g = torch.Generator().manual_seed(0)
    data = [{"input_ids": x, "labels": x} for x in torch.randint(0, 50, (64, 8), generator=g)]
    transformers.set_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=8))
    args = TrainingArguments(
        output_dir=str(tmp_path / "hf"), max_steps=30, per_device_train_batch_size=8, learning_rate=1e-2,
        weight_decay=0.1, logging_steps=10, eval_strategy="steps", eval_steps=10, save_strategy="no",
        report_to=[], use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=data, eval_dataset=data[:16],
                      callbacks=[callback] if callback else [])
    trainer.train()
    final = [h["loss"] for h in trainer.state.log_history if "loss" in h][-1]
    return final, [p.detach().clone() for p in model.parameters()]


def test_huggingface_callback(tmp_path):
    pytest.importorskip("transformers")
    from numerics.adapters.huggingface import SpectralEdgeCallback

    path = tmp_path / "hf.jsonl"
    cb = SpectralEdgeCallback(window=4, every=3, path=path, rename={"eval_loss": "test_loss"})
    loss_with, params_with = _hf_train(tmp_path, cb)
    loss_without, params_without = _hf_train(tmp_path, None)
    assert loss_with == loss_without
    assert all(torch.equal(a, b) for a, b in zip(params_with, params_without, strict=True))

    run = load_run(path)
    assert run.finished and run.final_step == 30
    spectra = run.spectra("all")
    assert [s.step for s in spectra] == list(range(6, 31, 3))  # the first capture with w ≥ 2 is at step 2Δs
    assert spectra[-1].w == 4 and spectra[-1].kstar is not None
    evals = run.evals()
    assert {e.step for e in evals} == {10, 20, 30}
    assert all("test_loss" in e.metrics and "train_loss" in e.metrics for e in evals)  # merged per step
    assert not any(k.endswith("_runtime") for e in evals for k in e.metrics)
    assert run.meta["adapter"] == "huggingface"


# --- Lightning --------------------------------------------------------------------------------------------------


def _lightning_fit(callback, steps=12):
    pytest.importorskip("lightning")
    import lightning.pytorch as pl
    from torch.utils.data import DataLoader, TensorDataset

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            logits = self.net(x)
            self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
            self.log("val_acc", (logits.argmax(-1) == y).float().mean())

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2, weight_decay=0.1)

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
    ds = TensorDataset(x, y)
    pl.seed_everything(0, verbose=False)
    module = Tiny()
    trainer = pl.Trainer(max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu", devices=1, val_check_interval=4,
                         num_sanity_val_steps=1, callbacks=[callback] if callback else [])
    trainer.fit(module, DataLoader(ds, batch_size=8), DataLoader(ds, batch_size=32))
    return [p.detach().clone() for p in module.parameters()]


def test_lightning_callback(tmp_path):
    pytest.importorskip("lightning")
    from numerics.adapters.lightning import SpectralEdgeLightningCallback

    path = tmp_path / "pl.jsonl"
    cb = SpectralEdgeLightningCallback(window=3, every=2, path=path, rename={"val_acc": "test_acc"})
    with_cb = _lightning_fit(cb)
    without = _lightning_fit(None)
    assert all(torch.equal(a, b) for a, b in zip(with_cb, without, strict=True))

    run = load_run(path)
    assert run.finished and run.final_step == 12
    assert [s.step for s in run.spectra("all")] == [4, 6, 8, 10, 12]
    evals = run.evals()
    assert [e.step for e in evals] == [4, 8, 12]  # the sanity check writes nothing
    assert all(e.test_acc is not None and "val_loss" in e.metrics for e in evals)
    assert run.meta["adapter"] == "lightning"
