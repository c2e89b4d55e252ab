"""The example sweep script and the summary table over its runs."""

import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import yaml
from conftest import ROOT, tiny_train_args

import train
from training.callbacks import Heartbeat
from utils import summarize

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out


def sweep_flags(data, save_dir):
    flags = tiny_train_args(data, save_dir)
    i = flags.index("--epochs")
    return flags[:i] + flags[i + 2:]


def test_sweep_runs_a_grid_in_parallel_each_in_its_own_folder_and_log(tiny_data, tmp_path):
    env = {**os.environ, "JOBS": "2", "SEEDS": "1", "FREQUENCIES": "500hz", "LOSSES": "ghm", "EPOCHS": "1",
           "GRID": "--margin 1 2; --ghm-alpha 0.5"}
    out = subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), *sweep_flags(tiny_data, tmp_path)],
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    runs = sorted((tmp_path / "model_checkpoints").iterdir())
    assert len(runs) == 2
    assert sorted(json.loads((r / "summary.json").read_text())["status"] for r in runs) == ["completed"] * 2
    configs = [yaml.safe_load((r / "config.yaml").read_text()) for r in runs]
    assert {c["threads"] for c in configs} == {max(1, os.cpu_count() // 2)}
    assert sorted((c["margin"], c["ghm_alpha"]) for c in configs) == [(1.0, 0.5), (2.0, 0.5)]
    logs = sorted((tmp_path / "sweep_logs").iterdir())
    assert [p.name for p in logs] == [f"seed=1__frequency=500hz__loss-type=ghm__margin={m}__ghm-alpha=0.5.log"
                                      for m in (1, 2)]
    assert all("epoch 1/1" in p.read_text() and "last model (epoch 1" in p.read_text() for p in logs)
    with open(tmp_path / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["ghm_alpha"] for r in rows) == ["0.5", "0.5"]
    again = subprocess.run([sys.executable, "-m", "utils.summarize", str(tmp_path), "--group-by", "margin"],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.count("1/1") == 2  # one completed run per margin


def test_a_grid_group_without_values_is_an_error(tmp_path):
    out = subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), "--save-dir", str(tmp_path)],
                         capture_output=True, text=True, env={**os.environ, "GRID": "--margin; --seed 1"})
    assert out.returncode == 2 and out.stderr.startswith("error: GRID: '--margin' is not a flag followed by")
    assert not list(tmp_path.iterdir())


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
    other = tmp_path / "model_checkpoints" / "margin_5_run"
    other.mkdir()
    (other / "summary.json").write_text(json.dumps({**summary, "run": "margin_5_run", "status": "completed",
                                                    "error": None, "args": {**summary["args"], "margin": 5.0}}))
    assert summarize.main([str(tmp_path), "--group-by", "margin"]) == 0  # any stored argument groups
    groups = capsys.readouterr().out.split("\n\n", 1)[1].splitlines()[1:]
    assert sorted(line.split()[:2] for line in groups if line.strip() and not line.startswith("wrote")) == [
        ["1.0", "1/2"], ["5.0", "1/1"]]
    with pytest.raises(SystemExit):
        summarize.main([str(tmp_path), "--group-by", "no_such_argument"])
    assert "--group-by: unknown column(s) no_such_argument" in capsys.readouterr().err


def rows_by_run(save_dir) -> dict[str, dict]:
    return {row["run"]: row for row in summarize.read_rows(save_dir)}


def test_a_run_killed_in_its_first_epoch_has_a_summary_and_shows_as_stale(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "500")
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    first_line = process.stdout.readline()  # printed once summary.json is written
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first_line.startswith("run ")
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "running" and summary["pid"] == process.pid and summary["epochs_done"] <= 1
    assert abs(summary["heartbeat"] - time.time()) < 3600
    assert rows_by_run(tmp_path)[run.name]["status"] == "stale"


def test_a_running_run_elsewhere_is_stale_once_its_heartbeat_is_three_epochs_old(tmp_path):
    base = {"status": "running", "args": {"frequency": "500hz"}, "final": {}, "host": "another-host", "pid": 1}
    cases = {"fresh": (0, 100.0, 2, "running"), "three_epochs_late": (200, 100.0, 2, "stale"),
             "first_epoch": (500, 5.0, 0, "running"), "first_epoch_late": (700, 5.0, 0, "stale"),
             "short_epochs": (30, 3.0, 3, "running")}
    for name, (age, wall, epochs, _) in cases.items():
        folder = tmp_path / "model_checkpoints" / name
        folder.mkdir(parents=True)
        summary = {**base, "run": name, "heartbeat": time.time() - age, "wall_time_s": wall, "epochs_done": epochs}
        (folder / "summary.json").write_text(json.dumps(summary))
    rows = rows_by_run(tmp_path)
    assert {name: rows[name]["status"] for name in cases} == {name: case[3] for name, case in cases.items()}


def test_an_unreadable_summary_is_skipped_with_one_warning(tiny_data, tmp_path, capsys):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1")) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    good = json.loads((run / "summary.json").read_text())
    bad = {"truncated": (run / "summary.json").read_text()[:40], "a list": "[1, 2]",
           "args a string": json.dumps({**good, "args": "x"}), "figure a string": json.dumps({**good, "final": {
               "val_accuracy": "high"}}), "frequency a list": json.dumps({**good, "args": {"frequency": [1]}})}
    for name, text in bad.items():
        (tmp_path / "model_checkpoints" / name).mkdir()
        (tmp_path / "model_checkpoints" / name / "summary.json").write_text(text)
    capsys.readouterr()
    assert summarize.main([str(tmp_path)]) == 0
    captured = capsys.readouterr()
    warnings = [line for line in captured.err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(bad) and all("skipped" in w for w in warnings)
    assert run.name in captured.out and "Traceback" not in captured.err


def test_the_heartbeat_writes_at_most_once_per_interval():
    writes = []

    def fit(name):
        return SimpleNamespace(state=SimpleNamespace(history={}), summary=SimpleNamespace(
            write=lambda history, status: writes.append((name, status))))
    often, never = Heartbeat(interval=0.0), Heartbeat(interval=1e9)
    for _ in range(5):
        often.on_step_end(fit("often"), 1, 1, None)
        never.on_step_end(fit("never"), 1, 1, None)
    assert writes == [("often", "running")] * 5


def test_the_sweep_takes_relative_paths_from_where_it_runs_and_save_dir_with_an_equals_sign(tiny_data, tmp_path):
    env = {**os.environ, "JOBS": "1", "SEEDS": "1", "FREQUENCIES": "500hz", "LOSSES": "standard", "EPOCHS": "1"}
    flags = [flag for flag in sweep_flags(tiny_data, "unused") if flag not in ("--save-dir", "unused")]
    out = subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), *flags, "--save-dir=runs"], cwd=tmp_path,
                         capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "runs" / "model_checkpoints").iterdir()
    assert json.loads((run / "summary.json").read_text())["status"] == "completed"
    assert (tmp_path / "runs" / "summary.csv").is_file() and "1/1" in out.stdout
