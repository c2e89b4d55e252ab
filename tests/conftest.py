"""Shared fixtures: tiny WAV datasets made by the project's own generator, and tiny training flags."""

import os
import signal
import statistics
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers (pytest.ini: one per core) share the cores: one thread each, for the processes they start too.
    # With PyTorch's default of all cores per worker the suite took 278 s on 2 cores, with one 193 s.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

from audio_data.synthetic import generate  # noqa: E402

TINY_RATE = 24000


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Six classes, plastic, all three frequencies, three 0.25 s recordings each."""
    return generate(tmp_path_factory.mktemp("tiny_data"), sample_rate=TINY_RATE, duration=0.25, seqs=3,
                    materials=["plastic"])


def tiny_train_args(data_root: Path, save_dir: Path, *extra: str) -> list[str]:
    """Flags of a tiny run of the small CNN: the default model starts from the baseline, which orders the tiny
    recordings beyond the margin, so that its loss and gradients are zero (tests/test_baseline_residual.py)."""
    return ["--model", "simple_cnn", "--data-root", str(data_root), "--save-dir", str(save_dir), "--seqs", "all",
            "--n-fft", "128", "--hop-length", "64", "--epochs", "2", "--batch-size", "8",
            "--checkpoint-interval", "1", "--margin", "1.0", "--no-progress", *extra]


def one_epoch_run(data_root: Path, save_dir: Path, frequency: str) -> Path:
    """Train one epoch on the tiny data through train.main; the run's checkpoint folder."""
    import train

    assert train.main(tiny_train_args(data_root, save_dir, "--frequency", frequency, "--epochs", "1")) == 0
    (run,) = (save_dir / "model_checkpoints").iterdir()
    return run


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, rate, subtype=subtype, format="WAV")
    return path


def flip_bit(path: Path, position: int, bit: int) -> None:
    """Flip one bit of a file in place, as a failing disk or a bad copy would."""
    data = bytearray(path.read_bytes())
    data[position] ^= 1 << bit
    path.write_bytes(bytes(data))


@contextmanager
def hang_guard(what: str, seconds: int = 60) -> Iterator[None]:
    """Fail instead of stalling the suite if one small operation (decoding one file, say) hangs.

    Only ever around one such operation: a limit on a whole training run would make the test depend on the
    machine's speed."""
    def hung(*_):
        raise TimeoutError(f"{what} did not finish in {seconds} s")
    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def signal_after_first_epoch(argv: list[str], signum: int = signal.SIGTERM,
                             env: dict | None = None) -> tuple[int, str, str]:
    """Run train.py in a process of its own (with `env` added to the environment), send `signum` once its first
    epoch line is printed; (exit code, the rest of stdout, stderr)."""
    import subprocess

    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    for line in process.stdout:
        if line.startswith("epoch 1/"):
            break
    process.send_signal(signum)
    with hang_guard("stopping after one step"):
        out, err = process.communicate()
    return process.returncode, out, err


def assert_baseline_over_folds(chosen: str, rows: list[dict], over: dict) -> None:
    """`chosen` is the baseline with the highest mean accuracy over the folds `rows`, each row's margin is over
    it, and the per-fold best baseline is at least as high on every fold."""
    means = {name: statistics.mean(row["baselines_pairwise_accuracy"][name] for row in rows)
             for name in rows[0]["baselines_pairwise_accuracy"]}
    assert means[chosen] == max(means.values()) and len(means) > 1
    for row in rows:
        assert row["best_baseline_pairwise_accuracy"] == max(row["baselines_pairwise_accuracy"].values())
        assert row["best_baseline_over_folds_pairwise_accuracy"] == row["baselines_pairwise_accuracy"][chosen]
        assert row["vs_best_baseline_over_folds"] == pytest.approx(row["pairwise_accuracy"]
                                                                   - row["baselines_pairwise_accuracy"][chosen])
    assert over["vs_best_baseline_over_folds"]["mean"] == pytest.approx(
        statistics.mean(row["pairwise_accuracy"] for row in rows) - means[chosen])
    assert over["vs_best_baseline_over_folds"]["mean"] >= over["vs_best_baseline"]["mean"] - 1e-12
