"""--duration and --skip-bad-files: every kind of bad recording is an error naming it, or a skip."""

import os

import numpy as np
import pytest
import torch
from conftest import hang_guard, tiny_train_args, write_wav

import config
import train
from audio_data import SpectrogramDatasetWithMaterial
from audio_data.audio import read_audio, audio_info
from utils.errors import InputError

CLASSES = config.CLASSES[:2]


def corrupt_header(path):
    """A valid WAV whose fmt chunk (channels, rate, block align, bits) is overwritten with junk."""
    write_wav(path, np.full(600, 0.1))
    data = bytearray(path.read_bytes())
    data[22:36] = b"\xff" * 14
    path.write_bytes(bytes(data))


def good_layout(root, seqs=("00", "01", "02"), length=600):
    rng = np.random.default_rng(0)
    for c in CLASSES:
        for seq in seqs:
            write_wav(root / c / "box" / f"box_{c}_500hz_{seq}.wav", 0.2 * rng.standard_normal(length))


def load(root, **kwargs):
    return SpectrogramDatasetWithMaterial(root, CLASSES, None, "500hz", "box", n_fft=64, hop_length=16, **kwargs)


BAD = {
    "unreadable": lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage"),
    "empty": lambda p: write_wav(p, np.zeros(0)),
    "silent": lambda p: write_wav(p, np.zeros(600)),
    "non-finite": lambda p: write_wav(p, np.r_[np.full(599, 0.1), np.nan], subtype="FLOAT"),
    "random bytes": lambda p: p.write_bytes(np.random.default_rng(1).bytes(3000)),
    "zero bytes": lambda p: p.write_bytes(b""),
    "text": lambda p: p.write_text("not audio at all\n"),
    "corrupted header": corrupt_header,
}
MESSAGES = {"unreadable": "cannot read audio", "empty": "no samples", "silent": "silent",
            "non-finite": "NaN or infinite", "random bytes": "cannot read audio",
            "zero bytes": "cannot read audio", "text": "cannot read audio",
            "corrupted header": "cannot read audio"}


@pytest.mark.parametrize("kind", list(BAD))
def test_each_bad_recording_is_an_error_or_a_skip(tmp_path, kind):
    good_layout(tmp_path)
    bad = tmp_path / CLASSES[1] / "box" / "box_deg036_500hz_07.wav"
    BAD[kind](bad)
    with hang_guard(f"decoding a {kind} recording"):
        try:
            read_audio(bad)
            audio_info(bad)
        except InputError:
            pass
    with pytest.raises(InputError, match=MESSAGES[kind]) as error:
        load(tmp_path)
    assert "box_deg036_500hz_07.wav" in str(error.value)
    with pytest.warns(UserWarning) as warned:
        ds = load(tmp_path, skip_bad_files=True)
    messages = [str(w.message) for w in warned]
    assert any("skipping" in m and "box_deg036_500hz_07.wav" in m for m in messages)
    assert "skipped 1 of 7 recordings" in messages
    assert len(ds) == 6 and str(bad) not in ds.paths


def test_a_truncated_recording_is_an_odd_length_error_or_skip_unless_duration_fits_it(tmp_path):
    good_layout(tmp_path)
    path = write_wav(tmp_path / CLASSES[0] / "box" / "box_deg000_500hz_05.wav", np.full(600, 0.1))
    path.write_bytes(path.read_bytes()[:-500])
    with pytest.raises(InputError, match=r"differ in length .*box_deg000_500hz_05.wav \(350\)"):
        load(tmp_path)
    with pytest.warns(UserWarning, match=r"box_deg000_500hz_05.wav: length 350 samples, most have 600"):
        assert str(path) not in load(tmp_path, skip_bad_files=True).paths
    assert len(load(tmp_path, duration=0.075)) == 7


def test_duration_crops_and_pads(tmp_path):
    good_layout(tmp_path, seqs=("00",), length=600)
    write_wav(tmp_path / CLASSES[0] / "box" / "box_deg000_500hz_01.wav", np.full(900, 0.1))
    with pytest.raises(InputError, match="differ in length"):
        load(tmp_path)
    ds = load(tmp_path, duration=0.1)  # 800 samples at 8 kHz
    assert ds.data.shape == (3, 1, 33, 51)
    short = load(tmp_path, duration=0.05)  # 400 samples
    assert short.data.shape == (3, 1, 33, 26)
    cached = load(tmp_path, duration=0.1, cache_dir=tmp_path / "cache")
    assert torch.equal(cached.data[:], ds.data)
    assert torch.equal(load(tmp_path, duration=0.05, cache_dir=tmp_path / "cache").data[:], short.data)


@pytest.mark.slow
def test_cli_skips_bad_files_with_the_flag(tiny_data, tmp_path, capsys):
    data = tmp_path / "data"
    for wav in tiny_data.rglob("*_500hz_*.wav"):
        (data / wav.relative_to(tiny_data)).parent.mkdir(parents=True, exist_ok=True)
        (data / wav.relative_to(tiny_data)).write_bytes(wav.read_bytes())
    write_wav(data / "deg072" / "plastic" / "plastic_deg072_500hz_09.wav", np.zeros(6000), rate=24000)
    assert train.main(tiny_train_args(data, tmp_path / "a", "--frequency", "500hz", "--epochs", "1")) == 1
    assert "silent" in capsys.readouterr().err
    with pytest.warns(UserWarning) as warned:
        assert train.main(tiny_train_args(data, tmp_path / "b", "--frequency", "500hz", "--epochs", "1",
                                          "--skip-bad-files")) == 0
    messages = [str(w.message) for w in warned]
    assert "skipped 1 of 19 recordings" in messages and any("silent" in m for m in messages)


def test_a_file_name_that_is_not_utf8_is_a_bad_recording(tmp_path):
    good_layout(tmp_path)
    folder = tmp_path / CLASSES[1] / "box"
    os.rename(folder / "box_deg036_500hz_02.wav", os.fsencode(folder) + b"/box_deg036_500hz_\xff2.wav")
    with pytest.raises(InputError, match=r"box_deg036_500hz_\\xff2.wav: the file name is not valid UTF-8"):
        load(tmp_path)
    with pytest.warns(UserWarning, match="not valid UTF-8"):
        assert len(load(tmp_path, skip_bad_files=True)) == 5
