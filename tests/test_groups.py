"""Takes kept together: a group (--group-pattern, or a manifest's group column) never straddles the training,
validation and test recordings; the split stays stratified by class; summary.json lists each split's groups."""

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_train_args

import train
from audio_data.grouping import grouped_parts, pattern_groups, recording_groups
from utils.errors import InputError


@pytest.mark.parametrize("seed", range(40))
def test_no_group_is_ever_divided_and_the_parts_keep_their_shares(seed):
    rng = np.random.default_rng(1000 + seed)
    classes, n_groups = int(rng.integers(2, 7)), int(rng.integers(6, 40))
    labels, groups = [], []
    for g in range(n_groups):  # a placement of one angle, or a session holding several angles
        replace = bool(rng.integers(2))
        members = rng.choice(classes, size=int(rng.integers(1, 5 if replace else classes + 1)), replace=replace)
        labels += members.tolist()
        groups += [f"g{g}"] * len(members)
    fractions = [0.56, 0.24, 0.2]
    parts = grouped_parts(labels, groups, fractions, seed)
    assert sorted(i for part in parts for i in part) == list(range(len(labels)))  # a partition
    owner = {}
    for p, part in enumerate(parts):
        assert part == sorted(part)
        for i in part:
            assert owner.setdefault(groups[i], p) == p  # every group in one part only
    sizes = np.array([len(part) for part in parts]) / len(labels)
    biggest = max(Counter(groups).values()) / len(labels)
    assert np.all(np.abs(sizes - fractions) <= max(0.25, 2 * biggest))  # near the shares, as groups allow
    assert parts == grouped_parts(labels, groups, fractions, seed)  # the seed decides


def test_groups_come_from_the_pattern_or_the_manifest():
    paths = ["lab/a_s1_00.wav", "lab/b_s1_01.wav", "lab/a_s2_00.wav"]
    assert pattern_groups(paths, r"_(s\d)_") == ["s1", "s1", "s2"]
    assert pattern_groups(paths, r"s\d") == ["s1", "s1", "s2"]
    with pytest.raises(InputError, match=r"--group-pattern _x_: does not match the file name of lab/a_s1_00.wav"):
        pattern_groups(paths, "_x_")
    assert recording_groups(paths, [None] * 3, None) is None  # no groups: the split of old
    assert recording_groups(paths, ["p1", None, "p1"], None) == ["p1", "\0lab/b_s1_01.wav", "p1"]


def test_a_run_split_by_session_keeps_each_session_on_one_side(tiny_data, tmp_path, capsys):
    # tiny_data: six classes, three takes each; take NN of every angle is one session
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--epochs", "1",
                           "--group-pattern", r"_(\d\d)\.wav$")
    assert train.main(argv) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    groups = summary["groups"]
    assert sorted(groups["train"] + groups["val"]) == ["00", "01", "02"] and groups["val"] and not groups["test"]
    val = [Path(row["path"]).name for row in csv.DictReader(open(run / "eval" / "scores.csv"))]
    assert {name[-6:-4] for name in val} == set(groups["val"]) and len(val) == 6 * len(groups["val"])

    with pytest.raises(SystemExit):
        train.parse_args([*argv, "--group-pattern", "(unclosed"])
    assert "--group-pattern must be a regular expression" in capsys.readouterr().err
    assert train.main([*argv, "--group-pattern", "session"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--group-pattern session: does not match the file name of" in err
