import json
import os
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from conftest import flip_bit, write_wav

import config
from audio_data import SpectrogramDatasetWithMaterial
from audio_data.spectrogram_cache import MappedSpectrograms, entry_problem
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
    changed = tmp_path / "data" / "deg000" / "box" / "box_deg000_500hz_01.wav"
    os.utime(changed, ns=(1, 1))
    load(tmp_path / "data", tmp_path / "cache")
    before = {e.name for e in (tmp_path / "cache").glob("*.npy")}
    size = changed.stat().st_size
    write_wav(changed, np.full(600, 0.1))
    os.utime(changed, ns=(1, 1))  # the same size and modification time: only the content tells
    assert changed.stat().st_size == size
    reloaded = load(tmp_path / "data", tmp_path / "cache")
    after = {e.name for e in (tmp_path / "cache").glob("*.npy")}
    assert len(after - before) == 1 and before <= after
    assert torch.equal(reloaded.data[:], load(tmp_path / "data", None).data)


def rewrite(entry, values, update_index: bool = False):
    np.save(entry, values)
    if update_index:
        index = json.loads(entry.with_suffix(".json").read_text())
        entry.with_suffix(".json").write_text(json.dumps({**index, "crc32": zlib.crc32(np.ascontiguousarray(values))}))


DAMAGE = {
    "garbage": (lambda e, v: e.write_bytes(b"garbage"), "cannot be read"),
    "zeroed": (lambda e, v: e.write_bytes(bytes(e.stat().st_size)), "cannot be read"),
    "zero values": (lambda e, v: rewrite(e, np.zeros_like(v)), "do not match the checksum"),
    "NaN values": (lambda e, v: rewrite(e, np.full_like(v, np.nan), update_index=True), "NaN or infinite"),
    "float64": (lambda e, v: rewrite(e, v.astype(np.float64), update_index=True), "holds float64"),
    "other shape": (lambda e, v: rewrite(e, v[..., :-1], update_index=True), "not float32"),
    "no index": (lambda e, v: e.with_suffix(".json").unlink(), "index (.json) is missing or damaged"),
    "bit flip": (lambda e, v: flip_bit(e, e.stat().st_size - 3, 2), "do not match the checksum"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_bad_entry_is_computed_again_with_one_warning(tmp_path, kind):
    make_data(tmp_path / "data")
    good = load(tmp_path / "data", None)
    load(tmp_path / "data", tmp_path / "cache")
    entry = sorted((tmp_path / "cache").glob("*.npy"))[0]
    damage, message = DAMAGE[kind]
    damage(entry, np.load(entry))
    with pytest.warns(UserWarning) as warned:
        reloaded = load(tmp_path / "data", tmp_path / "cache")
    (warning,) = [str(w.message) for w in warned if "cache entry" in str(w.message)]
    assert warning.startswith(f"cache entry {entry} of ") and message in warning and "computing it again" in warning
    assert torch.equal(reloaded.data[:], good.data)
    assert entry_problem(entry, good.data.shape[1:]) is None


def test_concurrent_loads_into_one_cache_agree_and_warn_of_nothing(tmp_path, recwarn):
    make_data(tmp_path / "data")
    plain = load(tmp_path / "data", None)
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: load(tmp_path / "data", tmp_path / "cache").data[:], range(8)))
    assert all(torch.equal(data, plain.data) for data in loaded)
    assert not [w for w in recwarn if "cache entry" in str(w.message)]
    assert not list((tmp_path / "cache").glob(".*tmp"))


def test_a_truncated_recording_is_named(tmp_path):
    make_data(tmp_path / "data")
    path = tmp_path / "data" / "deg036" / "box" / "box_deg036_500hz_00.wav"
    path.write_bytes(path.read_bytes()[:-400])
    with pytest.raises(InputError, match="box_deg036_500hz_00.wav"):
        load(tmp_path / "data", None)
