"""--manifest: recordings listed as a lab keeps them. A folder layout's manifest trains the same run; angles,
materials, frequencies, fixed splits and a lab's own columns come from the manifest; each bad row is one error line
naming its row and column; --resume notices a changed manifest."""

import csv
import json
import pickle
import shutil
from pathlib import Path

import pytest
import soundfile as sf

import evaluate
import predict
import train
from analysis import baselines

FLAGS = ["--n-fft", "128", "--hop-length", "64", "--epochs", "2", "--batch-size", "8", "--checkpoint-interval", "1",
         "--margin", "1.0", "--no-progress"]


def history_of(save_dir: Path) -> dict:
    (run,) = (save_dir / "model_checkpoints").iterdir()
    history = pickle.loads(next(run.glob("training_history_*.pkl")).read_bytes())
    for key in ("save_dir", "data_root", "manifest", "seqs", "material"):
        history["args"].pop(key)
    return history


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def test_a_folder_layout_s_manifest_trains_the_same_run(tiny_data, tmp_path, capsys):
    manifest = tmp_path / "lab" / "takes.csv"
    manifest.parent.mkdir()
    with pytest.raises(SystemExit) as done:
        train.parse_args(["--data-root", str(tiny_data), "--write-manifest", str(manifest)])
    assert done.value.code == 0 and "wrote" in capsys.readouterr().out
    rows = list(csv.DictReader(open(manifest)))
    assert len(rows) == 6 * 3 * 3 and rows[0].keys() == {"path", "class", "material", "frequency", "seq"}
    assert not Path(rows[0]["path"]).is_absolute() and (manifest.parent / rows[0]["path"]).is_file()

    assert train.main(["--manifest", str(manifest), "--frequency", "1000hz", "--save-dir", str(tmp_path / "m"),
                       *FLAGS]) == 0
    assert train.main(["--data-root", str(tiny_data), "--seqs", "all", "--frequency", "1000hz", "--save-dir",
                       str(tmp_path / "f"), *FLAGS]) == 0
    assert history_of(tmp_path / "m") == history_of(tmp_path / "f")  # the same recordings, split and training


def lab_manifest(tiny_data: Path, folder: Path) -> Path:
    """Two angles' takes as a lab keeps them: by angle, with its own class names, sessions and notes; one FLAC."""
    folder.mkdir()
    rows = []
    for k, (class_folder, name) in enumerate([("deg000", "front"), ("deg036", "side"), ("deg072", "back")]):
        for seq in range(3):
            source = tiny_data / class_folder / "plastic" / f"plastic_{class_folder}_1000hz_{seq:02d}.wav"
            target = folder / "audio" / f"take_{k}{seq}.{'flac' if seq == 2 else 'wav'}"
            target.parent.mkdir(exist_ok=True)
            samples, rate = sf.read(str(source))
            sf.write(str(target), samples, rate)
            rows.append([f"audio/{target.name}", 36 * k, name, f"s{seq}", f"note {k}{seq}"])
    return write_csv(folder / "takes.csv", ["path", "angle", "class", "session", "notes"], rows)


def test_angles_a_lab_s_names_and_columns_reach_the_outputs(tiny_data, tmp_path):
    manifest = lab_manifest(tiny_data, tmp_path / "lab")
    assert train.main(["--manifest", str(manifest), "--frequency", "any", "--save-dir", str(tmp_path / "out"),
                       *FLAGS]) == 0
    (run,) = (tmp_path / "out" / "model_checkpoints").iterdir()
    assert run.name.startswith("any_any_ghm")  # no material or frequency column: "any"
    scores = list(csv.DictReader(open(run / "eval" / "scores.csv")))
    assert list(scores[0])[-3:] == ["session", "notes", "class_name"]
    by_path = {Path(row["path"]).name: row for row in scores}
    some = next(iter(by_path))
    k, seq = some[5], some[6]
    assert by_path[some]["notes"] == f"note {k}{seq}" and by_path[some]["session"] == f"s{seq}"
    assert by_path[some]["class"] == ["deg000", "deg036", "deg072"][int(k)]
    assert by_path[some]["class_name"] == ["front", "side", "back"][int(k)]

    moved = tmp_path / "moved"
    shutil.copytree(tmp_path / "lab", moved)
    assert evaluate.main(["--checkpoint", str(run / "model_best.pt"), "--split", "all", "--manifest",
                          str(moved / "takes.csv"), "--out", str(tmp_path / "eval_all")]) == 0
    scores = list(csv.DictReader(open(tmp_path / "eval_all" / "scores.csv")))
    assert len(scores) == 9 and all(row["path"].startswith(str(moved)) and row["notes"] for row in scores)
    assert baselines.main([str(run), "--manifest", str(moved / "takes.csv"), "--split", "all", "--out",
                           str(tmp_path / "b")]) == 0


