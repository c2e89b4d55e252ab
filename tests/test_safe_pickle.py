"""Planted pickles: every reader of the project's pickles refuses a file that names a callable, and runs nothing."""

import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_train_args

import train
from utils.errors import InputError
from analysis.ghm_runs import main as analyze_main
from utils.ghm_utils import load_ghm_stats
from utils.safe_pickle import load_pickle, loads


class Planted:
    """Unpickling this runs `os.system("touch <marker>")` under plain pickle."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class Getattr:
    def __reduce__(self):
        return getattr, (Path, "cwd")


def planted_pickles(marker: Path) -> dict[str, bytes]:
    return {"os.system": pickle.dumps({"epoch": 1, "payload": Planted(marker)}),
            "getattr": pickle.dumps(Getattr()),
            "eval": b"cbuiltins\neval\n(V__import__('os').system('touch " + str(marker).encode() + b"')\ntR.",
            "object array": pickle.dumps(np.array([1, "a"], dtype=object)),
            "codec": b"c_codecs\nencode\n(Vx\nVzlib\ntR."}


@pytest.mark.parametrize("kind", ["os.system", "getattr", "eval", "object array", "codec"])
def test_the_restricted_loader_refuses_callables_and_runs_nothing(tmp_path, kind):
    marker = tmp_path / "executed"
    path = tmp_path / "planted.pkl"
    path.write_bytes(planted_pickles(marker)[kind])
    with pytest.raises(InputError, match=f"{path}: not a readable pickle of this project"):
        load_pickle(path)
    assert not marker.exists()


def test_the_restricted_loader_takes_every_plain_value_and_old_protocols():
    value = {"a": [1, 2.5, None, True, "x", b"y", 1 + 2j], "s": {1, 2}, "f": frozenset([3]), "t": (np.float64(2.0),),
             "arrays": [np.arange(6).reshape(2, 3).T, np.array(["a", "bc"]), np.array([True]), np.zeros(0)],
             "dtype": np.dtype("int16")}
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        loaded = loads(pickle.dumps(value, protocol=protocol))
        assert loaded.keys() == value.keys() and loaded["s"] == value["s"] and loaded["dtype"] == value["dtype"]
        assert all(np.array_equal(a, b) for a, b in zip(loaded["arrays"], value["arrays"]))


@pytest.fixture(scope="module")
def ghm_run(tiny_data, tmp_path_factory) -> Path:
    save_dir = tmp_path_factory.mktemp("planted")
    argv = tiny_train_args(tiny_data, save_dir, "--frequency", "500hz", "--epochs", "1", "--verify-consistency")
    assert train.main(argv) == 0
    return save_dir


def one_error(capsys) -> str:
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, errors
    return errors[0]


@pytest.mark.slow
def test_analyze_and_load_ghm_stats_refuse_a_planted_statistics_file(ghm_run, tmp_path, capsys):
    marker = tmp_path / "executed"
    folder = tmp_path / "stats"
    shutil.copytree(next((ghm_run / "stats").iterdir()), folder)
    (folder / "epoch9_batch1_x_ghm_stats.pkl").write_bytes(planted_pickles(marker)["os.system"])
    with pytest.raises(InputError, match="epoch9_batch1_x_ghm_stats.pkl"):
        load_ghm_stats(folder)
    assert analyze_main(["analyze", str(folder), "--out", str(tmp_path / "out")]) == 1
    assert "epoch9_batch1_x_ghm_stats.pkl" in one_error(capsys)
    assert not marker.exists()


@pytest.mark.slow
def test_analyze_compare_refuses_a_planted_history(ghm_run, tmp_path, capsys):
    marker = tmp_path / "executed"
    save_dir = tmp_path / "save"
    shutil.copytree(ghm_run, save_dir)
    (run,) = (save_dir / "model_checkpoints").iterdir()
    (history,) = run.glob("training_history_*.pkl")
    history.write_bytes(planted_pickles(marker)["eval"])
    assert analyze_main(["analyze", "--compare", run.name, run.name, "--save-dir", str(save_dir)]) == 1
    assert history.name in one_error(capsys)
    assert not marker.exists()


@pytest.mark.slow
def test_verify_consistency_refuses_a_planted_record(ghm_run, tiny_data, tmp_path, capsys):
    marker = tmp_path / "executed"
    save_dir = tmp_path / "save"
    shutil.copytree(ghm_run / "batch_consistency", save_dir / "batch_consistency")
    (folder,) = (save_dir / "batch_consistency").iterdir()
    (folder / "train_batches_19990101_000000_seed42.pkl").write_bytes(planted_pickles(marker)["os.system"])
    argv = tiny_train_args(tiny_data, save_dir, "--frequency", "500hz", "--epochs", "1", "--verify-consistency")
    assert train.main(argv) == 1
    assert "train_batches_19990101_000000_seed42.pkl" in one_error(capsys)
    assert not marker.exists()


@pytest.mark.slow
def test_a_pickle_of_other_plain_content_is_one_clear_error(ghm_run, tmp_path):
    path = tmp_path / "epoch1_batch1_x_ghm_stats.pkl"
    for content in ([1, 2], {"epoch": 1}, {**load_ghm_stats(next((ghm_run / "stats").iterdir()))[0], "g": "x"}):
        path.write_bytes(pickle.dumps(content))
        with pytest.raises(InputError, match="not a GHM statistics file of this project"):
            load_ghm_stats(path)
