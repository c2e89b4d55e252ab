"""Pooled subsets: one run over several frequencies (and materials), each recording's subset known to the pairs,
the split, the baseline-residual model and the evaluation, which reports every subset on its own."""

import csv
import json
import statistics

import numpy as np
import pytest
import torch
from conftest import assert_baseline_over_folds, tiny_train_args
from torch.utils.data import Subset

import config
import evaluate
import predict
import train
from audio_data.loading import split_recordings
from audio_data.pairs import RankingPairDataset
from audio_data.spectrogram_dataset import SpectrogramDatasetWithMaterial
from audio_data.tone_features import FEATURES, MEASURED, VIEW_POINTS
from models import build_model, checkpoint_model
from utils.errors import InputError

K = len(FEATURES)


def pooled(root, frequency="500hz,1000hz"):
    return SpectrogramDatasetWithMaterial(root, config.CLASSES, None, frequency, "plastic", n_fft=128, hop_length=64)


def test_subsets_are_each_material_with_each_frequency():
    assert config.subset_names("plastic,box", "500hz,1000hz") == ["plastic_500hz", "plastic_1000hz", "box_500hz",
                                                                 "box_1000hz"]
    assert config.subset_names("plastic", "1000hz") == ["plastic_1000hz"]


def test_a_pooled_dataset_knows_each_recording_s_subset_and_its_features_end_in_one_hot_columns(tiny_data):
    recordings = pooled(tiny_data)
    assert recordings.subset_names == ["plastic_500hz", "plastic_1000hz"]
    assert len(recordings) == 36
    for path, index in zip(recordings.paths, recordings.subset_index.tolist()):
        assert f"_{recordings.subset_names[index].split('_')[1]}_" in path
    features = recordings.load_features()
    assert features.shape == (36, MEASURED + 2)
    assert torch.equal(features[:, MEASURED:].argmax(dim=1), recordings.subset_index)
    assert torch.equal(features[:, MEASURED:].sum(dim=1), torch.ones(36, dtype=features.dtype))
    alone = pooled(tiny_data, "1000hz")  # one subset: the measured columns only, measured alike
    assert alone.load_features().shape == (18, MEASURED)
    at = {path: row for path, row in zip(recordings.paths, features)}
    assert torch.equal(torch.stack([at[path][:MEASURED] for path in alone.paths]), alone.features)
    with pytest.raises(InputError, match="no recordings of plastic_7000hz"):
        pooled(tiny_data, "1000hz,7000hz")


def test_pairs_within_a_subset_are_the_same_draws_without_those_across_subsets(tiny_data):
    recordings = pooled(tiny_data)
    chosen = Subset(recordings, list(range(0, 36, 2)))
    every, within = RankingPairDataset(chosen, seed=4), RankingPairDataset(chosen, seed=4, within_subset=True)
    subset = recordings.subset_index.numpy()
    first, second = (within.recording_indices[side] for side in (within.first, within.second))
    assert len(within) and (subset[first] == subset[second]).all()
    across = subset[every.recording_indices[every.first]] != subset[every.recording_indices[every.second]]
    assert across.any()
    assert list(zip(within.first, within.second)) == [pair for pair, cross in zip(zip(every.first, every.second),
                                                                                  across) if not cross]


def test_folds_split_each_class_of_each_subset_alike(tiny_data):
    recordings = pooled(tiny_data)
    strata = list(zip(recordings.labels.tolist(), recordings.subset_index.tolist()))
    for k in (1, 2, 3):
        test = split_recordings(recordings, 5, fold=(k, 3)).test
        assert sorted(strata[i] for i in test) == sorted(set(strata))  # three of each: one of each in each fold


