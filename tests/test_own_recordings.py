"""Your own recordings: classes, frequencies and materials from the data; predict.py's angle estimates."""

import csv
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_train_args, write_wav

import evaluate
import predict
import train
from analysis.calibration import calibration_problem, estimate, fit_calibration
from audio_data.classes import class_angle, find_frequencies, order_classes
from audio_data.synthetic import class_names, generate
from utils.errors import InputError


@pytest.fixture(scope="module")
def lab_data(tmp_path_factory) -> Path:
    """Four classes every 30°, at 250 Hz, two materials: a lab's own layout from the demo generator."""
    return generate(tmp_path_factory.mktemp("lab"), sample_rate=8000, duration=0.25, seqs=4,
                    classes=class_names([0, 30, 60, 90]), materials=["plastic", "box"], frequencies=["250hz"])


def test_classes_are_ordered_by_the_angle_in_their_names():
    assert order_classes(["deg180", "deg-30", "deg036", "deg000"]) == ["deg-30", "deg000", "deg036", "deg180"]
    assert order_classes(["az090", "az045", "az135"]) == ["az045", "az090", "az135"]
    twelve = class_names(list(range(0, 360, 30)))
    assert order_classes(sorted(twelve, reverse=True)) == twelve and len(twelve) == 12
    assert class_angle("deg22.5") == 22.5 and class_angle("near") is None
    with pytest.raises(InputError, match="near, far; give the classes in rank order with --classes"):
        order_classes(["near", "deg010", "far"])
    with pytest.raises(InputError, match="same angle: az010, deg010"):
        order_classes(["deg010", "az010"])


def test_calibration_estimates_class_angle_and_confidence():
    scores = np.array([0.0, 0.2, 1.0, 1.2, 2.0, 2.2])
    calibration = fit_calibration(scores, np.array([0, 0, 1, 1, 2, 2]), ["a", "b", "c"], [0.0, 30.0, None])
    assert calibration_problem(calibration) is None and calibration["means"] == pytest.approx([0.1, 1.1, 2.1])
    guess = estimate(calibration, np.array([0.1, 1.1, 2.1]))
    assert guess["class"].tolist() == [0, 1, 2] and np.all(guess["confidence"] > 0.99)
    assert guess["angle"][0] == pytest.approx(0.0, abs=1e-6) and np.isnan(guess["angle"][2])
    assert calibration_problem({**calibration, "std": -1.0}) and calibration_problem({"method": "x"})


