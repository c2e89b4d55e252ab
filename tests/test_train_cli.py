"""train.py and train_with_ghm.py end to end on tiny data."""

import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, tiny_train_args

import train
import train_with_ghm
from losses import GHMRankingLoss

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out

LOAD_WITHOUT_TORCH = """
import pickle, sys
sys.modules["torch"] = None  # any attempt to import torch now fails
from utils.safe_pickle import load_pickle
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        pickle.load(f)
    load_pickle(path)  # the restricted reader takes every file the run wrote
print("loaded", len(sys.argv) - 1)
"""


def run_dir(save_dir: Path, kind: str) -> Path:
    (folder,) = (save_dir / kind).iterdir()
    return folder


def load_pickle(path: Path):
    with open(path, "rb") as f:
        return pickle.load(f)


def test_ghm_run_writes_every_output(tiny_data, tmp_path, capsys):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--loss-type", "ghm",
                                      "--profile")) == 0
    profile = [line for line in capsys.readouterr().out.splitlines() if line.startswith("profile of ")]
    assert len(profile) == 1
    seconds = [float(s) for s in re.findall(r"([\d.]+) s \(", profile[0])]
    labels = re.findall(r"(?:: | · )([a-z -]+) [\d.]+ s", profile[0])
    assert labels == ["start-up", "training steps", "loader and per-batch hooks", "validation", "epoch outputs",
                      "final evaluation", "other"]
    assert all(s >= 0 for s in seconds[:-1]) and seconds[1] > 0 and seconds[5] > 0
    checkpoints = run_dir(tmp_path, "model_checkpoints")
    run = checkpoints.name
    assert run.startswith("plastic_1000hz_ghm_alpha0.75_seed42_")
    timestamp = run[len("plastic_1000hz_ghm_alpha0.75_seed42_"):]
    summary = json.loads((checkpoints / "summary.json").read_text())
    eval_best = ["eval_best"] if summary["monitor"]["best_epoch"] != 2 else []  # else eval/ is the best model's too
    assert sorted(p.name for p in checkpoints.iterdir()) == sorted([
        "config.yaml", "eval", *eval_best, "metrics.csv", "model_best.pt", "model_epoch_1.pt", "model_epoch_2.pt",
        "summary.json", "train.log", f"training_history_{timestamp}.pkl"])
    assert (summary["run"], summary["status"], summary["epochs_done"], summary["error"]) == (run, "completed", 2, None)
    assert summary["args"]["frequency"] == "1000hz" and summary["wall_time_s"] > 0
    assert set(summary["evaluation"]) == {"pairwise_accuracy", "kendall_tau_b", "spearman_rho", "split", "model",
                                          "best_epoch", "last", "class_accuracy", "mean_abs_angle_error_deg",
                                          "best_baseline", "best_baseline_pairwise_accuracy",
                                          "best_baseline_kendall_tau_b", "vs_best_baseline",
                                          "baselines_pairwise_accuracy"}
    evaluation = summary["evaluation"]
    assert evaluation["vs_best_baseline"] == pytest.approx(evaluation["pairwise_accuracy"]
                                                           - evaluation["best_baseline_pairwise_accuracy"])
    assert summary["end_reason"] == "trained all 2 epochs" and summary["monitor"]["name"] == "val_loss"
    assert summary["best_val_accuracy_epoch"] in (1, 2) and len(summary["outputs"]["checkpoints"]) == 2
    assert sorted(p.name for p in (checkpoints / "eval").iterdir()) == [
        "confusion.png", "metrics.json", "pair_accuracy.png", "scores.csv", "scores_by_class.png"]
    stats_dir, plots_dir = tmp_path / "stats" / run, tmp_path / "plots" / run
    stats_files = sorted(stats_dir.iterdir())
    assert len(stats_files) == 4
    batches = {p.name.split("_")[1] for p in stats_files}  # "batch<M>"
    assert len(batches) == 2 and "batch1" in batches
    (last,) = batches - {"batch1"}
    assert {p.name for p in stats_files} == {f"epoch{e}_{b}_{timestamp}_ghm_stats.pkl"
                                             for e in (1, 2) for b in ("batch1", last)}
    for e in (1, 2):
        for b in ("batch1", last):
            plot = plots_dir / f"grad_dist_epoch{e}_{b}_{timestamp}.png"
            assert plot.is_file() and plot.stat().st_size > 1000
    assert (plots_dir / f"training_history_{timestamp}.png").is_file()

    checkpoint = torch.load(checkpoints / "model_epoch_2.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["args"]["frequency"] == "1000hz"
    assert {"model_state_dict", "optimizer_state_dict", "scheduler_state_dict", "train_loss",
            "train_accuracy", "val_loss", "val_accuracy"} <= set(checkpoint)

    history = load_pickle(checkpoints / f"training_history_{timestamp}.pkl")
    assert history["epoch"] == [1, 2]
    for key in ("train_loss_main", "train_loss_standard_log", "train_accuracy", "val_loss_main",
                "val_loss_standard_log", "val_accuracy"):
        assert len(history[key]) == 2 and all(isinstance(v, float) for v in history[key])

    stats = load_pickle(stats_dir / f"epoch1_batch1_{timestamp}_ghm_stats.pkl")
    assert (stats["epoch"], stats["batch"], stats["bins"], stats["alpha"], stats["margin"]) == (1, 1, 10, 0.75, 1.0)
    assert (stats["loss_type"], stats["run_name"], stats["global_step"]) == ("ghm", run, 1)
    last_of_epoch_2 = load_pickle(stats_dir / f"epoch2_{last}_{timestamp}_ghm_stats.pkl")
    assert last_of_epoch_2["global_step"] == 2 * int(last[len("batch"):])
    assert stats["bin_counts"].sum() == len(stats["g"]) == len(stats["pair_paths"]) == 8
    assert abs(stats["weight"].mean() - 1.0) < 1e-6
    assert set(stats["g_summary"]) == {"mean", "median", "min", "max", "std"}
    assert all(Path(a).is_file() and Path(b).is_file() for a, b in stats["pair_paths"])

    pickles = [str(p) for p in stats_files] + [str(checkpoints / f"training_history_{timestamp}.pkl")]
    out = subprocess.run([sys.executable, "-c", LOAD_WITHOUT_TORCH, *pickles], capture_output=True, text=True,
                         cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"loaded {len(pickles)}"


def test_a_failing_run_leaves_a_failed_summary(tiny_data, tmp_path, monkeypatch):
    def broken(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(train, "final_evaluation", broken)
    with pytest.raises(RuntimeError, match="boom"):
        train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz"))
    summary = json.loads((run_dir(tmp_path, "model_checkpoints") / "summary.json").read_text())
    assert (summary["status"], summary["epochs_done"], summary["error"]) == ("failed", 2, "RuntimeError: boom")


def test_standard_run_has_no_ghm_outputs(tiny_data, tmp_path):
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--loss-type", "standard")) == 0
    checkpoints = run_dir(tmp_path, "model_checkpoints")
    assert checkpoints.name.startswith("plastic_500hz_standard_seed42_")
    assert not (tmp_path / "stats").exists()
    history = load_pickle(next(checkpoints.glob("training_history_*.pkl")))
    assert history["train_loss_main"] == history["train_loss_standard_log"]


def test_same_seed_gives_identical_histories(tiny_data, tmp_path):
    histories = []
    for name in ("a", "b"):
        argv = tiny_train_args(tiny_data, tmp_path / name, "--frequency", "3000hz", "--seed", "5")
        assert train.main(argv) == 0
        history = load_pickle(next(run_dir(tmp_path / name, "model_checkpoints").glob("training_history_*.pkl")))
        history.pop("args")
        histories.append(history)
    assert histories[0] == histories[1]


def test_run_names_stay_unique_within_one_second(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1")
    for _ in range(3):
        assert train.main(argv) == 0
    assert len(list((tmp_path / "model_checkpoints").iterdir())) == 3


def test_frequency_all_trains_each_and_reports_failures(tiny_data, tmp_path, capsys):
    partial = tmp_path / "partial"
    for wav in tiny_data.rglob("*.wav"):
        if "_3000hz_" not in wav.name or "deg000" in wav.name:  # 3000hz: one class only, which fails
            target = partial / wav.relative_to(tiny_data)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(wav.read_bytes())
    code = train.main(tiny_train_args(partial, tmp_path / "out", "--frequency", "all", "--epochs", "1"))
    out = capsys.readouterr()
    assert code == 1
    assert "3000hz     FAILED  recordings found for one class only" in out.out
    assert out.out.count(" ok ") == 2
    assert len(list((tmp_path / "out" / "model_checkpoints").iterdir())) == 2
    assert out.err.count("error: recordings found for one class only") == 1


def test_verify_consistency_compares_with_an_earlier_record(tiny_data, tmp_path, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "1", "--verify-consistency")
    assert train.main(argv) == 0
    assert "no earlier record to compare" in capsys.readouterr().out
    assert train.main(argv) == 0
    assert "first 3 batches identical to" in capsys.readouterr().out
    records = list((tmp_path / "batch_consistency" / "plastic_1000hz_ghm").glob("train_batches_*_seed42.pkl"))
    assert len(records) == 2
    assert len(load_pickle(records[0])["batches"]) == 3


def test_deprecated_script_trains_with_ghm_and_checks_batches(tiny_data, tmp_path, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1")
    assert train_with_ghm.main(argv) == 0
    assert run_dir(tmp_path, "model_checkpoints").name.startswith("plastic_500hz_ghm_")
    assert "deprecated" in capsys.readouterr().err
    assert train_with_ghm.check_batch_consistency(argv) is True
    assert "first 3 batches identical" in capsys.readouterr().out
    assert train_with_ghm.main(argv + ["--loss-type", "standard"]) == 2


def run_cli(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *argv], capture_output=True, text=True,
                          cwd=ROOT)


def parser_error(argv: list[str], capsys) -> str:
    """The parser's error for `argv` (exit code 2), as train.py prints it."""
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_expected_errors_are_one_line_without_traceback(tiny_data, tmp_path, capsys):
    missing = run_cli("--frequency", "500hz", "--data-root", str(tmp_path / "nowhere"))
    assert missing.returncode == 2
    assert "--data-root" in missing.stderr and "folder not found" in missing.stderr
    assert "Traceback" not in missing.stderr

    assert "--epochs must be >= 1" in parser_error(["--frequency", "500hz", "--data-root", str(tiny_data),
                                                    "--epochs", "0"], capsys)
    assert "--material box: no <class>/box folder under" in parser_error(
        tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--material", "box"), capsys)

    only_500 = tmp_path / "only_500"
    for wav in tiny_data.rglob("*_500hz_*.wav"):
        (only_500 / wav.relative_to(tiny_data)).parent.mkdir(parents=True, exist_ok=True)
        (only_500 / wav.relative_to(tiny_data)).write_bytes(wav.read_bytes())
    assert "--frequency 3000hz: no 3000hz recordings under" in parser_error(
        tiny_train_args(only_500, tmp_path, "--frequency", "3000hz"), capsys)

    unreadable = tmp_path / "unreadable"
    for wav in only_500.rglob("*.wav"):
        (unreadable / wav.relative_to(only_500)).parent.mkdir(parents=True, exist_ok=True)
        (unreadable / wav.relative_to(only_500)).write_bytes(wav.read_bytes())
    next(unreadable.rglob("*.wav")).write_bytes(b"RIFF....WAVEjunk")
    bad_file = run_cli(*tiny_train_args(unreadable, tmp_path, "--frequency", "500hz"))
    assert bad_file.returncode == 1 and "Traceback" not in bad_file.stderr
    errors = [line for line in bad_file.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot read audio" in errors[0]


@pytest.mark.parametrize("flag, value, message", [("--ghm-bins", "0", "--ghm-bins must be an integer >= 1"),
                                                   ("--learning-rate", "0", "--learning-rate must be > 0"),
                                                   ("--ghm-alpha", "-1", "--ghm-alpha must be >= 0"),
                                                   ("--seed", "-1", "--seed must be between 0 and 2**32 - 1"),
                                                   ("--seed", "4294967296", "--seed must be between 0 and 2**32"),
                                                   ("--duration", "inf", "--duration must be > 0 and finite"),
                                                   ("--margin", "nan", "--margin must be > 0 and finite"),
                                                   ("--margin", "-1 --ghm-temperature 1", "--margin must be > 0"),
                                                   ("--threads", "-1", "--threads must be >= 0"),
                                                   ("--time-crop", "1.5", "--time-crop must be > 0 and <= 1")])
def test_flag_values_are_checked(tiny_data, flag, value, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--frequency", "500hz", "--data-root", str(tiny_data), flag, *value.split()])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("flags", [("--n-fft", "8"), ("--hop-length", "100000")])
def test_a_spectrogram_the_model_cannot_take_is_an_error_before_the_run_folder_exists(tiny_data, tmp_path, flags,
                                                                                      capsys):
    assert train.main([*tiny_train_args(tiny_data, tmp_path / "out", "--frequency", "500hz"), *flags]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "are too small for model simple_cnn" in err and "--n-fft" in err
    assert not (tmp_path / "out").exists()


def test_a_non_finite_loss_stops_the_run_with_one_line_and_keeps_checkpoints(tiny_data, tmp_path, monkeypatch,
                                                                            capsys):
    calls = {"n": 0}
    real = GHMRankingLoss.forward

    def forward_nan_in_epoch_2(self, s1, s2, target):
        calls["n"] += 1
        loss = real(self, s1, s2, target)
        return loss * float("nan") if calls["n"] > 20 else loss
    monkeypatch.setattr(GHMRankingLoss, "forward", forward_nan_in_epoch_2)
    code = train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "3"))
    assert code == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "epoch 2 train, batch" in errors[0] and "the loss is nan" in errors[0]
    checkpoints = run_dir(tmp_path, "model_checkpoints")
    assert (checkpoints / "model_epoch_1.pt").is_file() and not (checkpoints / "model_epoch_2.pt").exists()
    summary = json.loads((checkpoints / "summary.json").read_text())
    assert summary["status"] == "failed" and summary["epochs_done"] == 1


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_mixed_precision_trains_and_checkpoints_the_scaler(tiny_data, tmp_path, amp, capsys):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--amp", amp)
    assert train.main(argv) == 0
    assert f"mixed precision {amp}" in capsys.readouterr().out
    checkpoints = run_dir(tmp_path, "model_checkpoints")
    checkpoint = torch.load(checkpoints / "model_epoch_1.pt", weights_only=True)
    assert ("scale" in checkpoint["scaler_state_dict"]) == (amp == "fp16")
    assert all(v.dtype == torch.float32 for v in checkpoint["model_state_dict"].values() if v.is_floating_point())
    stats = load_pickle(next(run_dir(tmp_path, "stats").iterdir()))
    assert abs(stats["weight"].mean() - 1.0) < 1e-6


def test_the_memory_mapped_cache_data_on_device_and_worker_processes_train_as_in_memory(tiny_data, tmp_path, capsys):
    """In memory a CPU batch holds views of its recordings; from worker processes a stacked copy."""
    histories = []
    for name, extra in (("memory", ()), ("mapped", ("--cache-dir", str(tmp_path / "cache"))),
                        ("on_device", ("--data-on-device", "--device", "cpu")), ("workers", ("--num-workers", "1"))):
        argv = tiny_train_args(tiny_data, tmp_path / name, "--frequency", "500hz", "--epochs", "1", *extra)
        assert train.main(argv) == 0
        history = load_pickle(next(run_dir(tmp_path / name, "model_checkpoints").glob("training_history_*.pkl")))
        for key in ("save_dir", "cache_dir", "data_on_device", "device", "num_workers"):
            history["args"].pop(key)
        histories.append(history)
    assert histories[0] == histories[1] == histories[2] == histories[3]
    assert "--data-on-device needs the spectrograms in memory" in parser_error(
        tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--data-on-device", "--num-workers", "1"), capsys)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 18


def test_help_lists_the_flags_with_their_defaults(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # no line breaks inside a flag's help
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--deterministic" in out and "learning rate (default: the model's, 0.01 for baseline_residual" in out
