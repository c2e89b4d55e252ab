"""--model baseline_residual: the logistic baseline on the physical features, fitted and scaled to the margin, plus
the small CNN's residual; the features reach it in training, evaluation, evaluate.py and predict.py."""

import copy
import csv
import json

import numpy as np
import pytest
import torch
from conftest import tiny_train_args
from torch import nn

import evaluate
import models.common as common
import predict
import train
from analysis.baseline_rankers import LOGISTIC
from audio_data.tone_features import FEATURES, MEASURED
from models import build_model
from models.linear_ranker import margin_scale
from models.pair_forward import separate
from utils.safe_pickle import load_pickle

K = len(FEATURES)


def fitted_model(seed: int = 0) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """A baseline-residual model fitted on 30 recordings whose first feature rises with the class, and 12 more
    recordings' spectrograms and features."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(6), 5)
    features = rng.standard_normal((30, K)) * 3
    features[:, 0] = 4 * labels + rng.standard_normal(30)
    torch.manual_seed(seed)
    model = build_model("baseline_residual")
    model.fit_baseline(features, labels, margin=10.0)
    return model, torch.randn(12, 1, 65, 40) * 15 - 40, torch.from_numpy(rng.standard_normal((12, K)) * 3)


def test_before_the_first_step_the_score_is_the_baseline_s_and_it_ranks_by_the_informative_feature():
    model, x, f = fitted_model()
    f[:, 0], f[:, 1:] = 4 * torch.arange(12.0), 0.0  # one recording per step of the informative feature
    with torch.no_grad():
        for mode in (model.train, model.eval):
            mode()
            assert torch.equal(model(x, f), model.baseline_score(f))
    assert torch.argsort(model.baseline_score(f)).tolist() == list(range(12))
    with pytest.raises(ValueError, match="physical features"):
        model(x)


def test_margin_scale_minimises_the_margin_loss_over_the_gain():
    rng = np.random.default_rng(1)
    t = rng.standard_normal(300) + 0.8  # mostly ordered right
    gain = margin_scale(t, 10.0)
    loss = lambda a: np.maximum(0.0, 10.0 - a * t).sum()  # noqa: E731
    grid = np.linspace(0.01, 200, 20001)
    assert loss(gain) <= min(loss(a) for a in grid) + 1e-9
    separable = np.array([0.5, 1.0, 2.0])
    assert margin_scale(separable, 10.0) == pytest.approx(20.0)  # the smallest gain that clears every margin
    assert margin_scale(-separable, 10.0) == 1.0


def test_eval_on_cpu_scores_chunk_by_chunk_as_the_whole_batch(monkeypatch):
    model, x, f = fitted_model(2)
    with torch.no_grad():
        model.head[3].weight.normal_()  # a residual that is not zero
        model.eval()
        whole = model._plain(x, f)
        monkeypatch.setattr(common, "CHUNK_BYTES", 1)
        torch.testing.assert_close(model(x, f), whole, rtol=1e-5, atol=1e-5)


def test_separate_training_step_equals_the_plain_step_with_each_recording_s_features():
    model, _, _ = fitted_model(3)
    with torch.no_grad():
        model.head[3].weight.normal_()
    reference = copy.deepcopy(model)
    recordings, features = torch.randn(7, 1, 65, 90) * 15 - 40, torch.randn(7, K) * 3
    index1, index2 = torch.tensor([0, 1, 2, 2, 5, 6, 1]), torch.tensor([3, 3, 0, 4, 1, 1, 6])
    target = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, 1.0, -1.0])
    loss = nn.MarginRankingLoss(margin=1.0)
    ours = loss(*separate(model.train(), tuple(recordings), index1, index2, features), target)
    plain = loss(reference.train()._plain(recordings[index1], features[index1]),
                 reference._plain(recordings[index2], features[index2]), target)
    torch.testing.assert_close(ours, plain, rtol=1e-5, atol=1e-5)
    ours.backward()
    plain.backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        if name not in ("features.0.bias", "features.4.bias"):  # before BatchNorm: no gradient, up to rounding
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_the_onset_model_starts_as_its_baseline_and_its_residual_reads_the_onset_view():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(6), 5)
    features = rng.standard_normal((30, MEASURED)) * 3
    features[:, 0] = 4 * labels + rng.standard_normal(30)
    torch.manual_seed(5)
    model = build_model("onset_residual").eval()
    model.fit_baseline(features, labels, margin=10.0)
    x, f = torch.randn(6, 1, 65, 40) * 15 - 40, torch.from_numpy(features[:6])
    with torch.no_grad():
        assert torch.equal(model(x, f), model.baseline_score(f))
        model.head[3].weight.normal_()
        other = f.clone()
        other[:, K:MEASURED] = torch.from_numpy(rng.standard_normal((6, MEASURED - K)) * 20)
        assert torch.equal(model.baseline_score(other), model.baseline_score(f))
        assert not torch.allclose(model(x, other), model(x, f))


@pytest.mark.parametrize("name", ["baseline_residual", "onset_residual"])
def test_a_run_reports_the_residual_and_evaluate_and_predict_score_as_it_did(tiny_data, tmp_path, name):
    """Two runs with the same seed give the same history; the baseline part is the logistic baseline fitted on the
    same training recordings (the same all-pairs accuracy), scaled so that it orders the tiny recordings (whose
    level alone separates the classes) at or beyond the margin: the loss is zero from the start; evaluate.py and
    predict.py score the validation recordings as the run's own evaluation did."""
    histories = []
    for run_name in ("a", "b"):
        argv = tiny_train_args(tiny_data, tmp_path / run_name, "--frequency", "1000hz", "--model", name)
        assert train.main(argv) == 0
        (run,) = (tmp_path / run_name / "model_checkpoints").iterdir()
        history = load_pickle(next(run.glob("training_history_*.pkl")))
        history.pop("args")
        histories.append(history)
    assert histories[0] == histories[1]
    assert max(histories[0]["train_loss_main"]) < 1e-6  # zero but for the rounding of the pair at the margin
    summary = json.loads((run / "summary.json").read_text())["evaluation"]
    metrics = json.loads((run / "eval_best" / "metrics.json").read_text())
    assert summary["baseline_part_pairwise_accuracy"] == metrics["baselines"]["rankers"][LOGISTIC]["pairwise_accuracy"]
    assert 0.0 <= summary["residual_share"] <= 1.0 and 0.0 <= summary["pairs_reordered_by_residual"] <= 1.0
    checkpoint = torch.load(run / "model_epoch_2.pt", weights_only=True)
    assert checkpoint["model_state_dict"]["baseline_weights"].abs().sum() > 0
    own = {row["path"]: row["score"] for row in read_csv(run / "eval_best" / "scores.csv")}
    assert evaluate.main(["--checkpoint", str(run / "model_best.pt"), "--out", str(tmp_path / "ev")]) == 0
    assert {row["path"]: row["score"] for row in read_csv(tmp_path / "ev" / "scores.csv")} == own
    out = tmp_path / "predictions.csv"
    assert predict.main(["--checkpoint", str(run / "model_best.pt"), *own, "--out", str(out)]) == 0
    assert {row["path"]: row["score"] for row in read_csv(out)} == own


