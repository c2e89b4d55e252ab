"""The CUDA paths: a training step, mixed precision, a CLI run with its checkpoint, resume, the final evaluation and
evaluate.py, --data-on-device, and --sync-bn under torchrun. Marked `gpu` and skipped without CUDA (CI has none);
on a GPU machine: `python -m pytest -m gpu -q`. GPU_TEST_DEVICE=cpu runs the same tests on the CPU, to check the
tests themselves (the torchrun --sync-bn test needs CUDA and stays skipped)."""

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import ROOT, tiny_train_args
from torch import nn

import evaluate
import train
from models import build_model
from utils.safe_pickle import load_pickle

DEVICE = os.environ.get("GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                  reason="needs CUDA")]


def run_folder(save_dir):
    (folder,) = (save_dir / "model_checkpoints").iterdir()
    return folder


def history(save_dir) -> dict:
    found = load_pickle(next(run_folder(save_dir).glob("training_history_*.pkl")))
    found["args"].pop("save_dir")
    found["args"].pop("resume", None)
    return found


def test_a_training_step_on_the_device_matches_the_cpu():
    torch.manual_seed(0)
    on_cpu = build_model("simple_cnn")
    on_device = build_model("simple_cnn").to(DEVICE)
    on_device.load_state_dict(on_cpu.state_dict())
    x1, x2 = torch.randn(8, 1, 129, 120) * 20 - 60, torch.randn(8, 1, 129, 120) * 20 - 70
    target = torch.tensor([1.0, -1.0] * 4)
    losses = []
    for model, device in ((on_cpu, "cpu"), (on_device, DEVICE)):
        loss = nn.MarginRankingLoss(margin=1.0)(model(x1.to(device)), model(x2.to(device)), target.to(device))
        loss.backward()
        losses.append(loss.item())
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    for (name, p), q in zip(on_cpu.named_parameters(), on_device.parameters()):
        torch.testing.assert_close(q.grad.cpu(), p.grad, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.skipif(DEVICE != "cuda", reason="page-locked memory needs CUDA")
def test_batches_of_views_reach_the_device_stacked_through_page_locked_memory():
    """Each batch is stacked into a page-locked buffer that PyTorch reuses once its copy is done: three batches
    sent one after the other without waiting all arrive intact."""
    from audio_data.pairs import batch_to

    data = torch.randn(6, 1, 33, 40)
    rows = ([4, 0, 2], [1, 3, 5], [2, 2, 0])
    moved = [batch_to(tuple(data[i] for i in chosen), torch.device(DEVICE)) for chosen in rows]
    torch.cuda.synchronize()
    for chosen, batch in zip(rows, moved):
        assert batch.device.type == "cuda" and torch.equal(batch.cpu(), data[chosen])


@pytest.mark.parametrize("model", ["simple_cnn", "baseline_residual", "onset_residual"])
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_on_the_device(tiny_data, tmp_path, amp, model):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--amp", amp,
                           "--device", DEVICE, "--model", model)
    assert train.main(argv) == 0
    checkpoint = torch.load(run_folder(tmp_path) / "model_epoch_1.pt", weights_only=True)
    assert ("scale" in checkpoint["scaler_state_dict"]) == (amp == "fp16")
    assert checkpoint["args"]["device"] == DEVICE
    assert all(torch.isfinite(v).all() for v in checkpoint["model_state_dict"].values() if v.is_floating_point())


def test_device_auto_takes_the_gpu(tiny_data, tmp_path, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--device", "auto")
    assert train.main(argv) == 0
    assert f"device {torch.device(DEVICE if DEVICE == 'cuda' else 'cpu')} (--device auto)" in capsys.readouterr().out


def test_run_resume_and_evaluation_on_the_device(tiny_data, tmp_path):
    """Two epochs in one go against one epoch and a resume (which keeps --deterministic): bit-identical histories;
    then evaluate.py on the device gives the final evaluation's figures."""
    whole, halves = tmp_path / "whole", tmp_path / "halves"
    flags = ("--frequency", "1000hz", "--device", DEVICE, "--deterministic")
    assert train.main(tiny_train_args(tiny_data, whole, *flags)) == 0
    first = tiny_train_args(tiny_data, halves, *flags, "--epochs", "1")
    assert train.main(first) == 0
    assert train.main(["--resume", str(run_folder(halves)), "--epochs", "2", "--no-progress"]) == 0
    assert history(halves) == history(whole)

    folder = run_folder(whole)
    out = tmp_path / "again"
    assert evaluate.main(["--checkpoint", str(folder / "model_epoch_2.pt"), "--device", DEVICE,
                          "--out", str(out)]) == 0
    final = json.loads((folder / "eval" / "metrics.json").read_text())
    again = json.loads((out / "metrics.json").read_text())
    assert again["pairwise_accuracy"] == final["pairwise_accuracy"] and again["recordings"] == final["recordings"]


def test_data_on_device_trains_as_the_default_loader(tiny_data, tmp_path):
    found = []
    for name, extra in (("copied", ()), ("on_device", ("--data-on-device",))):
        argv = tiny_train_args(tiny_data, tmp_path / name, "--frequency", "500hz", "--device", DEVICE,
                               "--deterministic", *extra)
        assert train.main(argv) == 0
        found.append(history(tmp_path / name))
        found[-1]["args"].pop("data_on_device")
    assert found[0] == found[1]


@pytest.mark.skipif(DEVICE != "cuda", reason="--sync-bn is CUDA only")
def test_sync_bn_under_a_one_process_torchrun(tiny_data, tmp_path):
    """With one process SyncBatchNorm has nothing to synchronise: this shows that the NCCL path runs."""
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--sync-bn",
                           "--device", "cuda")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                           str(ROOT / "train.py"), *argv], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (run_folder(tmp_path) / "model_epoch_1.pt").is_file()
