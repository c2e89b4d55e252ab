"""Damaged files from disk: random truncations, bit flips and zeroed runs of real files, for every reader of a
file that a user or another user can put in place. Each case is an error line or a skip: never a traceback, never
a hang (a guard around each case)."""

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import hang_guard, tiny_train_args

import evaluate
import train
from audio_data.audio import read_audio, audio_info
from audio_data.pairs import PairBatch
from audio_data.spectrogram_cache import cache_entry, compute_spectrogram, entry_problem
from utils import summarize
from utils.debugging_utils import verify_batch_consistency
from utils.errors import InputError
from analysis.ghm_runs import epoch_summary, hard_recordings, run_history
from utils.ghm_utils import ghm_stats_table, load_ghm_stats

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out

CASES = 60  # per kind of file
N_FFT, HOP = 128, 64


def damaged(data: bytes, case: int) -> bytes:
    """Case k of a file's damage: a truncation, 1-8 flipped bits, or a zeroed run; half of the positions fall in
    the first 4 KiB or the last 1 KiB, where headers, pickles and zip directories sit."""
    rng = random.Random(case)

    def position() -> int:
        if rng.random() < 0.5:
            return rng.randrange(len(data))
        edge = rng.choice([range(min(4096, len(data))), range(max(0, len(data) - 1024), len(data))])
        return rng.choice(edge)
    if case % 3 == 0:
        return data[:position()]
    out = bytearray(data)
    if case % 3 == 1:
        for _ in range(rng.randint(1, 8)):
            out[position()] ^= 1 << rng.randrange(8)
    else:
        start = position()
        out[start:start + rng.randint(1, 256)] = bytes(len(out[start:start + 256]))[:rng.randint(1, 256)]
    return bytes(out)


@pytest.fixture(scope="module")
def real_run(tiny_data, tmp_path_factory) -> Path:
    """A GHM run with every kind of file: checkpoint, history, statistics, consistency record, summary, cache."""
    save_dir = tmp_path_factory.mktemp("fuzz_run")
    argv = tiny_train_args(tiny_data, save_dir, "--frequency", "500hz", "--epochs", "1", "--verify-consistency",
                           "--cache-dir", str(save_dir / "cache"))
    assert train.main(argv) == 0
    return save_dir


def each_case(path: Path, what: str):
    """Write each damaged version of `path` in place and yield its case number; the original is put back."""
    original = path.read_bytes()
    try:
        for case in range(CASES):
            path.write_bytes(damaged(original, case))
            with hang_guard(f"{what}, case {case}"):
                yield case
    finally:
        path.write_bytes(original)


def only_input_errors(read, *args) -> None:
    try:
        read(*args)
    except InputError:
        pass


def test_wav_files(tiny_data, tmp_path):
    path = tmp_path / "plastic_deg000_500hz_00.wav"
    shutil.copy(next(tiny_data.rglob("*_500hz_*.wav")), path)
    for _ in each_case(path, "a damaged WAV"):
        only_input_errors(audio_info, path)
        only_input_errors(read_audio, path)


def test_cache_entries_and_their_index(real_run, tiny_data, recwarn):
    wav = sorted(tiny_data.rglob("*_500hz_*.wav"))[0]
    length = audio_info(wav)[0]
    expected = compute_spectrogram(wav, N_FFT, HOP, length, False).numpy()
    entry = cache_entry(wav, N_FFT, HOP, length, False, real_run / "cache")
    for target in (entry, entry.with_suffix(".json")):
        for _ in each_case(target, f"a damaged {target.suffix} cache file"):
            assert cache_entry(wav, N_FFT, HOP, length, False, real_run / "cache") == entry
            assert entry_problem(entry, expected.shape) is None and np.array_equal(np.load(entry), expected)


def one_error_line(err: str) -> bool:
    lines = err.strip().splitlines()
    return "Traceback" not in err and sum(line.startswith("error:") or ": error: " in line for line in lines) == 1


