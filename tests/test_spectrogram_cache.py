import json
import os

import numpy as np
import pytest
import torch
from conftest import write_wav

import config
from datasets import SpectrogramDatasetWithMaterial
from datasets.spectrogram_cache import MappedSpectrograms
from utils.errors import InputError


def make_data(root):
    rng = np.random.default_rng(0)
    for c in config.CLASSES[:2]:
        for seq in ("00", "01"):
            write_wav(root / c / "box" / f"box_{c}_500hz_{seq}.wav", 0.2 * rng.standard_normal(600))


def load(root, cache):
    return SpectrogramDatasetWithMaterial(root, config.CLASSES[:2], None, "500hz", "box", n_fft=64, hop_length=16,
                                          cache_dir=cache)


def test_cached_load_equals_the_computed_one_and_reuses_entries(tmp_path):
    make_data(tmp_path / "data")
    plain = load(tmp_path / "data", None)
    first = load(tmp_path / "data", tmp_path / "cache")
    entries = sorted((tmp_path / "cache").glob("*.npy"))
    assert len(entries) == 4 and len(list((tmp_path / "cache").glob("*.json"))) == 4
    index = json.loads(entries[0].with_suffix(".json").read_text())
    assert index["path"] in first.paths and (index["n_fft"], index["hop_length"]) == (64, 16)
    mtimes = [e.stat().st_mtime_ns for e in entries]
    second = load(tmp_path / "data", tmp_path / "cache")
    assert isinstance(first.data, MappedSpectrograms) and first.data.shape == plain.data.shape
    assert torch.equal(plain.data, first.data[:]) and torch.equal(first.data[:], second.data[:])
    assert [e.stat().st_mtime_ns for e in sorted((tmp_path / "cache").glob("*.npy"))] == mtimes
    for i in range(len(plain)):
        assert torch.equal(first[i][0], plain[i][0])
    selection = first.data[[2, 0]]
    assert isinstance(selection, MappedSpectrograms) and torch.equal(selection[:], plain.data[[2, 0]])


def test_a_changed_recording_invalidates_only_its_entry(tmp_path):
    make_data(tmp_path / "data")
    load(tmp_path / "data", tmp_path / "cache")
    before = {e.name for e in (tmp_path / "cache").glob("*.npy")}
    changed = tmp_path / "data" / "deg000" / "box" / "box_deg000_500hz_01.wav"
    write_wav(changed, np.full(600, 0.1))
    os.utime(changed, ns=(1, 1))
    reloaded = load(tmp_path / "data", tmp_path / "cache")
    after = {e.name for e in (tmp_path / "cache").glob("*.npy")}
    assert len(after - before) == 1 and before <= after
    assert torch.equal(reloaded.data[:], load(tmp_path / "data", None).data)


def test_a_damaged_entry_is_computed_again(tmp_path):
    make_data(tmp_path / "data")
    good = load(tmp_path / "data", tmp_path / "cache")
    for entry in (tmp_path / "cache").glob("*.npy"):
        entry.write_bytes(b"garbage")
    assert torch.equal(load(tmp_path / "data", tmp_path / "cache").data[:], good.data[:])


def test_a_truncated_recording_is_named(tmp_path):
    make_data(tmp_path / "data")
    path = tmp_path / "data" / "deg036" / "box" / "box_deg036_500hz_00.wav"
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(InputError, match="box_deg036_500hz_00.wav"):
        load(tmp_path / "data", None)
