import warnings

import numpy as np
import pytest
import torch
from conftest import write_wav

import config
from audio_data import SpectrogramDatasetWithMaterial
from audio_data.spectrogram import spectrogram_db
from utils.errors import InputError

CLASSES = config.CLASSES[:3]


def make_layout(root, classes=CLASSES, seqs=("00", "01"), length=800, rate=8000, material="plastic",
                frequency="1000hz"):
    rng = np.random.default_rng(1)
    paths = []
    for c in classes:
        for seq in seqs:
            path = root / c / material / f"{material}_{c}_{frequency}_{seq}.wav"
            paths.append(write_wav(path, 0.3 * rng.standard_normal(length), rate))
    return paths


def load(root, seqs=None, classes=CLASSES, material="plastic"):
    return SpectrogramDatasetWithMaterial(root, classes, seqs, "1000hz", material, n_fft=64, hop_length=32)


def test_discovers_recordings_in_the_layout(tmp_path):
    make_layout(tmp_path, seqs=("00", "01", "02"))
    make_layout(tmp_path, seqs=("00",), frequency="500hz")
    ds = load(tmp_path)
    assert len(ds) == 9
    assert ds.data.dtype == torch.float32 and tuple(ds.data.shape) == (9, 1, 33, 26)
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert all("_1000hz_" in p for p in ds.paths)
    x, label = ds[4]
    assert torch.equal(x, ds.data[4]) and int(label) == 1
    assert ds.paths[4].endswith("deg036/plastic/plastic_deg036_1000hz_01.wav")


def test_item_is_the_spectrogram_of_its_file(tmp_path):
    make_layout(tmp_path)
    ds = load(tmp_path)
    import soundfile as sf
    samples, _ = sf.read(ds.paths[3], dtype="float32")
    assert torch.equal(ds.data[3], spectrogram_db(samples, 64, 32))


def test_selected_seqs_filter_and_none_loads_all(tmp_path):
    make_layout(tmp_path, seqs=("00", "01", "02", "11"))
    with pytest.warns(UserWarning, match=r"--seqs: 6 recordings with other sequence numbers are left out \(01, 02\); "
                      "--seqs all takes every one"):
        assert len(load(tmp_path, seqs=["00", "11"])) == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every recording taken: no warning
        assert len(load(tmp_path, seqs=None)) == 12
    with pytest.warns(UserWarning, match=r"--seqs: 3 recordings .* \(11\)"):
        assert len(load(tmp_path, seqs=config.SELECTED_SEQS)) == 9


def test_missing_class_folder_is_a_warning(tmp_path):
    make_layout(tmp_path, classes=CLASSES[:2])
    with pytest.warns(UserWarning, match=r"deg072[/\\]plastic: folder missing"):
        ds = load(tmp_path)
    assert len(ds) == 4


def test_no_recordings_is_an_error(tmp_path):
    make_layout(tmp_path, frequency="500hz")
    with pytest.raises(InputError, match="no recordings found matching .*plastic_<class>_1000hz_<seq>.wav"):
        load(tmp_path)
    with pytest.raises(InputError, match="data folder not found"):
        load(tmp_path / "nowhere")


def test_one_class_only_is_an_error(tmp_path):
    make_layout(tmp_path, classes=CLASSES[:1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(InputError, match=r"one class only \(deg000"):
            load(tmp_path)


def test_unreadable_file_is_named(tmp_path):
    paths = make_layout(tmp_path)
    paths[2].write_bytes(b"\x00" * 64)
    with pytest.raises(InputError, match="plastic_deg036_1000hz_00.wav: cannot read audio"):
        load(tmp_path)


def test_different_lengths_name_the_odd_file(tmp_path):
    make_layout(tmp_path)
    odd = write_wav(tmp_path / "deg072/plastic/plastic_deg072_1000hz_05.wav", np.zeros(900) + 0.1)
    with pytest.raises(InputError, match=rf"differ in length \(samples\): most have 800, but {odd} \(900\)"):
        load(tmp_path)


def test_another_length_at_the_run_rate_names_the_odd_file(tmp_path):
    make_layout(tmp_path)  # 800 samples at 8000 Hz
    odd = write_wav(tmp_path / "deg000/plastic/plastic_deg000_1000hz_07.wav", np.zeros(1000) + 0.1, rate=16000)
    with pytest.raises(InputError, match=rf"length \(samples\): most have 800, but {odd} \(500\)"):
        load(tmp_path)


def test_too_short_for_the_fft_is_an_error(tmp_path):
    make_layout(tmp_path, length=20)
    with pytest.raises(InputError, match="too short for n_fft 64"):
        load(tmp_path)
