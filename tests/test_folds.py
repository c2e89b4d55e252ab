"""--folds K: K runs whose test recordings partition the recordings, none of them seen by its fold's training or
model choice; a folds summary of the mean and spread; the same command again reports the finished folds."""

import csv
import json
from pathlib import Path

import pytest
import torch
from conftest import assert_baseline_over_folds, tiny_train_args

import train
from utils import summarize

RUN = ("--frequency", "1000hz", "--epochs", "1", "--folds", "3", "--run-name", "cv")


def test_folds_partition_the_recordings_and_are_summarised(tiny_data, tmp_path, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, *RUN)
    assert train.main(argv) == 0
    out = capsys.readouterr().out
    everything = {str(p) for p in tiny_data.glob("*/plastic/*1000hz*.wav")}
    tested = []
    for fold in (1, 2, 3):
        run = tmp_path / "model_checkpoints" / f"cv_fold{fold}"
        test = {row["path"] for row in csv.DictReader(open(run / "eval" / "scores.csv"))}
        checkpoint = torch.load(run / "model_epoch_1.pt", weights_only=True)
        assert test and not test & set(checkpoint["val_recordings"])  # model choice never saw its test fold
        summary = json.loads((run / "summary.json").read_text())
        assert summary["evaluation"]["split"] == "test" and summary["args"]["fold"] == fold
        tested.append(test)
    assert sorted(p for test in tested for p in test) == sorted(everything)  # each recording tested exactly once

    folds = json.loads((tmp_path / "folds" / "cv" / "folds_summary.json").read_text())
    accuracies = [row["pairwise_accuracy"] for row in folds["per_fold"]]
    assert folds["completed"] == 3 and [row["run"] for row in folds["per_fold"]] == ["cv_fold1", "cv_fold2",
                                                                                      "cv_fold3"]
    assert folds["over_folds"]["pairwise_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 3)
    assert all(row["vs_best_baseline"] == pytest.approx(row["pairwise_accuracy"] -
                                                       row["best_baseline_pairwise_accuracy"])
               for row in folds["per_fold"])  # the CNN against the baselines on the same fold
    assert_baseline_over_folds(folds["best_baseline_over_folds"], folds["per_fold"], folds["over_folds"])
    assert [row["best_epoch"] for row in folds["per_fold"]] == [
        json.loads((tmp_path / "model_checkpoints" / row["run"] / "summary.json").read_text())["monitor"]["best_epoch"]
        for row in folds["per_fold"]]
    assert "3/3 folds of 1000hz: pairwise accuracy" in out
    assert f"best baseline over the folds ({folds['best_baseline_over_folds']})" in out
    rows = list(csv.DictReader(open(tmp_path / "folds" / "cv" / "folds_summary.csv")))
    assert [row["fold"] for row in rows] == ["1", "2", "3", "mean", "std"]
    assert float(rows[3]["vs_best_baseline_over_folds"]) == pytest.approx(
        folds["over_folds"]["vs_best_baseline_over_folds"]["mean"])

    before = (tmp_path / "model_checkpoints" / "cv_fold2" / "model_epoch_1.pt").read_bytes()
    assert train.main(argv) == 0  # a requeued job: every fold finished, reported, the summary written again
    assert capsys.readouterr().out.count("finished earlier") == 3
    assert (tmp_path / "model_checkpoints" / "cv_fold2" / "model_epoch_1.pt").read_bytes() == before
    assert summarize.main([str(tmp_path), "--group-by", "folds"]) == 0
    assert "3/3" in capsys.readouterr().out


def test_one_fold_of_a_job_array_and_the_flags_that_do_not_fit(tiny_data, tmp_path, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, *RUN, "--fold", "2")
    assert train.main(argv) == 0
    assert [p.name for p in (tmp_path / "model_checkpoints").iterdir()] == ["cv_fold2"]
    assert not (tmp_path / "folds").exists()  # the summary comes from the run of every fold
    for extra, problem in [(["--fold", "4"], "--fold needs --folds K and must be at most K"),
                           (["--test-fraction", "0.2"], "--folds holds each fold out as the test split"),
                           (["--folds", "1"], "--folds must be 0 or >= 2")]:
        with pytest.raises(SystemExit):
            train.parse_args([*tiny_train_args(tiny_data, tmp_path, *RUN), *extra])
        assert problem in capsys.readouterr().err
    with pytest.raises(SystemExit):
        train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--fold", "1"))
    assert "--fold needs --folds K" in capsys.readouterr().err


def test_fold_runs_are_named_after_their_fold(tiny_data, tmp_path):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--folds", "2",
                                      "--fold", "1")) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    assert "_seed42_fold1_" in run.name and Path(run / "summary.json").is_file()
