import json

import numpy as np
import soundfile as sf

import config
from audio_data import SpectrogramDatasetWithMaterial
from audio_data import demo, synthetic
from audio_data.synthetic import MARKER, generate, main


def test_demo_data_has_the_real_layout(tiny_data):
    wavs = sorted(tiny_data.rglob("*.wav"))
    assert len(wavs) == 6 * 1 * 3 * 3
    for class_name in config.CLASSES:
        for frequency in config.FREQUENCIES:
            for seq in ("00", "01", "02"):
                path = tiny_data / class_name / "plastic" / f"plastic_{class_name}_{frequency}_{seq}.wav"
                info = sf.info(str(path))
                assert (info.samplerate, info.frames, info.subtype, info.channels) == (24000, 6000, "PCM_16", 1)
    assert json.loads((tiny_data / MARKER).read_text())["sample_rate"] == 24000


def test_generation_is_deterministic(tmp_path):
    for name in ("a", "b"):
        main(["--out", str(tmp_path / name), "--sample-rate", "8000", "--duration", "0.2", "--seqs", "1",
              "--frequencies", "500hz", "--materials", "box"])
    a = sorted((tmp_path / "a").rglob("*.wav"))
    b = sorted((tmp_path / "b").rglob("*.wav"))
    assert len(a) == len(b) == 6
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a, b))


def test_recordings_differ_and_are_not_clipped(tiny_data):
    samples = [sf.read(str(p))[0] for p in sorted(tiny_data.rglob("*_1000hz_*.wav"))]
    assert all(0.01 < np.abs(s).max() < 0.9 for s in samples)
    assert len({s.tobytes() for s in samples}) == len(samples)


def test_angle_lowers_the_direct_sound_against_the_noise(tmp_path):
    """Relative to its own peak, a recording's noise floor rises with the angle (lower SNR)."""
    root = generate(tmp_path, sample_rate=8000, duration=0.5, seqs=4, materials=["plastic"],
                    frequencies=["500hz"])
    ds = SpectrogramDatasetWithMaterial(root, config.CLASSES, None, "500hz", "plastic", n_fft=256, hop_length=64)
    floor = ds.data.flatten(1).median(dim=1).values
    by_class = [float(floor[ds.labels == c].mean()) for c in range(len(config.CLASSES))]
    assert by_class[0] < by_class[2] < by_class[4]


def test_a_damaged_marker_means_the_demo_data_is_written_again(tmp_path, monkeypatch):
    (tmp_path / synthetic.MARKER).write_bytes(b'{"seed": 4\xff')
    written = []
    monkeypatch.setattr(synthetic, "generate", lambda out: written.append(out) or out)
    assert demo.ensure_demo_data(tmp_path) == tmp_path and written == [tmp_path]
