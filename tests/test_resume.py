"""--resume, SIGINT / SIGTERM and checkpoints that do not fit: a resumed run equals the uninterrupted one."""

import json
import os
import pickle
import signal
from pathlib import Path

import pytest
import torch
from conftest import signal_after_first_epoch, tiny_train_args

import train
from models import build_model
from models.pair_forward import PAIR_FORWARD

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out

# GHM with momentum, so that the GHM state must survive the interruption too.
RUN = ("--frequency", "1000hz", "--epochs", "3", "--checkpoint-interval", "5", "--ghm-momentum", "0.7",
       "--ghm-stats-batches", "all")


def run_folder(save_dir: Path) -> Path:
    (folder,) = (save_dir / "model_checkpoints").iterdir()
    return folder


def outcome(save_dir: Path) -> tuple[dict, dict, dict, list]:
    """History (without the save dir), final weights, GHM state and the statistics files' g values."""
    folder = run_folder(save_dir)
    with open(next(folder.glob("training_history_*.pkl")), "rb") as f:
        history = pickle.load(f)
    history["args"].pop("save_dir")
    checkpoint = torch.load(folder / "model_epoch_3.pt", weights_only=True)
    stats = []
    for path in sorted((save_dir / "stats" / folder.name).iterdir()):
        with open(path, "rb") as f:
            stats.append((path.name.split("_")[:2], pickle.load(f)["g"].tolist()))  # (epoch, batch), g
    return history, checkpoint["model_state_dict"], checkpoint["ghm_state_dict"], stats


def signal_at_step(monkeypatch, step: int, times: int = 1) -> None:
    """Send SIGINT to this process `times` times in the forward pass of a (1-based, train and val) step."""
    real = PAIR_FORWARD["separate"]
    calls = {"n": 0}

    def forward(*args):
        calls["n"] += 1
        for _ in range(times if calls["n"] == step else 0):
            os.kill(os.getpid(), signal.SIGINT)
        return real(*args)
    monkeypatch.setitem(PAIR_FORWARD, "separate", forward)


