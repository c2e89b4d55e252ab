"""GHM statistics for both losses, reading them back, and the run-level analysis."""

import csv
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, tiny_train_args

import train
from analysis.ghm_runs import main as analyze_main
from utils.ghm_utils import TABLE_COLUMNS, ghm_stats_table, load_ghm_stats, stats_batch_rule

pytestmark = pytest.mark.slow  # end-to-end runs; `-m "not slow"` leaves them out


def only_run(save_dir: Path, kind: str) -> Path:
    (folder,) = (save_dir / kind).iterdir()
    return folder


def history_of(save_dir: Path) -> dict:
    with open(next(only_run(save_dir, "model_checkpoints").glob("training_history_*.pkl")), "rb") as f:
        history = pickle.load(f)
    history.pop("args")
    return history


@pytest.fixture(scope="module")
def runs(tiny_data, tmp_path_factory) -> dict[str, Path]:
    """A GHM run recording every batch, and standard runs with and without --ghm-stats."""
    save_dirs = {}
    for name, extra in (("ghm", ("--ghm-stats-batches", "all", "--ghm-momentum", "0.75")),
                        ("standard_stats", ("--loss-type", "standard", "--ghm-stats", "--ghm-momentum", "0.5")),
                        ("standard", ("--loss-type", "standard"))):
        save_dirs[name] = tmp_path_factory.mktemp(name)
        assert train.main(tiny_train_args(tiny_data, save_dirs[name], "--frequency", "1000hz", *extra)) == 0
    return save_dirs


def test_every_batch_is_recorded_and_files_are_self_describing(runs):
    stats = load_ghm_stats(only_run(runs["ghm"], "stats"))
    batches = max(s["batch"] for s in stats)
    assert [(s["epoch"], s["batch"]) for s in stats] == [(e, b) for e in (1, 2) for b in range(1, batches + 1)]
    assert [s["global_step"] for s in stats] == list(range(1, 2 * batches + 1))
    s = stats[0]
    assert (s["loss_type"], s["weights_applied"], s["momentum"], s["temperature"]) == ("ghm", True, 0.75, 0.25)
    assert s["run_name"] == only_run(runs["ghm"], "stats").name and s["max_weight"] == 5.0
    assert len(s["pair_paths"]) == len(s["pair_labels"]) == len(s["g"]) == 8
    for (a, b), (label_a, label_b) in zip(s["pair_paths"], s["pair_labels"]):
        assert f"_deg{label_a * 36:03d}_" in a and f"_deg{label_b * 36:03d}_" in b
    plots = only_run(runs["ghm"], "plots")
    assert len(list(plots.glob("grad_dist_*.png"))) == 4  # first and last batch of each epoch only


def test_a_standard_run_records_ghm_statistics_without_changing_training(runs):
    assert history_of(runs["standard_stats"]) == history_of(runs["standard"])
    assert not (runs["standard"] / "stats").exists()
    stats = load_ghm_stats(only_run(runs["standard_stats"], "stats"))
    assert len(stats) == 4 and all(s["loss_type"] == "standard" and not s["weights_applied"] for s in stats)
    assert stats[0]["momentum"] == 0.5 and np.any(stats[-1]["density"] != stats[-1]["bin_counts"])
    assert abs(stats[-1]["weight"].mean() - 1.0) < 1e-6


def test_load_sorts_by_epoch_and_batch_and_reads_single_files(runs, tmp_path):
    folder = only_run(runs["ghm"], "stats")
    files = sorted(folder.iterdir())  # by name: batch10 sorts before batch2
    assert [s["batch"] for s in load_ghm_stats(folder)[:3]] == [1, 2, 3]
    (single,) = load_ghm_stats(files[0])
    assert single["batch"] == int(files[0].name.split("_")[1][len("batch"):])
    with pytest.raises(Exception, match="no GHM statistics"):
        load_ghm_stats(tmp_path)


def test_the_table_has_one_row_per_file_and_bin(runs):
    stats = load_ghm_stats(only_run(runs["ghm"], "stats"))
    table = ghm_stats_table(stats)
    assert tuple(table) == TABLE_COLUMNS
    assert {len(column) for column in table.values()} == {10 * len(stats)}
    assert sum(table["count"]) == 8 * len(stats)
    assert table["lower_edge"][:2] == [0.0, 0.1] and table["upper_edge"][9] == 1.0
    assert all(isinstance(v, (int, float)) for column in table.values() for v in column)


def test_the_readme_notebook_example_runs_without_torch(runs):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### GHM statistics in a notebook", 1)[1]
    example = section.split("```python\n", 1)[1].split("```", 1)[0]
    stats_dir = only_run(runs["ghm"], "stats")
    assert '"saved_models/stats/<run>"' in example
    code = 'import sys\nsys.modules["torch"] = None\n' + example.replace("saved_models/stats/<run>", str(stats_dir))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0].split() == ["bin"] + [str(b) for b in range(10)]
    assert len(out.stdout.splitlines()) == 2 + 2  # header, "epoch", epochs 1 and 2


