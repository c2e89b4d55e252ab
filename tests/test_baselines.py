"""The simple rankers beside the CNN: features measured as documented, rankers that find a level ranking, and the
comparison in evaluate.py's report and the `python -m analysis.baselines` command."""

import runpy
from pathlib import Path

import numpy as np
import pytest

from analysis.baseline_rankers import LOGISTIC, baseline_report
from audio_data.tone_features import (FEATURES, MEASURED, START_DB, VIEW_MS, VIEW_RANGE_DB, feature_matrix,
                                      recording_features)
from models import linear_ranker
from models.linear_ranker import fit_logistic, pair_differences
from analysis.evaluation import versus
from conftest import write_wav

RATE = 8000


def sine(amplitude: float, hz: float = 1000.0, seconds: float = 0.5) -> np.ndarray:
    return amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * RATE)) / RATE)


def test_levels_are_in_dbfs_of_a_sine_and_of_the_noise():
    rng = np.random.default_rng(0)
    noise = 10 ** (-50 / 20) / np.sqrt(2) * rng.standard_normal(int(0.5 * RATE))  # -50 dBFS, white
    level, floor, ratio, broadband = recording_features(sine(0.1) + noise, RATE, 1000.0)[:4]
    assert level == pytest.approx(-20.0, abs=0.3)
    assert floor == pytest.approx(-50.0, abs=1.0)  # the bins around the tone are left out: a little below
    assert ratio == pytest.approx(level - floor)
    assert broadband == pytest.approx(-20.0, abs=0.1)
    assert recording_features(sine(0.1, 700.0) + noise, RATE, None)[0] == pytest.approx(-20.0, abs=0.3)


