"""The room-simulation demo dataset: real layout, determinism, and the level-angle relation it is built on."""

import json

import numpy as np
import pytest
import soundfile as sf

import config
import train
from audio_data.tone_features import feature_matrix
from audio_data import demo, room
from audio_data.synthetic import MARKER
from training.cli import parse_args
from utils import extras


def test_layout_marker_and_determinism(tmp_path):
    for name in ("a", "b"):
        room.main(["--out", str(tmp_path / name), "--sample-rate", "8000", "--duration", "0.3", "--seqs", "1",
                   "--frequencies", "500hz", "--materials", "box"])
    a, b = sorted((tmp_path / "a").rglob("*.wav")), sorted((tmp_path / "b").rglob("*.wav"))
    assert [p.relative_to(tmp_path / "a") for p in a] == [
        p.relative_to(tmp_path / "b") for p in b] == [
        tmp_path.joinpath(c, "box", f"box_{c}_500hz_00.wav").relative_to(tmp_path) for c in config.CLASSES]
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))
    info = sf.info(str(a[0]))
    assert (info.samplerate, info.frames, info.subtype, info.channels) == (8000, 2400, "PCM_16", 1)
    marker = json.loads((tmp_path / "a" / MARKER).read_text())
    assert marker["kind"] == "room" and marker["materials"] == ["box"]


def mean_levels(root, material: str) -> np.ndarray:
    """Mean tone level (dBFS) of each class's takes."""
    levels = []
    for class_name in ("deg000", "deg090", "deg180"):
        paths = sorted(str(p) for p in (root / class_name / material).glob("*.wav"))
        levels.append(feature_matrix(paths, "1000hz", None)[:, 0].mean())
    return np.array(levels)


def test_level_falls_with_the_angle_and_reverberation_flattens_it(tmp_path):
    """The cardioid takes the direct sound at (1 + cos θ) / 2: the level falls with θ; in the reverberant room
    the direct sound is a smaller part of the level, so it falls less."""
    root = room.generate(tmp_path, sample_rate=8000, duration=0.5, seqs=4, classes=["deg000", "deg090", "deg180"],
                         frequencies=["1000hz"])
    damped, reverberant = mean_levels(root, "box"), mean_levels(root, "plastic")
    assert damped[0] > damped[1] > damped[2] and damped[0] - damped[2] > 6
    assert reverberant[0] > reverberant[2] and reverberant[0] - reverberant[2] < damped[0] - damped[2]
    samples = [sf.read(str(p))[0] for p in sorted(root.rglob("*.wav"))]
    assert all(0.001 < np.abs(s).max() < room.PEAK_LIMIT for s in samples)
    assert len({s.tobytes() for s in samples}) == len(samples)


def test_demo_room_is_written_once_into_its_own_folder(tmp_path, monkeypatch):
    args = parse_args(["--demo", "room", "--frequency", "1000hz"])
    assert (args.data.demo, args.data.root) == ("room", config.DEMO_DATA_ROOTS["room"])
    assert parse_args(["--demo", "--frequency", "1000hz"]).data.demo == "synthetic"
    assert demo.demo_kind(True) == "synthetic" and demo.demo_kind(False) is None  # runs saved before --demo room
    written = []
    monkeypatch.setattr(room, "generate", lambda out: written.append(out) or out)
    assert demo.ensure_demo_data(tmp_path, "room") == tmp_path and written == [tmp_path]
    (tmp_path / MARKER).write_text(json.dumps(room.DEFAULT))
    assert demo.ensure_demo_data(tmp_path, "room") == tmp_path and written == [tmp_path]


def test_runs_saved_when_demo_was_a_switch_still_load(tmp_path):
    from training.cli import config_file_values, get_args_parser

    assert config.migrate({"demo": True, "seed": 1}) == {"demo": "synthetic", "seed": 1}
    assert config.migrate({"demo": False}) == {"demo": None}
    old_config = tmp_path / "config.yaml"
    old_config.write_text("demo: false\nfrequency: 1000hz\n")
    assert config_file_values(get_args_parser(), str(old_config)) == {"demo": None, "frequency": "1000hz"}


def test_without_pyroomacoustics_the_room_dataset_is_one_error_line_naming_the_install(tmp_path, monkeypatch,
                                                                                       capsys):
    monkeypatch.setattr(extras, "installed", lambda extra: extra != "room")
    install = "needs the pyroomacoustics package: python -m pip install -r requirements-room.txt -c constraints.txt"
    out = tmp_path / "room_data"
    assert train.main(["--demo", "room", "--data-root", str(out), "--frequency", "1000hz", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert err == f"error: --demo room: the room dataset {install}\n" and not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        room.main(["--out", str(out)])
    assert exit_info.value.code == f"error: the room dataset {install}" and not out.exists()
    (out / MARKER).parent.mkdir()
    (out / MARKER).write_text(json.dumps(room.DEFAULT))  # generated earlier: the package is not needed
    assert demo.ensure_demo_data(out, "room") == out