def test_a_split_column_fixes_the_split_and_resume_notices_a_changed_manifest(tiny_data, tmp_path, capsys):
    manifest = lab_manifest(tiny_data, tmp_path / "lab")
    lines = manifest.read_text().splitlines()
    split = ["train", "train", "val"]
    fixed = [lines[0] + ",split"] + [f"{line},{split[i % 3]}" for i, line in enumerate(lines[1:])]
    manifest.write_text("\n".join(fixed) + "\n")
    argv = ["--manifest", str(manifest), "--frequency", "any", "--save-dir", str(tmp_path / "out"), *FLAGS]
    assert train.main([*argv, "--epochs", "1"]) == 0
    (run,) = (tmp_path / "out" / "model_checkpoints").iterdir()
    scores = list(csv.DictReader(open(run / "eval" / "scores.csv")))
    assert sorted(Path(row["path"]).name[-6:] for row in scores) == ["2.flac"] * 3  # the val rows, as written
    capsys.readouterr()

    manifest.write_text(manifest.read_text().replace("note 00", "note 00 re-checked"))
    assert train.main(["--resume", str(run), "--epochs", "2", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the manifest is not the one the run used" in err


BAD_ROWS = {
    "missing file": (["path", "class"], [["a.wav", "deg000"], ["gone.wav", "deg036"]], "row 3, column path: ",
                     "gone.wav: no such file"),
    "duplicate path": (["path", "class"], [["a.wav", "deg000"], ["./a.wav", "deg036"]], "row 3, column path: ",
                       "./a.wav is listed on row 2 too"),
    "class without angle": (["path", "class", "angle"], [["a.wav", "deg000", "0"], ["b.wav", "side", ""]],
                            "row 3, column angle: ", "empty, but the manifest gives the classes by angle"),
    "empty class": (["path", "class"], [["a.wav", "deg000"], ["b.wav", ""]], "row 3, column class: ",
                    "empty: every recording needs its class"),
    "angle not a number": (["path", "angle"], [["a.wav", "0"], ["b.wav", "ninety"]], "row 3, column angle: ",
                           "'ninety' is not a number of degrees"),
    "one class, two angles": (["path", "class", "angle"], [["a.wav", "side", "0"], ["b.wav", "side", "90"]],
                              "row 3, column angle: ", "class side has angle 90 here and 0 on row 2"),
    "bad split": (["path", "class", "split"], [["a.wav", "deg000", "train"], ["b.wav", "deg036", "holdout"]],
                  "row 3, column split: ", "'holdout' is not one of train, val, test"),
    "material not a name": (["path", "class", "material"], [["a.wav", "deg000", "x"], ["b.wav", "deg036", "a/b"]],
                            "row 3, column material: ", "'a/b' is not a name"),
    "no class column": (["path", "notes"], [["a.wav", "x"]], "", "the header row needs a path column and one of "
                                                                 "angle, class (found: path, notes)"),
}


@pytest.mark.parametrize("kind", list(BAD_ROWS))
def test_each_bad_manifest_row_is_one_error_line(kind, tiny_data, tmp_path, capsys):
    header, rows, where, problem = BAD_ROWS[kind]
    for name in ("a.wav", "b.wav"):
        shutil.copy(next(tiny_data.rglob("*1000hz_00.wav")), tmp_path / name)
    manifest = write_csv(tmp_path / "bad.csv", header, rows)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(["--manifest", str(manifest), "--frequency", "any"])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and f"--manifest {manifest}{' ' + where if where else ':'}" in err, err
    assert problem in err, err


def test_seqs_is_the_folder_layout_s(tiny_data, tmp_path, capsys):
    manifest = lab_manifest(tiny_data, tmp_path / "lab")
    with pytest.raises(SystemExit):
        train.parse_args(["--manifest", str(manifest), "--frequency", "any", "--seqs", "all"])
    assert "--seqs: not with --manifest" in capsys.readouterr().err


def test_predict_scores_a_manifest_and_carries_its_columns(tiny_data, tmp_path):
    manifest = lab_manifest(tiny_data, tmp_path / "lab")
    assert train.main(["--manifest", str(manifest), "--frequency", "any", "--save-dir", str(tmp_path / "out"),
                       *FLAGS, "--epochs", "1"]) == 0
    (run,) = (tmp_path / "out" / "model_checkpoints").iterdir()
    new = write_csv(tmp_path / "lab" / "new.csv", ["path", "operator"],
                    [["audio/take_00.wav", "ana"], ["audio/take_12.flac", "ben"]])
    assert predict.main(["--checkpoint", str(run), "--manifest", str(new), "--out", str(tmp_path / "p.csv")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [(Path(r["path"]).name, r["operator"]) for r in rows] == [("take_00.wav", "ana"), ("take_12.flac", "ben")]
    assert predict.main(["--checkpoint", str(run), "--manifest", str(new), str(tmp_path)]) == 1


def test_a_group_column_keeps_each_session_on_one_side(tiny_data, tmp_path):
    manifest = lab_manifest(tiny_data, tmp_path / "lab")
    manifest.write_text(manifest.read_text().replace("session", "group", 1))
    assert train.main(["--manifest", str(manifest), "--frequency", "any", "--save-dir", str(tmp_path / "out"),
                       *FLAGS, "--epochs", "1"]) == 0
    (run,) = (tmp_path / "out" / "model_checkpoints").iterdir()
    groups = json.loads((run / "summary.json").read_text())["groups"]
    assert sorted(groups["train"] + groups["val"]) == ["s0", "s1", "s2"] and groups["val"]
    val = list(csv.DictReader(open(run / "eval" / "scores.csv")))
    assert {Path(row["path"]).stem[-1] for row in val} == {g[1] for g in groups["val"]}
