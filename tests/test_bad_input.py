"""The second probe's cases (issue 32), item by item: outputs that would replace inputs, two processes on one run,
config.yaml and --resume, one error line where a traceback was, special files, the sweep's settings, control
characters, long --exclude-recordings lists, and the smaller ones."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml
from conftest import ROOT, hang_guard, one_epoch_run, tiny_train_args

import predict
import train
from analysis import influence
from audio_data.loading import entry_matches, split_recordings, without_excluded, Split
from utils import run_lock, summarize
from utils.errors import InputError
from utils.run_lock import RunLock


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    return one_epoch_run(tiny_data, tmp_path_factory.mktemp("bad_input_run"), "1000hz")


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def wav_of(tiny_data):
    return next(tiny_data.rglob("*1000hz_00.wav"))


# 1. outputs never replace an input, nor a file the program did not write

def test_predict_never_replaces_its_inputs_or_a_foreign_file(run, tiny_data, tmp_path, capsys):
    checkpoint, wav = run / "model_best.pt", wav_of(tiny_data)
    before = checkpoint.read_bytes(), wav.read_bytes()
    for out in (checkpoint, wav):
        assert predict.main(["--checkpoint", str(checkpoint), str(wav), "--out", str(out)]) == 1
        assert "is an input of this command" in one_error(capsys)
    assert (checkpoint.read_bytes(), wav.read_bytes()) == before
    foreign = tmp_path / "notes.csv"
    foreign.write_text("my,own,table\n")
    assert predict.main(["--checkpoint", str(checkpoint), str(wav), "--out", str(foreign)]) == 1
    assert "--overwrite" in one_error(capsys) and foreign.read_text() == "my,own,table\n"
    assert predict.main(["--checkpoint", str(checkpoint), str(wav), "--out", str(foreign), "--overwrite"]) == 0
    assert predict.main(["--checkpoint", str(checkpoint), str(wav), "--out", str(foreign)]) == 0  # ours now


def test_influence_writes_its_own_files_even_into_the_run_folder(run, capsys):
    summary = (run / "summary.json").read_bytes()
    assert influence.main([str(run), "--out", str(run), "--top", "1"]) == 0
    assert (run / "summary.json").read_bytes() == summary and (run / "influence.json").is_file()
    assert summarize.read_rows(run.parent.parent)[0]["run"] == run.name


# 2. one process per run folder

def write_lock(folder, pid, host, age=0.0, slurm_job=None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / run_lock.LOCK_NAME).write_text(json.dumps({"pid": pid, "host": host, "slurm_job": slurm_job,
                                                        "token": "x", "heartbeat": time.time() - age}))


def test_a_run_held_by_a_live_process_is_refused_with_its_holder(tiny_data, tmp_path, capsys):
    folder = tmp_path / "model_checkpoints" / "same"
    write_lock(folder, os.getpid(), socket.gethostname())
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--run-name", "same")
    assert train.main(argv) == 1
    err = one_error(capsys)
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in err
    assert sorted(p.name for p in folder.iterdir()) == [run_lock.LOCK_NAME]  # nothing written beside it


def test_resuming_a_running_run_is_refused(run, tmp_path, capsys):
    copy = tmp_path / "model_checkpoints" / run.name
    shutil.copytree(run, copy)
    write_lock(copy, os.getpid(), socket.gethostname())
    assert train.main(["--resume", str(copy), "--epochs", "2", "--no-progress"]) == 1
    assert "the run is in use by pid" in one_error(capsys)


def test_a_dead_or_silent_holder_is_taken_over_and_a_lock_is_released(tmp_path, recwarn, monkeypatch):
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    cases = {"dead here": (int(gone.stdout), socket.gethostname(), 0.0, None),
             "silent elsewhere": (1, "another-host", run_lock.STALE_S + 60, None),
             "this job before its requeue": (1, "another-host", 5.0, "4242")}
    for name, (pid, host, age, job) in cases.items():
        write_lock(tmp_path / name, pid, host, age, job)
        with RunLock(tmp_path / name):
            assert json.loads((tmp_path / name / run_lock.LOCK_NAME).read_text())["pid"] == os.getpid()
        assert not (tmp_path / name / run_lock.LOCK_NAME).exists()
    assert sum("taking over the lock" in str(w.message) for w in recwarn) == 3
    write_lock(tmp_path / "alive elsewhere", 1, "another-host", 5.0)
    with pytest.raises(InputError, match="in use by pid 1 on host another-host"):
        RunLock(tmp_path / "alive elsewhere").acquire()


# 3. config.yaml starts the same run anew, never resumes

def test_a_resumed_runs_config_yaml_starts_the_run_anew(tiny_data, tmp_path, capsys):
    first = one_epoch_run(tiny_data, tmp_path / "a", "500hz")
    assert train.main(["--resume", str(first), "--epochs", "2", "--no-progress"]) == 0
    text = (first / "config.yaml").read_text()
    assert "resume" not in yaml.safe_load(text)
    capsys.readouterr()
    assert train.main(["--config", str(first / "config.yaml"), "--save-dir", str(tmp_path / "b")]) == 0
    (second,) = (tmp_path / "b" / "model_checkpoints").iterdir()
    assert "resuming" not in capsys.readouterr().out and len(json.loads(
        (second / "summary.json").read_text())["outputs"]["checkpoints"]) == 2
    old = tmp_path / "old.yaml"
    old.write_text(text + f"resume: {first}/model_epoch_1.pt\n")
    with pytest.warns(UserWarning, match="resume entry is left out"):
        assert train.parse_args(["--config", str(old)]).run.resume is None


# 4. one error line where a traceback was

def test_unwritable_output_places_are_one_error_line(run, tiny_data, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    wav = str(wav_of(tiny_data))
    assert predict.main(["--checkpoint", str(run), wav, "--out", str(a_file / "p.csv")]) == 1
    one_error(capsys)
    assert predict.main(["--checkpoint", str(run), wav, "--out", str(tmp_path)]) == 1
    assert "not a regular file" in one_error(capsys)
    assert influence.main([str(run), "--out", str(a_file)]) == 1
    assert "not a folder" in one_error(capsys)
    assert train.main(tiny_train_args(tiny_data, a_file, "--frequency", "500hz", "--epochs", "1")) == 1
    assert "cannot be" in one_error(capsys)
    named = tmp_path / "runs" / "model_checkpoints" / "tb"
    named.mkdir(parents=True)
    (named / "tensorboard").write_text("a file where the event files go")
    argv = tiny_train_args(tiny_data, tmp_path / "runs", "--frequency", "500hz", "--epochs", "1", "--run-name", "tb",
                           "--tensorboard")
    assert train.main(argv) == 1
    assert "tensorboard" in one_error(capsys)


def test_long_names_and_bad_counts_are_refused_before_any_output(run, tiny_data, tmp_path, capsys):
    for flag in ("--run-name", "--material"):
        with pytest.raises(SystemExit):
            train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", flag, "x" * 300))
        assert "100 characters at most" in capsys.readouterr().err
    for argv in (["--top", "0"], ["--top", "-5"], ["--margin", "inf"]):
        with pytest.raises(SystemExit):
            influence.main([str(run), "--out", str(tmp_path / "inf"), *argv])
        assert "must be" in capsys.readouterr().err
    assert not (tmp_path / "inf").exists()


def test_ctrl_c_in_predict_is_one_line(run, tiny_data, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(predict, "evaluate_model", interrupted)
    assert predict.main(["--checkpoint", str(run), str(wav_of(tiny_data)), "--out", "unused.csv"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_stored_settings_outside_the_flags_rules_are_one_error_line(run, tmp_path, capsys):
    checkpoint = torch.load(run / "model_best.pt", weights_only=True)
    checkpoint["args"]["n_fft"] = 0
    torch.save(checkpoint, tmp_path / "model_epoch_1.pt")
    assert predict.main(["--checkpoint", str(tmp_path / "model_epoch_1.pt"), str(run), "--out", "x.csv"]) == 1
    assert "--n-fft = 0, which must be >= 2" in one_error(capsys)


def test_a_deeply_nested_summary_is_skipped(run, tmp_path, capsys):
    save_dir = tmp_path / "sweep"
    shutil.copytree(run, save_dir / "model_checkpoints" / run.name)
    (save_dir / "model_checkpoints" / "deep").mkdir()
    (save_dir / "model_checkpoints" / "deep" / "summary.json").write_text("[" * 200_000 + "]" * 200_000)
    assert [row["run"] for row in summarize.read_rows(save_dir)] == [run.name]
    assert "nested too deeply" in capsys.readouterr().err


# 5. special files: no hang, no unbounded read

def test_special_files_are_refused_without_hanging(run, tiny_data, tmp_path, capsys):
    save_dir = tmp_path / "sweep"
    for name, make in (("fifo", lambda p: os.mkfifo(p)), ("zero", lambda p: os.symlink("/dev/zero", p))):
        (save_dir / "model_checkpoints" / name).mkdir(parents=True)
        make(save_dir / "model_checkpoints" / name / "summary.json")
    with hang_guard("reading special summary.json files"):
        assert summarize.read_rows(save_dir) == []
    assert capsys.readouterr().err.count("not a regular file") == 2
    with hang_guard("--exclude-recordings /dev/zero"), pytest.raises(SystemExit):
        train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz",
                                         "--exclude-recordings", "/dev/zero"))
    assert "/dev/zero: not a regular file" in capsys.readouterr().err
    assert predict.main(["--checkpoint", str(run), "/dev/zero"]) == 1
    assert "/dev/zero: not a regular file or folder" in one_error(capsys)


def test_yaml_aliases_and_duplicate_keys_are_refused(tiny_data, tmp_path, capsys):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]\n"
        for k in range(8))
    for text, message in ((bomb, "aliases (*name) are not allowed"), ("epochs: 1\nepochs: 2\n", "appears twice")):
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(SystemExit):
            train.parse_args(["--config", str(path), "--data-root", str(tiny_data), "--frequency", "500hz"])
        err = capsys.readouterr().err
        assert message in err and max(len(line) for line in err.splitlines()) < 500


# 6. the sweep's environment settings are data

@pytest.mark.parametrize("jobs", ["args[$(touch {marker})]", "abc", "0"])
def test_the_sweep_refuses_a_jobs_that_is_not_a_count(tmp_path, jobs):
    marker = tmp_path / "ran"
    out = subprocess.run(["bash", str(ROOT / "scripts" / "sweep.sh"), "--save-dir", str(tmp_path / "s")],
                         env={**os.environ, "JOBS": jobs.format(marker=marker)}, capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.startswith("error: JOBS=") and out.stderr.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "s").exists()


# 7. control characters from summary.json are printed escaped

def test_the_sweep_table_prints_control_characters_escaped(run, tmp_path, capsys):
    save_dir = tmp_path / "sweep"
    shutil.copytree(run, save_dir / "model_checkpoints" / run.name)
    path = save_dir / "model_checkpoints" / run.name / "summary.json"
    summary = json.loads(path.read_text())
    path.write_text(json.dumps({**summary, "status": "failed\x1b]0;title\x07", "error": "boom\x1b[2J"}))
    assert summarize.main([str(save_dir)]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\\x1b[2J" in out and "failed\\x1b]0;title\\x07" in out


# 8. --exclude-recordings lists: matched through tables, warnings that count

def test_exclusion_entries_match_by_name_or_path_and_warnings_stay_short(tmp_path, recwarn):
    paths = [str(tmp_path / "deg000" / "plastic" / f"take{i}.wav") for i in range(20)]
    entries = ["take3.wav", str(tmp_path / "deg000" / "plastic" / "take5.wav"), "take3.wav"]
    entries += [f"missing{i}.wav" for i in range(10_000)]
    assert {e: f for e, f in entry_matches(paths, entries).items() if f} == {"take3.wav": [3], entries[1]: [5]}
    split = without_excluded(Split(list(range(10)), list(range(10, 20)), []), paths,
                             entries + [f"take{i}.wav" for i in range(10, 20)])
    assert split.train == [i for i in range(10) if i not in (3, 5)]
    messages = [str(w.message) for w in recwarn]
    assert "10000 entries name no recording" in messages[0] and "10 are validation or test" in messages[1]
    assert all(len(m) < 2000 for m in messages)


def test_a_long_exclusion_list_is_stored_as_its_hash_and_the_entries_that_matched(tiny_data, tmp_path, capsys):
    wavs = sorted(tiny_data.rglob("*_500hz_*.wav"))
    listing = tmp_path / "exclude.txt"
    listing.write_text("".join(f"nothing{i}.wav\n" for i in range(10_000)) + f"{wavs[0].name}\n{wavs[1]}\n")
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--run-name", "ex", "--exclude-recordings",
                           str(listing))
    assert train.main([*argv, "--epochs", "1"]) == 0
    folder = tmp_path / "model_checkpoints" / "ex"
    stored = torch.load(folder / "model_epoch_1.pt", weights_only=True)["args"]["exclude_recordings"]
    assert stored["entries"] == [wavs[0].name, str(wavs[1])] and len(stored["sha256"]) == 64
    assert (folder / "config.yaml").stat().st_size < 4000
    assert train.main([*argv, "--epochs", "2"]) == 0  # the same command with the same list resumes
    assert "resuming run ex after epoch 1" in capsys.readouterr().out
    listing.write_text(f"{wavs[0].name}\n")
    assert train.main([*argv, "--epochs", "3"]) == 1  # another list is another run
    assert "--exclude-recordings" in capsys.readouterr().err


# 9. the smaller ones

def test_an_infinite_ghm_alpha_is_refused_before_the_run_folder_exists(tiny_data, tmp_path, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--ghm-alpha", "inf"))
    assert "--ghm-alpha must be >= 0 and finite" in capsys.readouterr().err and not tmp_path.joinpath(
        "model_checkpoints").exists()


def test_a_class_without_training_recordings_is_an_error(tiny_data):
    from config import DataConfig
    from audio_data.loading import load_recordings

    recordings = load_recordings(DataConfig(frequency="500hz", root=str(tiny_data), seqs="all"))
    with pytest.raises(InputError, match="class deg072 has no training recording left"):
        split_recordings(recordings, 42, 0.34)
    assert split_recordings(recordings, 48, 0.34).test
