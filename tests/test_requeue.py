"""--run-name: the same command after SIGTERM (a preempted, requeued job) or SIGUSR1 under SLURM (its time limit
near: the run requeues its job) resumes the run; a finished run is reported, not retrained; a changed argument is
refused."""

import json
import os
import pickle
import signal
from pathlib import Path

import pytest
import torch
from conftest import signal_after_first_epoch, tiny_train_args

import train
from training.named_runs import run_folder_name
from utils.errors import InputError

RUN = ("--frequency", "1000hz", "--epochs", "2", "--checkpoint-interval", "5", "--ghm-momentum", "0.7",
       "--ghm-stats-batches", "all", "--run-name", "job-7.a")


def outcome(save_dir: Path) -> tuple:
    """History (without the save dir), final and best weights, and every statistics file's g values."""
    folder = save_dir / "model_checkpoints" / "job-7.a"
    history = pickle.loads(next(folder.glob("training_history_*.pkl")).read_bytes())
    history["args"].pop("save_dir")
    last, best = (torch.load(folder / name, weights_only=True) for name in ("model_epoch_2.pt", "model_best.pt"))
    stats = [(p.name.split("_")[:2], pickle.loads(p.read_bytes())["g"].tolist())
             for p in sorted((save_dir / "stats" / "job-7.a").iterdir())]
    return history, last["model_state_dict"], last["ghm_state_dict"], best["model_state_dict"], stats


def fake_scontrol(folder: Path) -> tuple[dict, Path]:
    """An `scontrol` first on PATH that records its arguments in a file, and SLURM_JOB_ID: (environment, file)."""
    calls = folder / "scontrol_calls"
    script = folder / "bin" / "scontrol"
    script.parent.mkdir(parents=True)
    script.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    script.chmod(0o755)
    return {"PATH": f"{script.parent}{os.pathsep}{os.environ['PATH']}", "SLURM_JOB_ID": "4242"}, calls


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_stop_then_the_same_command_ends_bit_identical_to_an_uninterrupted_run(signum, tiny_data, tmp_path,
                                                                                 capsys):
    argv = tiny_train_args(tiny_data, tmp_path / "requeued", *RUN)
    env, calls = fake_scontrol(tmp_path)
    code, out, err = signal_after_first_epoch(argv, signum, env)
    assert code == 128 + signum, err
    folder = tmp_path / "requeued" / "model_checkpoints" / "job-7.a"
    assert json.loads((folder / "summary.json").read_text())["status"] == "interrupted"
    if signum == signal.SIGUSR1:  # requeued once the checkpoint was written; SIGTERM is a plain stop
        assert calls.read_text() == "requeue 4242\n" and "requeued SLURM job 4242" in out
        assert "SIGUSR1: the job's time limit is near" in err and "Traceback" not in err
    else:
        assert not calls.exists()

    assert train.main(argv) == 0  # the requeued job: the very same command
    assert "resuming run job-7.a after epoch" in capsys.readouterr().out
    assert train.main(tiny_train_args(tiny_data, tmp_path / "straight", *RUN)) == 0
    requeued, straight = outcome(tmp_path / "requeued"), outcome(tmp_path / "straight")
    assert requeued[0] == straight[0] and requeued[4] == straight[4]
    for got, expected in zip(requeued[1:4], straight[1:4]):
        assert got.keys() == expected.keys() and all(torch.equal(got[k], expected[k]) for k in got)
    assert len(list(folder.glob("training_history_*.pkl"))) == 1  # the file names keep the run's timestamp

    capsys.readouterr()
    before = (folder / "model_epoch_2.pt").read_bytes()
    assert train.main(argv) == 0
    assert "run job-7.a finished earlier (trained all 2 epochs); not trained again" in capsys.readouterr().out
    assert (folder / "model_epoch_2.pt").read_bytes() == before

    assert train.main([*argv, "--learning-rate", "0.01"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--learning-rate 0.01: run job-7.a" in err and "trained with 0.001" in err


def test_run_names_are_folder_names_and_one_per_frequency(tiny_data, tmp_path, capsys):
    assert run_folder_name("sweep1", "all", "500hz") == "sweep1_500hz"
    assert run_folder_name("sweep1", "500hz", "500hz") == "sweep1"
    for bad in ("../up", "a/b", ".hidden", ""):
        with pytest.raises(SystemExit):
            train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--run-name", bad))
        assert "--run-name" in capsys.readouterr().err


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_its_timestamp(tmp_path):
    from config import RunConfig, stored
    from training.named_runs import named_run_paths
    from utils.history import new_history
    from utils.run_paths import RunPaths
    from utils.run_summary import RunSummary

    first = RunPaths(tmp_path, "job", "20260101_120000")
    cfg = RunConfig().with_values(epochs=3)
    RunSummary(first, cfg, [], 0.0).write(new_history(stored(cfg)), "running")
    assert named_run_paths(str(tmp_path), "job") == first
    (first.summary).write_text('{"timestamp": "../../x"}')  # not a summary of ours: a new timestamp
    assert named_run_paths(str(tmp_path), "job").timestamp != "20260101_120000"


def test_sigusr1_without_a_run_name_or_refused_by_slurm_stops_without_a_requeue(tiny_data, tmp_path, monkeypatch,
                                                                                capsys):
    from training import named_runs
    from utils import slurm

    env, calls = fake_scontrol(tmp_path)
    monkeypatch.setenv("PATH", env["PATH"])
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "2")
    cfg = train.parse_args(argv)
    assert named_runs.requeue_job(cfg, 138) == 138 and not calls.exists()
    assert "not requeued: without --run-name" in capsys.readouterr().err

    monkeypatch.setenv("SLURM_JOB_ID", "77")
    (tmp_path / "bin" / "scontrol").write_text('#!/bin/sh\necho "slurm_load_jobs error: Invalid job id" >&2\nexit 1\n')
    assert named_runs.requeue_job(train.parse_args([*argv, "--run-name", "r"]), 138) == 1
    assert capsys.readouterr().err == ("error: scontrol requeue 77 failed (exit 1): slurm_load_jobs error: Invalid "
                                       "job id\n")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(InputError, match="scontrol requeue 77: .*No such file"):
        slurm.requeue("77")
