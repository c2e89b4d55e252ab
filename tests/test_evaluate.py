"""evaluate.py end to end on tiny data, and the evaluation train.py runs after training."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import one_epoch_run

import evaluate
from analysis import baselines as analysis_baselines
from analysis.ranking_metrics import pairwise_accuracy

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory):
    return one_epoch_run(tiny_data, tmp_path_factory.mktemp("eval_run"), "1000hz")


def read_scores(folder):
    with open(folder / "scores.csv") as f:
        return list(csv.DictReader(f))


def test_training_ends_with_an_evaluation_of_the_validation_recordings(trained_run):
    metrics = json.loads((trained_run / "eval" / "metrics.json").read_text())
    checkpoint = torch.load(trained_run / "model_epoch_1.pt", weights_only=True)
    rows = read_scores(trained_run / "eval")
    assert [r["path"] for r in rows] == checkpoint["val_recordings"]
    assert metrics["split"] == "val" and metrics["recordings"] == len(rows)


def test_evaluate_rebuilds_the_validation_split_and_scores_it(trained_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert evaluate.main(["--checkpoint", str(trained_run / "model_epoch_1.pt"), "--out", str(out)]) == 0
    assert "pairwise accuracy" in capsys.readouterr().out
    for name in ("metrics.json", "scores.csv", "scores_by_class.png", "pair_accuracy.png"):
        assert (out / name).is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    rows = read_scores(out)
    checkpoint = torch.load(trained_run / "model_epoch_1.pt", weights_only=True)
    assert [r["path"] for r in rows] == checkpoint["val_recordings"]
    classes = sorted({r["class"] for r in rows})
    labels = np.array([int(r["class"][3:]) // 36 for r in rows])
    scores = np.array([float(r["score"]) for r in rows])
    assert metrics["pairwise_accuracy"] == pytest.approx(pairwise_accuracy(scores, labels), abs=1e-6)
    assert set(metrics) >= {"kendall_tau_b", "spearman_rho", "per_class", "class_pair_accuracy", "checkpoint"}
    assert len(classes) >= 2
    # The same model and recordings as the end-of-training evaluation: the same scores.
    assert [r["score"] for r in rows] == [r["score"] for r in read_scores(trained_run / "eval")]


def test_split_all_takes_every_recording(trained_run, tiny_data, tmp_path):
    assert evaluate.main(["--checkpoint", str(trained_run / "model_epoch_1.pt"), "--split", "all",
                          "--out", str(tmp_path)]) == 0
    assert len(read_scores(tmp_path)) == len(list(tiny_data.rglob("*_1000hz_*.wav")))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["pairs"] == 18 * 17 // 2 - 6 * 3  # all pairs minus same-class ones


def test_clear_errors(trained_run, tmp_path, capsys):
    checkpoint = str(trained_run / "model_epoch_1.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [(["--checkpoint", str(tmp_path / "missing.pt")], "file not found"),
             (["--checkpoint", str(garbage)], "cannot be read as a checkpoint"),
             (["--checkpoint", checkpoint, "--model", "resnet18"], "do not fit model 'resnet18'"),
             (["--checkpoint", checkpoint, "--material", "box"], "no recordings found")]
    for argv, message in cases:
        assert evaluate.main(argv + ["--out", str(tmp_path / "o")]) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], errors


def test_the_default_output_is_per_checkpoint_and_split_and_keeps_the_runs_own_evaluation(trained_run):
    final = (trained_run / "eval" / "metrics.json").read_bytes()
    for split in ("val", "all"):
        assert evaluate.main(["--checkpoint", str(trained_run / "model_epoch_1.pt"), "--split", split]) == 0
        assert json.loads((trained_run / f"eval_model_epoch_1_{split}" / "metrics.json").read_text())["split"] == split
    assert (trained_run / "eval" / "metrics.json").read_bytes() == final


class Foreign:
    pass


MALFORMED = {
    "not a dict": lambda c: [c],
    "args not a dict": lambda c: {**c, "args": ["x"]},
    "args without seed": lambda c: {**c, "args": {k: v for k, v in c["args"].items() if k != "seed"}},
    "seed a string": lambda c: {**c, "args": {**c["args"], "seed": "42"}},
    "unknown model": lambda c: {**c, "args": {**c["args"], "model": "vgg"}},
    "weights a list": lambda c: {**c, "model_state_dict": [1, 2]},
    "weights not tensors": lambda c: {**c, "model_state_dict": {k: 1.0 for k in c["model_state_dict"]}},
    "paths not strings": lambda c: {**c, "val_recordings": [1, 2]},
    "epoch a string": lambda c: {**c, "epoch": "1"},
}


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_loadable_but_malformed_checkpoint_is_one_error_line(trained_run, tmp_path, capsys, kind):
    checkpoint = torch.load(trained_run / "model_epoch_1.pt", weights_only=True)
    path = tmp_path / "model_epoch_1.pt"
    torch.save(MALFORMED[kind](checkpoint), path)
    assert evaluate.main(["--checkpoint", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --checkpoint {path}: ") and err.count("\n") == 1 and "Traceback" not in err


def test_a_checkpoint_of_foreign_objects_is_named_in_one_line(tmp_path, capsys):
    path = tmp_path / "foreign.pt"
    torch.save({"model_state_dict": Foreign(), "args": {}}, path)
    assert evaluate.main(["--checkpoint", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Foreign" in err and "Weights only load failed" not in err


def test_the_command_compares_a_run_with_the_baselines(trained_run, tmp_path, capsys):
    assert analysis_baselines.main([str(trained_run), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "CNN" in printed and "(best baseline)" in printed
    report = json.loads((tmp_path / "baselines.json").read_text())
    metrics = json.loads((trained_run / "eval" / "metrics.json").read_text())
    assert report["cnn"]["pairwise_accuracy"] == pytest.approx(metrics["pairwise_accuracy"])
    assert report["baselines"]["rankers"] == metrics["baselines"]["rankers"]
    assert report["vs_best_baseline"] == pytest.approx(metrics["vs_best_baseline"])
