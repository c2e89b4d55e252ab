"""model_best.pt by --monitor, --early-stop-patience, and the --test-fraction split."""

import csv
import json
import math

import pytest
import torch
from conftest import tiny_train_args
from torch.utils.data import random_split

import config
import evaluate
import train
from audio_data.loading import split_recordings
from config import OptimConfig
from training.loop import run_data
from utils.history import early_stop_reason, monitor_best, new_history, record_epoch


def history_of(val_losses: list[float], val_accuracies: list[float], **args) -> dict:
    history = new_history(args)
    for epoch, (loss, accuracy) in enumerate(zip(val_losses, val_accuracies), start=1):
        figures = {"loss_main": loss, "loss_standard_log": loss, "accuracy": accuracy}
        record_epoch(history, epoch, figures, figures)
    return history


def test_the_monitor_picks_the_first_best_epoch_and_skips_nan():
    history = history_of([0.9, 0.5, 0.5, math.nan, 0.7], [0.6, 0.8, 0.9, 0.9, math.nan])
    assert monitor_best(history, "val_loss") == (0.5, 2)
    assert monitor_best(history, "val_accuracy") == (0.9, 3)
    assert monitor_best(history_of([], []), "val_loss") == (None, None)


@pytest.mark.parametrize("patience, losses, stops", [
    (0, [1, 2, 3, 4], False),
    (2, [1, 2, 3], True),
    (2, [1, 2], False),
    (2, [3, 2, 2, 2], True),  # equal is not better
    (3, [3, 2, 2, 1], False),
])
def test_early_stopping_counts_epochs_since_the_best(patience, losses, stops):
    history = history_of(losses, [0.5] * len(losses))
    reason = early_stop_reason(history, OptimConfig(early_stop_patience=patience))
    assert (reason is not None) == stops
    if stops:
        assert f"has not improved for {patience} epochs" in reason


def test_without_a_test_fraction_the_split_is_the_old_70_30_split(tiny_data):
    cfg = train.parse_args(tiny_train_args(tiny_data, tiny_data / "unused", "--frequency", "500hz"))
    recordings = run_data(cfg).recordings
    old_train, old_val = random_split(recordings, [int(config.TRAIN_FRACTION * len(recordings)),
                                                   len(recordings) - int(config.TRAIN_FRACTION * len(recordings))],
                                      generator=torch.Generator().manual_seed(7))
    split = split_recordings(recordings, 7)
    assert (split.train, split.val, split.test) == (list(old_train.indices), list(old_val.indices), [])

    held = split_recordings(recordings, 7, 0.34)
    labels = recordings.labels
    assert sorted(held.train + held.val + held.test) == list(range(len(recordings)))
    assert all(int((labels[held.test] == k).sum()) == 1 for k in range(len(config.CLASSES)))  # 0.34 × 3 → 1 each
    assert held == split_recordings(recordings, 7, 0.34) and held.test != split_recordings(recordings, 8, 0.34).test


@pytest.mark.slow
def test_early_stop_best_model_and_test_split_end_to_end(tiny_data, tmp_path, capsys):
    # seed 48: every class keeps a training recording after the test split (seed 42 leaves deg072 none: an error)
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "8", "--monitor",
                           "val_accuracy", "--early-stop-patience", "1", "--test-fraction", "0.34", "--seed", "48")
    assert train.main(argv) == 0
    (folder,) = (tmp_path / "model_checkpoints").iterdir()
    summary = json.loads((folder / "summary.json").read_text())
    history = torch.load(folder / f"model_epoch_{summary['epochs_done']}.pt", weights_only=True)["history"]
    best, best_at = monitor_best(history, "val_accuracy")
    assert summary["epochs_done"] < 8 and summary["end_reason"].startswith("early stop: val_accuracy")
    assert summary["monitor"] == {"name": "val_accuracy", "best": best, "best_epoch": best_at}
    optim = OptimConfig(monitor="val_accuracy", early_stop_patience=1)
    assert all(early_stop_reason({**history, "epoch": history["epoch"][:e],
                                  "val_accuracy": history["val_accuracy"][:e]}, optim) is None
               for e in range(1, summary["epochs_done"]))

    best_checkpoint = torch.load(folder / "model_best.pt", weights_only=True)
    at_best = torch.load(folder / f"model_epoch_{best_at}.pt", weights_only=True)
    assert best_checkpoint["epoch"] == best_at
    assert all(torch.equal(best_checkpoint["model_state_dict"][k], at_best["model_state_dict"][k])
               for k in at_best["model_state_dict"])

    evaluation = summary["evaluation"]
    assert (evaluation["split"], evaluation["model"], evaluation["best_epoch"]) == ("test", "best", best_at)
    best_metrics = json.loads((folder / "eval_best" / "metrics.json").read_text())
    last_metrics = json.loads((folder / "eval" / "metrics.json").read_text())
    assert (best_metrics["model"], best_metrics["split"], best_metrics["recordings"]) == ("best", "test", 6)
    assert evaluation["pairwise_accuracy"] == best_metrics["pairwise_accuracy"]
    assert evaluation["last"]["pairwise_accuracy"] == last_metrics["pairwise_accuracy"]
    # the baselines are fitted on the training recordings and measured on the same test recordings
    with open(folder / "eval_best" / "scores.csv") as f:
        assert set(best_metrics["baselines"]["recordings"]) == {row["path"] for row in csv.DictReader(f)}
    assert best_metrics["baselines"] == last_metrics["baselines"]
    assert evaluation["best_baseline_pairwise_accuracy"] == max(
        r["pairwise_accuracy"] for r in best_metrics["baselines"]["rankers"].values())

    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(folder / "model_best.pt"), "--split", "test"]) == 0
    again = json.loads((folder / "eval_model_best_test" / "metrics.json").read_text())
    assert again["pairwise_accuracy"] == best_metrics["pairwise_accuracy"]

    # a resumed early-stopped run trains no further, even with more epochs
    assert train.main(["--resume", str(folder), "--epochs", "12", "--no-progress"]) == 0
    assert not any(line.startswith("epoch ") for line in capsys.readouterr().out.splitlines())
    assert json.loads((folder / "summary.json").read_text())["epochs_done"] == summary["epochs_done"]


def test_selection_flags_are_checked(tiny_data, tmp_path, capsys):
    for flag, value in (("--test-fraction", "1"), ("--test-fraction", "-0.1"), ("--early-stop-patience", "-1"),
                        ("--monitor", "train_loss")):
        with pytest.raises(SystemExit):
            train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", flag, value))
        assert flag in capsys.readouterr().err
