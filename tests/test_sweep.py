"""The example sweep script and the summary table over its runs."""

import csv
import json
import os
import subprocess
import threading

from conftest import ROOT, tiny_train_args

import train
from utils import summarize


def sweep_flags(data, save_dir):
    flags = tiny_train_args(data, save_dir)
    i = flags.index("--epochs")
    return flags[:i] + flags[i + 2:]


def test_sweep_runs_jobs_in_parallel_each_in_its_own_folder(tiny_data, tmp_path):
    env = {**os.environ, "JOBS": "2", "SEEDS": "1 2", "FREQUENCIES": "500hz", "LOSSES": "standard ghm",
           "EPOCHS": "1"}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), *sweep_flags(tiny_data, tmp_path)],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    runs = sorted((tmp_path / "model_checkpoints").iterdir())
    assert len(runs) == 4
    assert sorted(json.loads((r / "summary.json").read_text())["status"] for r in runs) == ["completed"] * 4
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted((r["seed"], r["loss_type"]) for r in rows) == [("1", "ghm"), ("1", "standard"),
                                                                 ("2", "ghm"), ("2", "standard")]
    assert "2/2" in out.stdout  # two completed runs in each (frequency, loss_type) group


def test_runs_started_at_the_same_moment_get_their_own_folders(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "1")
    codes = []
    threads = [threading.Thread(target=lambda: codes.append(train.main(argv))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [0, 0, 0]
    assert len(list((tmp_path / "model_checkpoints").iterdir())) == 3


def test_summarize_lists_failed_runs_and_groups(tiny_data, tmp_path, capsys):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1")) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    failed = tmp_path / "model_checkpoints" / "failed_run"
    failed.mkdir()
    summary = json.loads((run / "summary.json").read_text())
    summary.update(run="failed_run", status="failed", error="RuntimeError: boom", evaluation=None)
    (failed / "summary.json").write_text(json.dumps(summary))
    assert summarize.main([str(tmp_path), "--group-by", "frequency"]) == 0
    out = capsys.readouterr().out
    assert "failed_run: failed: RuntimeError: boom" in out and "1/2" in out
    assert summarize.main([str(tmp_path / "empty")]) == 1
