"""Recordings in every audio format libsndfile reads, with endings in any case, and at other sample rates: resampled to
the run's rate by soxr, and cached by content and rate."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

import train
from audio_data import SpectrogramDatasetWithMaterial
from audio_data.audio import read_audio, resampled_length
from audio_data.spectrogram import spectrogram_db

CLASSES = ["deg000", "deg090"]
RATE, SECONDS = 8000, 0.1


def tone(rate: int, seq: int) -> np.ndarray:
    t = np.arange(int(SECONDS * rate)) / rate
    return (0.3 + 0.05 * seq) * np.sin(2 * np.pi * 1000 * t)


def lab_layout(root):
    """Per class: a WAV, a FLAC, an OGG, a WAV named .WAV, and a WAV at 16 kHz and one at 11025 Hz (each 0.1 s)."""
    written = {}
    for k, c in enumerate(CLASSES):
        folder = root / c / "plastic"
        folder.mkdir(parents=True)
        for seq, (ending, audio_format, rate) in enumerate([(".wav", "WAV", RATE), (".flac", "FLAC", RATE),
                                                            (".ogg", "OGG", RATE), (".WAV", "WAV", RATE),
                                                            (".wav", "WAV", 16000), (".wav", "WAV", 11025)]):
            path = folder / f"plastic_{c}_1000hz_{seq:02d}{ending}"
            samples = (1 - 0.3 * k) * tone(rate, seq)  # each file its own content: one cache entry each
            sf.write(str(path), samples, rate, format=audio_format,
                     subtype="VORBIS" if audio_format == "OGG" else "PCM_16")
            written[str(path)] = rate
    return written


def load(root, **kwargs):
    return SpectrogramDatasetWithMaterial(root, CLASSES, None, "1000hz", "plastic", n_fft=64, hop_length=16, **kwargs)


def test_every_format_and_rate_is_read_and_resampled_as_soxr_does(tmp_path, capsys):
    written = lab_layout(tmp_path)
    recordings = load(tmp_path)
    assert sorted(recordings.paths) == sorted(written) and recordings.sample_rate == RATE
    assert recordings.length == int(SECONDS * RATE)
    assert capsys.readouterr().out == ("resampling 4 of 12 recordings to 8000 Hz (the rate most of them have; "
                                       "--sample-rate sets another)\n")
    for i, path in enumerate(recordings.paths):
        samples, rate = sf.read(path, dtype="float32")
        if rate != RATE:
            samples = soxr.resample(samples, rate, RATE, quality="HQ")  # the resampler's own output
        assert torch.equal(recordings.data[i], spectrogram_db(samples, 64, 16)), path
    flac, _ = read_audio(tmp_path / "deg000/plastic/plastic_deg000_1000hz_01.flac")
    assert np.abs(flac - tone(RATE, 1)).max() <= 1 / 32767  # lossless, to the 16 bits written


def test_sample_rate_sets_the_run_rate_and_the_cache_keeps_each_rate_apart(tmp_path, capsys):
    lab_layout(tmp_path / "data")
    up = load(tmp_path / "data", sample_rate=16000, cache_dir=tmp_path / "cache")
    assert up.sample_rate == 16000 and up.length == int(SECONDS * 16000)
    assert "resampling 10 of 12 recordings to 16000 Hz (--sample-rate)" in capsys.readouterr().out
    again = load(tmp_path / "data", sample_rate=16000, cache_dir=tmp_path / "cache")
    assert torch.equal(up.data[:], again.data[:])
    at_own_rate = load(tmp_path / "data", cache_dir=tmp_path / "cache")  # new entries for the 8 kHz run
    indexes = [json.loads(p.read_text()) for p in (tmp_path / "cache").glob("*.json")]
    assert len(indexes) == 24 and sum("resampled_to" in index for index in indexes) == 10 + 4
    assert torch.equal(at_own_rate.data[:], load(tmp_path / "data").data[:])


@pytest.mark.parametrize("frames,rate,target", [(800, 8000, 16000), (1001, 44100, 48000), (12345, 8000, 4000),
                                                (777, 22050, 16000), (2000, 8000, 8001), (99991, 48000, 44100)])
def test_the_expected_length_is_the_resampler_s(frames, rate, target):
    assert len(soxr.resample(np.zeros(frames, np.float32), rate, target)) == resampled_length(frames, rate, target)


def test_a_run_on_mixed_rates_trains_and_stores_its_rate(tmp_path, capsys):
    lab_layout(tmp_path / "data")
    argv = ["--data-root", str(tmp_path / "data"), "--save-dir", str(tmp_path / "out"), "--frequency", "1000hz",
            "--seqs", "all", "--n-fft", "64", "--hop-length", "16", "--epochs", "1", "--batch-size", "4",
            "--no-progress", "--sample-rate", "11025"]
    assert train.main(argv) == 0
    assert "resampling 10 of 12 recordings to 11025 Hz (--sample-rate)" in capsys.readouterr().out
    (run,) = (tmp_path / "out" / "model_checkpoints").iterdir()
    checkpoint = torch.load(next(run.glob("model_epoch_*.pt")), weights_only=True)
    assert checkpoint["audio"] == {"sample_rate": 11025, "samples": 1102} and checkpoint["args"]["sample_rate"] == 11025
    samples, rate = read_audio(tmp_path / "data/deg000/plastic/plastic_deg000_1000hz_00.wav", 11025)
    assert rate == 11025 and len(samples) == 1103  # 800 samples at 8 kHz: fitted to the run's 1102 when loaded


def test_a_manifest_of_mixed_formats_and_rates_loads_as_the_layout_does(tmp_path):
    from audio_data.manifest import read_manifest

    written = lab_layout(tmp_path / "data")
    lines = ["path,class,material,frequency"] + [f"{Path(p).relative_to(tmp_path)},{Path(p).parent.parent.name},"
                                                 "plastic,1000hz" for p in written]
    (tmp_path / "takes.csv").write_text("\n".join(lines) + "\n")
    listed = load(tmp_path / "elsewhere", manifest=read_manifest(tmp_path / "takes.csv"))
    layout = load(tmp_path / "data")
    order = [listed.paths.index(p) for p in layout.paths]
    assert torch.equal(listed.data[order], layout.data) and listed.sample_rate == layout.sample_rate == RATE