def level_coded(rng: np.random.Generator, classes: int = 4, each: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Features of recordings whose tone level falls 3 dB per class, with ±1 dB jitter and random noise floors."""
    labels = np.repeat(np.arange(classes), each)
    x = np.empty((len(labels), len(FEATURES)))
    for i, label in enumerate(labels):
        noise = 10 ** (rng.uniform(-60, -50) / 20) * rng.standard_normal(int(0.5 * RATE))
        x[i] = recording_features(sine(10 ** ((-10 - 3 * label + rng.uniform(-1, 1)) / 20)) + noise, RATE, 1000.0)
    return x, labels


def test_a_level_coded_dataset_is_ranked_perfectly():
    x, labels = level_coded(np.random.default_rng(1))
    train, held = list(range(0, len(labels), 2)), list(range(1, len(labels), 2))
    report = baseline_report(x, labels, train, held, [f"c{k}" for k in range(4)])
    rankers = report["rankers"]
    assert rankers["tone_level_db"]["pairwise_accuracy"] == 1.0 and rankers["tone_level_db"]["kendall_tau_b"] > 0.8
    weights = rankers["tone_level_db"]["weights"]
    assert weights["tone_level_db"] < 0 and not any(weights[f] for f in FEATURES[1:])  # louder: a lower class
    assert rankers[LOGISTIC]["pairwise_accuracy"] == 1.0
    assert rankers["noise_floor_db"]["pairwise_accuracy"] < 0.8  # the floor says nothing about the class
    assert report["rankers"][report["best"]]["pairwise_accuracy"] == 1.0
    compared = versus({"pairwise_accuracy": 0.9}, report)
    assert compared["vs_best_baseline"] == pytest.approx(-0.1)


def test_the_logistic_ranker_minimises_its_loss():
    rng = np.random.default_rng(2)
    x, labels = rng.standard_normal((30, 3)), np.repeat(np.arange(3), 10)
    x[:, 0] += labels
    d, y = pair_differences(x, labels)
    w = fit_logistic(d, y)

    def loss(v):
        return np.sum(np.log1p(np.exp(-y * (d @ v)))) + linear_ranker.L2 / 2 * len(y) * v @ v
    assert w[0] > 0
    for step in np.eye(3) * 1e-3:
        assert loss(w) <= min(loss(w + step), loss(w - step))


def test_the_rankers_fit_on_a_seeded_sample_of_many_pairs(monkeypatch):
    labels = np.repeat(np.arange(3), 10)
    x = np.arange(30.0)[:, None] * np.ones(len(FEATURES))
    assert len(pair_differences(x, labels)[1]) == 300  # every pair of different classes
    monkeypatch.setattr(linear_ranker, "MAX_PAIRS", 50)
    d, y = pair_differences(x, labels)
    assert len(y) == 50 and np.array_equal(d, pair_differences(x, labels)[0])
    assert np.all(d[:, 0] * y > 0)  # each sampled pair ordered as its classes


def test_features_follow_the_run_s_duration(tmp_path):
    path = write_wav(tmp_path / "a.wav", np.concatenate([sine(0.5, seconds=0.2), sine(0.05, seconds=0.8)]))
    whole = feature_matrix([str(path)], "1000hz", None)[0]
    first = feature_matrix([str(path)], "1000hz", int(0.2 * RATE))[0]
    assert first[0] == pytest.approx(20 * np.log10(0.5), abs=0.5) and whole[0] < first[0] - 10


def test_the_envelope_features_measure_the_onset_and_the_decay():
    """A tone whose first 15 ms sound 12 dB below its steady level (the direct sound alone, before the room's
    reverberation adds up) and which dies away at 200 dB/s once it stops."""
    t = np.arange(int(0.6 * RATE)) / RATE
    start, stop = 0.1, 0.4
    envelope = np.where(t < start, 0.0, np.where(t < start + 0.015, 10 ** (-12 / 20), 1.0))
    envelope = np.where(t < stop, envelope, 10 ** (-200 * (t - stop) / 20)) * 0.3
    samples = envelope * np.sin(2 * np.pi * 1000 * t) + 1e-5 * np.random.default_rng(3).standard_normal(len(t))
    features = dict(zip(FEATURES, recording_features(samples, RATE, 1000.0)))
    assert features["onset_to_steady_db"] == pytest.approx(-12, abs=1.0)
    assert features["early_decay_db_per_s"] == pytest.approx(-200, rel=0.15)
    steady_only = np.where((t >= start) & (t < stop), 0.3, 0.0) * np.sin(2 * np.pi * 1000 * t)
    assert dict(zip(FEATURES, recording_features(steady_only + 1e-5 * np.random.default_rng(4).standard_normal(
        len(t)), RATE, 1000.0)))["onset_to_steady_db"] == pytest.approx(0, abs=1.0)  # the edge smoothed


def test_the_onset_view_is_the_envelope_ms_by_ms_around_the_start_and_the_stop():
    """The tone above: 12 dB below its steady level for its first 15 ms, then steady, then falling at 200 dB/s."""
    t = np.arange(int(0.6 * RATE)) / RATE
    start, stop = 0.1, 0.4
    envelope = np.where(t < start, 0.0, np.where(t < start + 0.015, 10 ** (-12 / 20), 1.0))
    envelope = np.where(t < stop, envelope, 10 ** (-200 * (t - stop) / 20)) * 0.3
    samples = envelope * np.sin(2 * np.pi * 1000 * t) + 1e-5 * np.random.default_rng(3).standard_normal(len(t))
    measured = recording_features(samples, RATE, 1000.0, view=True)
    assert len(measured) == MEASURED and np.array_equal(measured[:len(FEATURES)],
                                                        recording_features(samples, RATE, 1000.0))
    ms = np.arange(*VIEW_MS)
    onset, decay = np.split(measured[len(FEATURES):], 2)
    assert (onset[ms <= -2] <= START_DB).all()  # before the tone: the noise, ...
    np.testing.assert_allclose(onset[(ms >= 2) & (ms <= 12)], -12, atol=0.5)  # its first 15 ms, ...
    np.testing.assert_allclose(onset[ms >= 17], 0, atol=0.5)  # then steady
    assert onset.min() >= VIEW_RANGE_DB[0]
    # the stop is where the envelope last is within STOP_DB (3 dB: 15 ms into the fall); 200 dB/s after it
    np.testing.assert_allclose(np.diff(decay[(ms >= 2) & (ms <= 30)]), -0.2, atol=0.02)


def test_the_onset_rise_is_higher_the_weaker_the_direct_sound_before_the_build_up():
    """A direct sound 30 dB below the steady level, then the reflections building up (100 ms time constant: 10 ms
    to START_DB), against a direct sound at the steady level: the first reaches START_DB only in the build-up, the
    second at once."""
    t = np.arange(int(1.0 * RATE)) / RATE
    after = np.maximum(t - 0.1, 0.0)
    noise = 1e-5 * np.random.default_rng(5).standard_normal(len(t))
    rises = []
    for direct in (10 ** (-30 / 20), 1.0):
        envelope = np.where(t >= 0.1, np.maximum(direct, 1 - np.exp(-after / 0.1)), 0.0) * 0.3
        measured = recording_features(envelope * np.sin(2 * np.pi * 1000 * t) + noise, RATE, 1000.0, view=True)
        rise = measured[FEATURES.index("onset_rise_db")]
        onset = measured[len(FEATURES):len(FEATURES) + len(range(*VIEW_MS))]
        assert rise == pytest.approx(np.mean(onset[np.arange(*VIEW_MS) < 0]))  # the view's last 5 ms before it
        rises.append(rise)
    assert -32 < rises[0] < START_DB and rises[1] < rises[0] - 15


def test_the_baseline_folds_script_measures_the_bar_with_and_without_the_envelope(tiny_data):
    script = runpy.run_path(str(Path(__file__).resolve().parents[1] / "scripts" / "baseline_folds.py"))
    figures = script["subset_figures"](str(tiny_data), "plastic", "1000hz", 3, [1], None, True)
    assert {"best", "best without envelope", "onset_rise_db", LOGISTIC} <= set(figures)
    assert all(0.0 <= value <= 1.0 for value in figures.values())
    assert figures["best"] >= max(figures[LOGISTIC], figures["onset_rise_db"])  # chosen per fold among them