@pytest.fixture(scope="module")
def uninterrupted(tiny_data, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("uninterrupted")
    assert train.main(tiny_train_args(tiny_data, save_dir, *RUN)) == 0
    return outcome(save_dir)


@pytest.mark.parametrize("step", [3, 14, 20])  # in epoch 1, epoch 2, and in the validation of epoch 2
def test_an_interrupted_and_resumed_run_is_bit_identical(tiny_data, tmp_path, monkeypatch, uninterrupted, step,
                                                         capsys):
    signal_at_step(monkeypatch, step)
    assert train.main(tiny_train_args(tiny_data, tmp_path, *RUN)) == 130
    folder = run_folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "interrupted" and f"--resume {folder}" in summary["error"]
    done = summary["epochs_done"]
    assert [p.name for p in folder.glob("model_epoch_*.pt")] == [f"model_epoch_{done}.pt"]
    assert f"Resume with: python train.py --resume {folder}" in capsys.readouterr().err

    monkeypatch.undo()
    assert train.main(["--resume", str(folder), "--no-progress"]) == 0
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
    history, weights, ghm_state, stats = outcome(tmp_path)
    expected_history, expected_weights, expected_ghm_state, expected_stats = uninterrupted
    assert history == expected_history
    assert weights.keys() == expected_weights.keys()
    assert all(torch.equal(weights[k], expected_weights[k]) for k in weights)
    assert all(torch.equal(ghm_state[k], expected_ghm_state[k]) for k in ghm_state)
    assert ghm_state["density_started"]
    assert stats == expected_stats


def test_a_resumed_baseline_residual_run_records_epoch_0_once(tiny_data, tmp_path, monkeypatch):
    """Epoch 0, the untrained model of a run that starts as its baseline (training/fit.py), belongs to the new run
    only: interrupted in epoch 1 and resumed, the run has the uninterrupted run's history."""
    argv = ("--frequency", "1000hz", "--model", "baseline_residual", "--epochs", "2")
    assert train.main(tiny_train_args(tiny_data, tmp_path / "a", *argv)) == 0
    signal_at_step(monkeypatch, 2)
    assert train.main(tiny_train_args(tiny_data, tmp_path / "b", *argv)) == 130
    monkeypatch.undo()
    assert train.main(["--resume", str(run_folder(tmp_path / "b")), "--no-progress"]) == 0
    histories = []
    for save_dir in (tmp_path / "a", tmp_path / "b"):
        with open(next(run_folder(save_dir).glob("training_history_*.pkl")), "rb") as f:
            history = pickle.load(f)
        history["args"].pop("save_dir")
        histories.append(history)
    assert histories[0] == histories[1] and histories[0]["epoch"] == [0, 1, 2]


def assert_same(a, b) -> None:
    """Equal nested checkpoint content, tensors bit for bit."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    else:
        assert a == b


def signal_in_final_evaluation(monkeypatch) -> None:
    from training import final_evaluation

    real = final_evaluation.evaluate_model

    def evaluate(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)
    monkeypatch.setattr(final_evaluation, "evaluate_model", evaluate)


def test_interruptions_right_after_each_resume_and_in_the_final_evaluation_change_nothing(
        tiny_data, tmp_path, monkeypatch, uninterrupted, capsys):
    signal_at_step(monkeypatch, 20)
    assert train.main(tiny_train_args(tiny_data, tmp_path, *RUN)) == 130
    folder = run_folder(tmp_path)
    (path,) = folder.glob("model_epoch_*.pt")
    saved = torch.load(path, weights_only=True)
    for step in (3, 1):  # twice in a row in the first epoch after a resume
        monkeypatch.undo()
        signal_at_step(monkeypatch, step)
        assert train.main(["--resume", str(folder), "--no-progress"]) == 130
        assert [p.name for p in folder.glob("model_epoch_*.pt")] == [path.name]
        assert_same(torch.load(path, weights_only=True), saved)
    monkeypatch.undo()
    signal_in_final_evaluation(monkeypatch)
    assert train.main(["--resume", str(folder), "--no-progress"]) == 143
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "in the final evaluation" in summary["error"]
    assert summary["epochs_done"] == 3 and not (folder / "eval").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert train.main(["--resume", str(folder), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming run" in out and "epoch 3/3" not in out and "last model (epoch 3" in out
    assert json.loads((folder / "summary.json").read_text())["status"] == "completed"
    assert (folder / "eval" / "metrics.json").is_file()
    history, weights, ghm_state, stats = outcome(tmp_path)
    assert history == uninterrupted[0]
    assert all(torch.equal(weights[k], uninterrupted[1][k]) for k in weights)
    assert all(torch.equal(ghm_state[k], uninterrupted[2][k]) for k in ghm_state)
    assert stats == uninterrupted[3]


def test_more_epochs_continue_a_finished_run_and_fewer_are_refused(tiny_data, tmp_path, uninterrupted, capsys):
    first = [a if a != "3" else "2" for a in RUN]
    assert train.main(tiny_train_args(tiny_data, tmp_path, *first)) == 0
    folder = run_folder(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--resume", str(folder), "--epochs", "1"])
    assert exit_info.value.code == 2 and "--epochs 1: the run in" in capsys.readouterr().err
    assert train.parse_args(["--resume", str(folder), "--epochs", "2"]).optim.epochs == 2
    assert train.main(["--resume", str(folder / "model_epoch_2.pt"), "--epochs", "3", "--no-progress"]) == 0
    history, weights, _, _ = outcome(tmp_path)
    assert history == uninterrupted[0]
    assert all(torch.equal(weights[k], uninterrupted[1][k]) for k in weights)


def test_a_second_signal_aborts_at_once(tiny_data, tmp_path, monkeypatch):
    signal_at_step(monkeypatch, 2, times=2)
    assert train.main(tiny_train_args(tiny_data, tmp_path, *RUN)) == 130
    folder = run_folder(tmp_path)
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "interrupted" and "aborted" in summary["error"]
    assert not list(folder.glob("model_epoch_*.pt")) and not list(folder.glob(".*tmp"))


def test_sigterm_stops_the_cli_with_exit_143(tiny_data, tmp_path):
    code, _, err = signal_after_first_epoch(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs",
                                                          "200"))
    assert code == 143, err
    assert "SIGTERM: stopping after the current step" in err and "Resume with: python train.py --resume" in err
    assert "Traceback" not in err
    summary = json.loads((run_folder(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["epochs_done"] >= 1


@pytest.fixture(scope="module")
def finished_run(tiny_data, tmp_path_factory) -> Path:
    save_dir = tmp_path_factory.mktemp("finished")
    assert train.main(tiny_train_args(tiny_data, save_dir, "--frequency", "500hz", "--epochs", "1")) == 0
    return run_folder(save_dir)


def test_resume_keeps_the_runs_arguments(finished_run, capsys):
    for flag, value in (("--model", "resnet18"), ("--ghm-bins", "15"), ("--learning-rate", "0.1")):
        with pytest.raises(SystemExit) as exit_info:
            train.parse_args(["--resume", str(finished_run), flag, value])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"{flag} {value}: the run in" in err and "keeps its arguments" in err


def tampered(finished_run: Path, tmp_path: Path, changes: dict, drop: tuple = ()) -> Path:
    checkpoint = torch.load(finished_run / "model_epoch_1.pt", weights_only=True)
    checkpoint.update(changes)
    for key in drop:
        del checkpoint[key]
    folder = tmp_path / "model_checkpoints" / finished_run.name
    folder.mkdir(parents=True)
    torch.save(checkpoint, folder / "model_epoch_1.pt")
    return folder


@pytest.mark.parametrize("changes, drop, message", [
    ({"model_state_dict": build_model("resnet18").state_dict()}, (), "its model does not fit this run"),
    ({"ghm_state_dict": {"density_state": torch.zeros(5), "density_started": torch.tensor(False)}}, (),
     "its GHM state does not fit this run"),
    ({}, ("rng", "history"), "missing history, rng"),  # written by an older train.py
])
def test_a_checkpoint_that_does_not_fit_gives_one_clear_error(finished_run, tmp_path, changes, drop, message,
                                                              capsys):
    folder = tampered(finished_run, tmp_path, changes, drop)
    assert train.main(["--resume", str(folder), "--epochs", "2", "--no-progress"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0] and "--resume" in errors[0], errors


@pytest.mark.parametrize("timestamp", ["20260101_000000/../../../../escape", "../x", 7])
def test_a_crafted_run_name_or_timestamp_writes_nothing_outside_the_run(finished_run, tmp_path, timestamp, capsys):
    folder = tampered(finished_run, tmp_path, {"run": {"name": finished_run.name, "timestamp": timestamp}})
    before = sorted(tmp_path.parent.rglob("*"))
    assert train.main(["--resume", str(folder), "--epochs", "2", "--no-progress"]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "not a checkpoint this program wrote" in errors[0], errors
    assert sorted(tmp_path.parent.rglob("*")) == before


def test_a_material_with_a_path_is_refused(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--material", "../x"))
    assert "--material must be folder names" in capsys.readouterr().err


def test_resume_errors_for_missing_or_foreign_files(tmp_path, capsys):
    (tmp_path / "empty_run").mkdir()
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    for path, message in ((tmp_path / "nowhere", "file not found"), (tmp_path / "empty_run", "holds no model_epoch"),
                          (tmp_path / "junk.pt", "cannot be read as a checkpoint")):
        with pytest.raises(SystemExit) as exit_info:
            train.parse_args(["--resume", str(path)])
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