def test_analyze_writes_the_evolution_the_hard_recordings_and_a_summary(runs, tmp_path, capsys):
    run = only_run(runs["ghm"], "stats").name
    assert analyze_main(["analyze", run, "--save-dir", str(runs["ghm"]), "--out", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == {"ghm_evolution.png", "hard_recordings.csv",
                                                   "hard_recordings.png", "ghm_summary.json"}
    summary = json.loads((tmp_path / "ghm_summary.json").read_text())
    assert summary["run"] == run and summary["hard_bins"] == 2 and summary["ghm"]["bins"] == 10
    assert [e["epoch"] for e in summary["epochs"]] == [1, 2]
    for epoch in summary["epochs"]:
        assert 0 < epoch["mean_g"] < 1 and 0 <= epoch["share_hardest_bins"] <= 1
        assert 0 < epoch["effective_examples_per_batch"] <= 8 + 1e-9
    with open(tmp_path / "hard_recordings.csv") as f:
        rows = list(csv.DictReader(f))
    stats = load_ghm_stats(only_run(runs["ghm"], "stats"))
    recordings = {p for s in stats for pair in s["pair_paths"] for p in pair}
    assert {r["path"] for r in rows} == recordings
    hard = [int(r["hard_pairs"]) for r in rows]
    assert hard == sorted(hard, reverse=True)
    expected = {}  # recording -> [pairs, pairs in the 2 hardest of 10 bins], counted from the pickles
    for s in stats:
        for pair, b in zip(s["pair_paths"], s["bin"]):
            for path in pair:
                counts = expected.setdefault(path, [0, 0])
                counts[0] += 1
                counts[1] += int(b >= 8)
    assert {r["path"]: [int(r["pairs"]), int(r["hard_pairs"])] for r in rows} == expected
    assert any(h > 0 for h in hard)
    assert {r["material"] for r in rows} == {"plastic"} and {r["frequency"] for r in rows} == {"1000hz"}


def test_analyze_a_standard_run_and_compare_two_runs(runs, tmp_path):
    standard = only_run(runs["standard_stats"], "stats")
    assert analyze_main(["analyze", str(standard), "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "ghm_summary.json").read_text())
    assert summary["loss_type"] == "standard" and summary["weights_applied"] is False
    ghm = only_run(runs["ghm"], "stats")
    assert analyze_main(["analyze", "--compare", str(ghm), str(standard), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "compare.png").stat().st_size > 10_000


def test_analyze_reads_what_exists_of_a_run_in_progress(runs, tmp_path):
    partial = tmp_path / "stats" / "run_in_progress"
    partial.mkdir(parents=True)
    for path in only_run(runs["ghm"], "stats").glob("epoch1_*"):
        (partial / path.name).write_bytes(path.read_bytes())
    (partial / ".epoch2_batch1_x_ghm_stats.pkl.123.tmp").write_bytes(b"half-written")  # an unfinished save
    assert analyze_main(["analyze", str(partial), "--out", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "ghm_summary.json").read_text())
    assert [e["epoch"] for e in summary["epochs"]] == [1]


def test_analyze_fails_clearly_without_statistics(runs, tmp_path, capsys):
    empty = tmp_path / "stats" / "some_run"
    empty.mkdir(parents=True)
    cases = [(["analyze", str(empty)], "no GHM statistics"),
             (["analyze", "no_such_run", "--save-dir", str(tmp_path)], "neither a stats folder nor a run"),
             (["analyze", str(only_run(runs["ghm"], "stats")), "--hard-bins", "11", "--out", str(tmp_path / "o")],
              "--hard-bins 11")]
    for argv, message in cases:
        assert analyze_main(argv) == 1
        errors = capsys.readouterr().err.splitlines()
        assert len(errors) == 1 and errors[0].startswith("error:") and message in errors[0], errors


def test_analyze_is_a_module_command(runs, tmp_path):
    out = subprocess.run([sys.executable, "-m", "analysis.ghm_runs", "analyze", str(only_run(runs["ghm"], "stats")),
                          "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "ghm_evolution.png").is_file()


@pytest.mark.parametrize("spec, expected", [("first,last", [1, 5]), ("all", [1, 2, 3, 4, 5]), ("every:2", [2, 4]),
                                            ("first,every:3", [1, 3])])
def test_stats_batch_selection(spec, expected):
    rule = stats_batch_rule(spec)
    assert [b for b in range(1, 6) if rule(b, 5)] == expected


@pytest.mark.parametrize("spec", ["every:0", "every:x", "middle", ""])
def test_bad_stats_batch_selection_is_a_flag_error(tiny_data, spec, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--frequency", "500hz", "--data-root", str(tiny_data), "--ghm-stats-batches", spec])
    assert exit_info.value.code == 2 and "--ghm-stats-batches" in capsys.readouterr().err