def test_epoch_0_is_the_untrained_model_and_stays_the_best_model_while_no_epoch_beats_it(tiny_data, tmp_path):
    """A baseline-residual run records the untrained model (the fitted baseline) as epoch 0, a candidate for
    model_best.pt: on the tiny data the baseline's training loss is zero already, so no trained epoch improves its
    validation loss and the best model is the baseline itself (head untouched, residual share 0), evaluated beside
    the last model."""
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--model", "baseline_residual")
    assert train.main(argv) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    history = load_pickle(next(run.glob("training_history_*.pkl")))
    assert history["epoch"] == [0, 1, 2] and history["train_loss_main"][0] < 1e-6
    assert [int(row["epoch"]) for row in read_csv(run / "metrics.csv")] == [0, 1, 2]
    assert sorted(p.name for p in run.glob("model_*.pt")) == ["model_best.pt", "model_epoch_1.pt", "model_epoch_2.pt"]
    best = torch.load(run / "model_best.pt", weights_only=True)
    assert best["epoch"] == 0 and not best["model_state_dict"]["head.3.weight"].any()
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs_done"] == 2 and summary["monitor"]["best_epoch"] == 0
    evaluation = summary["evaluation"]
    assert (evaluation["model"], evaluation["best_epoch"], evaluation["residual_share"]) == ("best", 0, 0.0)
    assert evaluation["pairwise_accuracy"] == evaluation["baseline_part_pairwise_accuracy"]
    assert (run / "eval_best" / "metrics.json").is_file() and (run / "eval" / "metrics.json").is_file()
