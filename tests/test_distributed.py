"""torchrun on CPU (gloo): GHM weights from the global batch, and a 2-process training run of the CLI."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, tiny_train_args

from losses.ghm_loss import GHMRankingLoss

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# A rank that dies of a signal (once, under load: SIGABRT, "terminate called without an active exception") then
# prints where each of its threads was, in the assertion's message.
ENV = {**os.environ, "PYTHONFAULTHANDLER": "1"}

# Each rank takes its half of two global batches of 48 pairs and saves weights, loss and momentum state.
GHM_WORKER = """
import sys
import torch
import torch.distributed as dist
sys.path.insert(0, {root!r})
from losses.ghm_loss import GHMRankingLoss
dist.init_process_group("gloo")
rank = dist.get_rank()
loss = GHMRankingLoss(margin=1.0, bins=10, alpha=1.0, momentum=0.6)
out = []
for s1, s2, t in torch.load({batches!r}):
    half = slice(rank * 24, (rank + 1) * 24)
    value = loss(s1[half], s2[half], t[half])
    out.append((value, loss.last_stats["weight"], loss.last_stats["bin_counts"], loss.density_state.clone()))
torch.save(out, {out!r}.format(rank))
dist.destroy_process_group()
"""


def test_two_processes_weigh_pairs_as_one_process_with_the_global_batch(tmp_path):
    g = torch.Generator().manual_seed(0)
    batches = [(3 * torch.randn(48, generator=g), 3 * torch.randn(48, generator=g),
                torch.where(torch.rand(48, generator=g) > 0.5, 1.0, -1.0)) for _ in range(2)]
    torch.save(batches, tmp_path / "batches.pt")
    script = tmp_path / "worker.py"
    script.write_text(GHM_WORKER.format(root=str(ROOT), batches=str(tmp_path / "batches.pt"),
                                        out=str(tmp_path / "rank{}.pt")))
    done = subprocess.run([*TORCHRUN, str(script)], capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]

    single = GHMRankingLoss(margin=1.0, bins=10, alpha=1.0, momentum=0.6)
    for step, batch in enumerate(batches):
        expected = single(*batch)
        (loss0, w0, counts0, state0), (loss1, w1, counts1, state1) = ranks[0][step], ranks[1][step]
        torch.testing.assert_close(torch.cat([w0, w1]), single.last_stats["weight"])
        assert torch.equal(counts0, single.last_stats["bin_counts"]) and torch.equal(counts1, counts0)
        assert torch.equal(state0, single.density_state) and torch.equal(state1, state0)
        # DDP averages the ranks' gradients, so the global loss is the mean of the local ones
        torch.testing.assert_close((loss0 + loss1) / 2, expected)


def torchrun_train(*argv: str) -> subprocess.CompletedProcess:
    done = subprocess.run([*TORCHRUN, str(ROOT / "train.py"), *argv], capture_output=True, text=True, cwd=ROOT,
                          env=ENV)
    assert done.returncode == 0, done.stderr
    return done


def test_a_two_process_cli_run_trains_resumes_and_only_rank_0_writes(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--batch-size", "4",
                           "--ghm-stats-batches", "first", "--epochs", "1")
    done = torchrun_train(*argv)
    assert done.stdout.count("run plastic_1000hz") == 1 and "2 processes" in done.stdout
    assert done.stdout.count("epoch 1/1") == 1
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    resumed = torchrun_train("--resume", str(run), "--epochs", "2", "--no-progress")
    assert resumed.stdout.count("resuming run") == 1 and resumed.stdout.count("epoch 2/2") == 1
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_done"] == 2
    checkpoint = torch.load(run / "model_epoch_2.pt", weights_only=True)
    assert not any(key.startswith("module.") for key in checkpoint["model_state_dict"])
    for path in sorted((tmp_path / "stats" / run.name).iterdir()):
        with open(path, "rb") as f:
            stats = pickle.load(f)
        # the statistics describe the global batch: both ranks' 4 pairs
        assert len(stats["g"]) == len(stats["pair_paths"]) == stats["bin_counts"].sum() == 8
    assert len(list(Path(tmp_path / "stats" / run.name).iterdir())) == 2
