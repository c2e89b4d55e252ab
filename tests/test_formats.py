"""Format versions: every reader takes files of each earlier version and names a newer one in one error."""

import json
import pickle

import pytest
import torch
from conftest import one_epoch_run

import evaluate
from analysis.ghm_runs import run_history
from utils.ghm_stats import load_ghm_stats
from utils.run_summary import SUMMARY_FORMAT
from utils.summarize import read_rows
from utils.errors import InputError

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out


@pytest.fixture(scope="module")
def run(tiny_data, tmp_path_factory):
    save_dir = tmp_path_factory.mktemp("formats")
    return save_dir, one_epoch_run(tiny_data, save_dir, "500hz")


def versioned(value: dict, version: int | None) -> dict:
    """`value` as written by format `version`; None: version 1, which had no format_version entry."""
    value = {key: item for key, item in value.items() if key != "format_version"}
    return value if version is None else {**value, "format_version": version}


def test_every_file_carries_the_format_version(run):
    save_dir, folder = run
    assert torch.load(folder / "model_epoch_1.pt", weights_only=True)["format_version"] == 2
    assert json.loads((folder / "summary.json").read_text())["format_version"] == SUMMARY_FORMAT == 3
    assert pickle.loads(next(folder.glob("training_history_*.pkl")).read_bytes())["format_version"] == 2
    assert all(s["format_version"] == 2 for s in load_ghm_stats(save_dir / "stats" / folder.name))


@pytest.mark.parametrize("version", [None, 99])
def test_checkpoints(run, tmp_path, capsys, version):
    path = tmp_path / "model_epoch_1.pt"
    torch.save(versioned(torch.load(run[1] / "model_epoch_1.pt", weights_only=True), version), path)
    code = evaluate.main(["--checkpoint", str(path), "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err
    assert (code, err) == (0, "") if version is None else code == 1 and "format version 99" in err and str(path) in err


@pytest.mark.parametrize("version", [None, 99])
def test_statistics_and_histories(run, tmp_path, version):
    save_dir, folder = run
    stats = next((save_dir / "stats" / folder.name).iterdir())
    history = next(folder.glob("training_history_*.pkl"))
    for path, read in ((stats, lambda: load_ghm_stats(stats)),
                       (history, lambda: run_history(save_dir / "stats" / folder.name))):
        original = path.read_bytes()
        try:
            path.write_bytes(pickle.dumps(versioned(pickle.loads(original), version)))
            if version is None:
                read()
            else:
                with pytest.raises(InputError, match=f"{path.name}.*format version 99"):
                    read()
        finally:
            path.write_bytes(original)


@pytest.mark.parametrize("version", [None, 99])
def test_summaries(run, tmp_path, capsys, version):
    save_dir, folder = run
    summary = folder / "summary.json"
    original = summary.read_text()
    try:
        summary.write_text(json.dumps(versioned(json.loads(original), version)))
        rows = read_rows(save_dir)
        err = capsys.readouterr().err
        assert len(rows) == 1 if version is None else not rows and "format version 99" in err and str(summary) in err
    finally:
        summary.write_text(original)
