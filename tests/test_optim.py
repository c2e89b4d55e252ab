"""--optimizer, --scheduler, --warmup-epochs and --grad-clip-norm: the rates they give, clipping, and resume."""

import csv

import pytest
import torch
from conftest import tiny_train_args

import train
from training.loop import build_training, run_data, train_step
from utils.safe_pickle import load_pickle


def run_folder(save_dir):
    (folder,) = (save_dir / "model_checkpoints").iterdir()
    return folder


def rates(save_dir) -> list[float]:
    with open(run_folder(save_dir) / "metrics.csv", newline="") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


@pytest.mark.parametrize("flags, expected", [
    (("--scheduler", "none", "--warmup-epochs", "2"), [0.005, 0.01, 0.01]),
    (("--scheduler", "step", "--step-size", "1", "--step-gamma", "0.5"), [0.005, 0.0025, 0.00125]),
    (("--scheduler", "step", "--step-size", "2", "--warmup-epochs", "1", "--optimizer", "adamw"), [0.01, 0.01, 0.005]),
])
def test_the_rate_of_each_epoch_follows_the_warm_up_and_the_schedule(tiny_data, tmp_path, flags, expected):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "3", "--learning-rate", "0.01",
                           *flags)
    assert train.main(argv) == 0
    assert rates(tmp_path) == pytest.approx(expected)


def test_a_resumed_run_with_sgd_cosine_warm_up_and_clipping_ends_as_the_whole_run(tiny_data, tmp_path):
    flags = ("--frequency", "500hz", "--optimizer", "sgd", "--nesterov", "--scheduler", "cosine", "--warmup-epochs",
             "1", "--grad-clip-norm", "0.5", "--learning-rate", "0.05", "--min-learning-rate", "0.001")
    assert train.main(tiny_train_args(tiny_data, tmp_path / "whole", *flags, "--epochs", "3")) == 0
    assert train.main(tiny_train_args(tiny_data, tmp_path / "halves", *flags, "--epochs", "1")) == 0
    assert train.main(["--resume", str(run_folder(tmp_path / "halves")), "--epochs", "3", "--no-progress"]) == 0
    histories = [load_pickle(next(run_folder(tmp_path / name).glob("training_history_*.pkl")))
                 for name in ("whole", "halves")]
    for history in histories:
        history["args"].pop("save_dir")
    assert histories[0] == histories[1]
    weights = [torch.load(run_folder(tmp_path / name) / "model_epoch_3.pt", weights_only=True)["model_state_dict"]
               for name in ("whole", "halves")]
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert rates(tmp_path / "whole") == pytest.approx([0.05, 0.0255, 0.001])  # warm-up, then cosine over 2 epochs


def test_clipping_bounds_the_step_of_plain_sgd(tiny_data, tmp_path):
    base = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--optimizer", "sgd", "--momentum", "0",
                           "--weight-decay", "0", "--learning-rate", "1.0")
    moves = []
    for extra in ((), ("--grad-clip-norm", "0.01")):
        cfg = train.parse_args([*base, *extra])
        torch.manual_seed(0)
        data, t = run_data(cfg), build_training(cfg, torch.device("cpu"))
        before = torch.cat([p.detach().flatten().clone() for p in t.model.parameters()])
        train_step(t, next(iter(data.train_loader)), torch.device("cpu"))
        moves.append(float((torch.cat([p.detach().flatten() for p in t.model.parameters()]) - before).norm()))
    assert moves[1] <= 0.01 * (1 + 1e-4) < moves[0]
