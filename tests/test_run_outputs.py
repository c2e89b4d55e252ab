"""train.log, metrics.csv and config.yaml in every run folder."""

import csv
import pickle
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import yaml
from conftest import ROOT, tiny_train_args, write_wav

import train

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out


def run_folder(save_dir):
    (folder,) = (save_dir / "model_checkpoints").iterdir()
    return folder


def test_the_log_holds_everything_the_run_printed_warnings_and_errors_included(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    write_wav(data / "deg072" / "plastic" / "plastic_deg072_500hz_09.wav", np.zeros(6000), rate=24000)
    argv = tiny_train_args(data, tmp_path / "out", "--frequency", "500hz", "--skip-bad-files", "--learning-rate",
                           "1e30")  # a learning rate that makes the loss non-finite: the run stops with an error
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *argv], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1
    log = (run_folder(tmp_path / "out") / "train.log").read_text()
    assert "warning: skipping" in log and "silent" in log  # printed before the run folder existed
    assert "run plastic_500hz" in log and "error: " in log and "the loss is" in log
    for line in (done.stdout + done.stderr).splitlines():
        assert line in log


def test_runs_in_threads_of_one_process_each_log_only_their_own_lines(tiny_data, tmp_path):
    codes = []
    threads = [threading.Thread(target=lambda seed=seed: codes.append(train.main(tiny_train_args(
        tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "1", "--seed", str(seed))))) for seed in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [0, 0, 0]
    for folder in (tmp_path / "model_checkpoints").iterdir():
        runs = [line for line in (folder / "train.log").read_text().splitlines() if line.startswith("run ")]
        assert runs == [f"run {folder.name}" + runs[0].split(folder.name, 1)[1]]


def test_metrics_and_config_cover_every_epoch_across_a_resume(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "2")
    assert train.main(argv) == 0
    folder = run_folder(tmp_path)
    assert train.main(["--resume", str(folder), "--epochs", "3", "--no-progress"]) == 0
    with open(folder / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    history = pickle.loads(next(folder.glob("training_history_*.pkl")).read_bytes())
    assert [int(row["epoch"]) for row in rows] == history["epoch"] == [1, 2, 3]
    assert [float(row["val_accuracy"]) for row in rows] == history["val_accuracy"]
    assert all(float(row["lr"]) > 0 and float(row["seconds"]) > 0 for row in rows)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    assert (config["frequency"], config["epochs"], config["seed"]) == ("1000hz", 3, 42)
    log = (folder / "train.log").read_text().splitlines()  # the resumed run appends to its log
    assert sum(line.startswith("run ") for line in log) == 2 and any(line.startswith("resuming run") for line in log)


def test_a_runs_own_config_yaml_starts_the_same_run_again(tiny_data, tmp_path):
    assert train.main(tiny_train_args(tiny_data, tmp_path / "a", "--frequency", "500hz", "--ghm-momentum", "0.5")) == 0
    first = run_folder(tmp_path / "a")
    assert train.main(["--config", str(first / "config.yaml"), "--save-dir", str(tmp_path / "b")]) == 0
    histories = [pickle.loads(next(folder.glob("training_history_*.pkl")).read_bytes())
                 for folder in (first, run_folder(tmp_path / "b"))]
    for history in histories:
        history["args"].pop("save_dir")
    assert histories[0] == histories[1]


def test_config_values_replace_defaults_and_flags_override_them(tiny_data, tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("frequency: 1000hz\nlearning-rate: 0.01\nghm_bins: 7\nepochs: 4\n")
    cfg = train.parse_args(["--config", str(path), "--data-root", str(tiny_data), "--epochs", "2"])
    assert (cfg.data.frequency, cfg.optim.learning_rate, cfg.loss.bins, cfg.optim.epochs) == ("1000hz", 0.01, 7, 2)
    assert "config" not in cfg.flat()


@pytest.mark.parametrize("text, message", [("epochz: 1\n", "unknown key 'epochz'"),
                                           ("epochs: ten\n", "key 'epochs' holds 'ten'"),
                                           ("loss_type: focal\n", "key 'loss_type' holds 'focal'"),
                                           ("margin: true\n", "key 'margin' holds True"),
                                           ("[1, 2\n", "cannot be read as YAML"),
                                           ("- 1\n- 2\n", "not a mapping")])
def test_a_bad_config_file_is_one_error_naming_the_key(tiny_data, tmp_path, capsys, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--config", str(path), "--data-root", str(tiny_data), "--frequency", "500hz"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and f"--config {path}: {message}" in err and "Traceback" not in err


def test_figures_drawn_in_the_background_are_all_written_and_failures_surface(tmp_path):
    from utils.errors import InputError
    from utils.history import new_history, plot_history, record_epoch
    from utils.plotting import BackgroundFigures

    history = new_history({})
    for epoch in (1, 2):
        record_epoch(history, epoch, *({"loss_main": 1.0 / epoch, "loss_standard_log": 1.0, "accuracy": 0.5},) * 2)
    figures = BackgroundFigures(background=True)
    for k in range(3):
        figures.submit(plot_history, history, tmp_path / f"h{k}.png", "title")
    (tmp_path / "a_file").write_text("x")
    figures.submit(plot_history, history, tmp_path / "a_file" / "h.png", "title")
    with pytest.raises(InputError, match="cannot be written"):
        figures.close()
    assert all((tmp_path / f"h{k}.png").stat().st_size > 0 for k in range(3))