@pytest.mark.slow
def test_a_lab_layout_trains_evaluates_and_predicts(lab_data, tmp_path, capsys):
    assert find_frequencies(lab_data, class_names([0, 30, 60, 90]), ["plastic", "box"]) == ["250hz"]
    argv = tiny_train_args(lab_data, tmp_path, "--frequency", "all", "--material", "plastic,box")
    assert train.main(argv) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    assert run.name.startswith("plastic+box_250hz_ghm")
    summary = json.loads((run / "summary.json").read_text())
    assert [c["name"] for c in summary["classes"]] == ["deg000", "deg030", "deg060", "deg090"]
    assert [c["angle"] for c in summary["classes"]] == [0.0, 30.0, 60.0, 90.0]
    assert summary["args"]["classes"] == "deg000,deg030,deg060,deg090"
    assert 0 <= summary["evaluation"]["class_accuracy"] <= 1 and summary["evaluation"]["mean_abs_angle_error_deg"] >= 0
    with open(run / "eval" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["material"] for r in rows} == {"plastic", "box"} and all(r["estimated_class"] for r in rows)
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert set(metrics["estimate"]["per_material"]) == {"box", "plastic"} and (run / "eval" / "confusion.png").is_file()
    stats = pickle.loads(next((tmp_path / "stats" / run.name).iterdir()).read_bytes())
    assert stats["classes"] == summary["args"]["classes"].split(",")
    assert {m for pair in stats["pair_materials"] for m in pair} <= {"plastic", "box"}
    checkpoint = torch.load(run / "model_best.pt", weights_only=True)
    assert calibration_problem(checkpoint["calibration"]) is None
    assert checkpoint["audio"] == {"sample_rate": 8000, "samples": 2000}

    capsys.readouterr()
    assert evaluate.main(["--checkpoint", str(run / "model_best.pt"), "--split", "all"]) == 0
    out = capsys.readouterr().out
    assert "class accuracy" in out and "  box: pairwise accuracy" in out and "  plastic: pairwise accuracy" in out

    new = tmp_path / "unlabelled"
    for i, source in enumerate(sorted(lab_data.glob("deg0*/box/*_00.wav"))):
        (new / "sub").mkdir(parents=True, exist_ok=True)
        (new / "sub" / f"take{i}.wav").write_bytes(source.read_bytes())
    write_wav(new / "other_rate.wav", np.full(4000, 0.1), rate=16000)  # the run's length at its rate: resampled
    write_wav(new / "short.wav", np.full(1500, 0.1))
    (new / "broken.wav").write_bytes(b"RIFF....WAVE")
    assert predict.main(["--checkpoint", str(run), str(new)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken.wav" in err
    with pytest.warns(UserWarning) as caught:
        assert predict.main(["--checkpoint", str(run / "model_best.pt"), str(new), "--skip-bad-files",
                             "--out", str(tmp_path / "p.csv")]) == 0
    warned = " ".join(str(w.message) for w in caught)
    assert "short.wav: 1500 samples at 8000 Hz; the run's recordings have 2000" in warned
    assert "skipped 2 of 7 recordings" in warned
    with open(tmp_path / "p.csv") as f:
        predictions = list(csv.DictReader(f))
    assert [Path(r["path"]).name for r in predictions] == ["other_rate.wav", *(f"take{i}.wav" for i in range(4))]
    assert all(r["estimated_class"] in summary["args"]["classes"] and 0 <= float(r["confidence"]) <= 1
               for r in predictions)


def test_classes_and_frequencies_come_from_the_data(lab_data, tmp_path, capsys):
    base = tiny_train_args(lab_data, tmp_path)
    with pytest.raises(SystemExit):
        train.parse_args([*base, "--frequency", "1000hz"])
    err = capsys.readouterr().err
    assert "--frequency 1000hz: no 1000hz recordings" in err and "found: 250hz" in err
    args = train.parse_args([*base, "--frequency", "250hz", "--classes", "deg090,deg000,deg030"])
    assert args.data.classes == "deg090,deg000,deg030"
    with pytest.raises(SystemExit):
        train.parse_args([*base, "--frequency", "250hz", "--classes", "deg000,deg045"])
    assert "--classes: no plastic folder" in capsys.readouterr().err
    (lab_data / "middle" / "plastic").mkdir(parents=True)
    try:
        with pytest.raises(SystemExit):
            train.parse_args([*base, "--frequency", "250hz"])
        assert "class folders without an angle in their name: middle" in capsys.readouterr().err
    finally:
        (lab_data / "middle" / "plastic").rmdir()
        (lab_data / "middle").rmdir()


def test_twelve_classes_every_30_degrees_load_in_rank_order(tmp_path):
    from training.loop import run_data

    root = generate(tmp_path / "twelve", sample_rate=8000, duration=0.1, seqs=2, materials=["plastic"],
                    classes=class_names(list(range(-150, 210, 30))), frequencies=["2000hz"])
    cfg = train.parse_args(tiny_train_args(root, tmp_path / "out", "--frequency", "2000hz"))
    assert cfg.data.class_list == class_names(list(range(-150, 210, 30)))
    recordings = run_data(cfg).recordings
    assert recordings.labels.tolist() == [k for k in range(12) for _ in range(2)]
    assert [Path(p).parent.parent.name for p in recordings.paths][:4] == ["deg-150", "deg-150", "deg-120", "deg-120"]