def features_of(subsets: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Recordings of six classes in `subsets` subsets, whose first feature rises with the class at a slope and
    offset of each subset's own; the features end in one-hot columns where there are several subsets."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.repeat(np.arange(6), 4), subsets)
    subset = np.repeat(np.arange(subsets), 24)
    physical = rng.standard_normal((len(labels), K)) * 3
    physical[:, 0] = (1 + 3 * subset) * labels + 20 * subset + rng.standard_normal(len(labels))
    view = rng.standard_normal((len(labels), VIEW_POINTS))
    beside = np.eye(subsets)[subset] if subsets > 1 else np.zeros((len(labels), 0))
    return np.concatenate([physical, view, beside], axis=1), labels


def test_the_baseline_of_a_pooled_model_is_each_subset_s_own_fit_and_the_model_starts_as_it():
    features, labels = features_of(2, 6)
    model = build_model("baseline_residual", 2)
    model.fit_baseline(features, labels, margin=10.0)
    for s in (0, 1):
        rows = features[:, MEASURED + s] == 1
        alone = build_model("baseline_residual")
        alone.fit_baseline(features[rows, :MEASURED], labels[rows], margin=10.0)
        for name in ("feature_mean", "feature_std", "baseline_weights"):
            torch.testing.assert_close(getattr(model, name)[s], getattr(alone, name)[0])
        with torch.no_grad():
            torch.testing.assert_close(model.baseline_score(torch.from_numpy(features[rows])),
                                       alone.baseline_score(torch.from_numpy(features[rows, :MEASURED])))
    x, f = torch.randn(5, 1, 65, 40), torch.from_numpy(features[::10][:5])
    with torch.no_grad():
        assert torch.equal(model.eval()(x, f), model.baseline_score(f))


def test_a_checkpoint_of_an_earlier_feature_set_is_refused_by_name(tmp_path):
    features, labels = features_of(1, 7)
    model = build_model("baseline_residual")
    model.fit_baseline(features, labels, margin=10.0)
    state = {name: value[..., :K - 1] if name in ("feature_mean", "feature_std", "baseline_weights") else value
             for name, value in model.state_dict().items()}  # before onset_rise_db (2026-12-07): six features
    checkpoint = {"model_state_dict": state, "args": {"material": "plastic", "frequency": "1000hz"}}
    with pytest.raises(InputError, match=f"old.pt: its model reads {K - 1} physical features, and this version "
                                         f"measures {K} "):
        checkpoint_model(checkpoint, "baseline_residual", tmp_path / "old.pt", torch.device("cpu"))


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_a_pooled_run_reports_each_subset_against_its_own_baseline_and_scores_its_files_again(tiny_data, tmp_path,
                                                                                              capsys):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz,1000hz", "--model", "baseline_residual",
                           "--pair-scope", "subset", "--folds", "2", "--epochs", "1")
    assert train.main(argv) == 0
    (folds,) = (tmp_path / "folds").iterdir()
    summary = json.loads((folds / "folds_summary.json").read_text())
    runs = sorted((tmp_path / "model_checkpoints").iterdir())
    assert len(runs) == 2 and all("plastic_500hz+1000hz_ghm" in run.name for run in runs)
    over = summary["over_folds_per_subset"]
    assert list(over) == ["plastic_500hz", "plastic_1000hz"]
    for name, figures in over.items():
        values = [row["per_subset"][name]["vs_best_baseline"] for row in summary["per_fold"]]
        assert figures["vs_best_baseline"]["mean"] == pytest.approx(statistics.mean(values))
        row = summary["per_fold"][0]["per_subset"][name]
        assert row["vs_best_baseline"] == pytest.approx(row["pairwise_accuracy"]
                                                        - row["best_baseline_pairwise_accuracy"])
        assert 0.0 <= row["residual_share"] <= 1.0
        assert_baseline_over_folds(figures["best_baseline_over_folds"],
                                   [row["per_subset"][name] for row in summary["per_fold"]], figures)
    assert "plastic_1000hz: pairwise accuracy" in capsys.readouterr().out
    metrics = json.loads((runs[0] / "eval" / "metrics.json").read_text())
    assert set(metrics["baselines"]["per_subset"]) == {"plastic_500hz", "plastic_1000hz"}
    assert set(metrics["per_subset"]) == {"plastic_500hz", "plastic_1000hz"}
    own = {row["path"]: row["score"] for row in read_csv(runs[0] / "eval" / "scores.csv")}
    out = tmp_path / "predictions.csv"
    assert predict.main(["--checkpoint", str(runs[0] / "model_epoch_1.pt"), *own, "--out", str(out)]) == 0
    assert {row["path"]: row["score"] for row in read_csv(out)} == own
    odd = tmp_path / "odd.wav"
    odd.write_bytes(open(next(iter(own)), "rb").read())
    assert predict.main(["--checkpoint", str(runs[0] / "model_epoch_1.pt"), str(odd), "--out",
                         str(tmp_path / "p2.csv")]) == 1
    assert "must say which of them it is" in capsys.readouterr().err
    assert evaluate.main(["--checkpoint", str(runs[0] / "model_epoch_1.pt"), "--frequency", "500hz"]) == 1
    assert "the model pools plastic_500hz, plastic_1000hz" in capsys.readouterr().err