def test_checkpoints_for_resume_and_evaluate(real_run, tmp_path, capsys):
    (run,) = (real_run / "model_checkpoints").iterdir()
    copy = tmp_path / "model_checkpoints" / run.name
    shutil.copytree(run, copy)
    checkpoint = copy / "model_epoch_1.pt"
    for case in each_case(checkpoint, "a damaged checkpoint"):
        try:
            code = (evaluate.main(["--checkpoint", str(checkpoint), "--out", str(tmp_path / "eval")]) if case % 2
                    else train.main(["--resume", str(checkpoint), "--no-progress"]))
        except SystemExit as exc:  # the parser's error line, exit 2
            code = exc.code
        err = capsys.readouterr().err
        assert code == 0 or one_error_line(err), err


def test_statistics_pickles(real_run, tmp_path):
    folder = tmp_path / "stats"
    shutil.copytree(next((real_run / "stats").iterdir()), folder)
    for _ in each_case(sorted(folder.iterdir())[0], "a damaged statistics file"):
        try:
            stats = load_ghm_stats(folder)
        except InputError:
            continue
        ghm_stats_table(stats), epoch_summary(stats, 2), hard_recordings(stats, 2)


def test_history_pickles(real_run, tmp_path):
    shutil.copytree(real_run / "model_checkpoints", tmp_path / "model_checkpoints")
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    (tmp_path / "stats" / run.name).mkdir(parents=True)
    for _ in each_case(next(run.glob("training_history_*.pkl")), "a damaged history"):
        only_input_errors(run_history, tmp_path / "stats" / run.name)


def test_batch_consistency_records(real_run, tmp_path):
    (folder,) = (real_run / "batch_consistency").iterdir()
    (record,) = folder.iterdir()
    copy = tmp_path / record.name
    shutil.copy(record, copy)
    x = torch.cat([torch.zeros(2, 1, 3, 3), torch.ones(2, 1, 3, 3)])  # a distinct batch: recordings 0-3
    batch = PairBatch(x, torch.ones(2), torch.zeros(2, dtype=torch.int64), torch.ones(2, dtype=torch.int64),
                      torch.arange(2), torch.arange(2) + 2)
    seed = int(record.stem.rsplit("seed", 1)[1])
    for case in each_case(copy, "a damaged consistency record"):
        only_input_errors(verify_batch_consistency, [batch], tmp_path, f"case{case}", seed, {"seed": seed})
        for new in tmp_path.glob("train_batches_case*"):
            new.unlink()


def test_summaries(real_run, tmp_path, capsys):
    shutil.copytree(real_run / "model_checkpoints", tmp_path / "model_checkpoints")
    (summary,) = tmp_path.glob("model_checkpoints/*/summary.json")
    for _ in each_case(summary, "a damaged summary.json"):
        rows = summarize.read_rows(tmp_path)
        err = capsys.readouterr().err
        assert len(rows) == 1 or (not rows and err.startswith("warning:") and "skipped" in err), err
        assert json.dumps(rows, default=str)


def parses_or_one_parser_error(argv: list[str], capsys) -> None:
    """train.py's parser on `argv`: a configuration, or exit 2 with its usage and one error line (no traceback)."""
    try:
        train.parse_args(argv)
    except SystemExit as exc:
        err = capsys.readouterr().err
        assert exc.code == 2 and ": error: " in err.splitlines()[-1], err
        assert "Traceback" not in err and max(len(line) for line in err.splitlines()) < 1000
    capsys.readouterr()


def test_config_files(real_run, tiny_data, tmp_path, capsys):
    (config_yaml,) = real_run.glob("model_checkpoints/*/config.yaml")
    copy = tmp_path / "config.yaml"
    shutil.copy(config_yaml, copy)
    for _ in each_case(copy, "a damaged config.yaml"):
        parses_or_one_parser_error(["--config", str(copy), "--data-root", str(tiny_data)], capsys)


def test_exclusion_lists(real_run, tiny_data, tmp_path, capsys):
    listing = tmp_path / "exclude.txt"
    listing.write_text("".join(f"{p}\n# a comment\n{p.name}  # by name\n" for p in sorted(tiny_data.rglob("*.wav"))))
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--exclude-recordings", str(listing))
    for _ in each_case(listing, "a damaged --exclude-recordings list"):
        parses_or_one_parser_error(argv, capsys)
