"""--time-crop: windows per recording, reproducible from (seed, epoch, batch), whole recordings elsewhere."""

import torch
from conftest import tiny_train_args

import train
from audio_data.pairs import PairBatch, pair_halves
from audio_data.time_crop import TimeCrop
from utils.safe_pickle import load_pickle


def batch_of(index1: list[int], index2: list[int], frames: int = 40) -> PairBatch:
    """Distinct pair batches whose recording r is the ramp r * 1000 + frame number, so a window shows where it
    starts."""
    rows = sorted(set(index1) | set(index2))
    x = torch.stack([r * 1000 + torch.arange(frames, dtype=torch.float32).expand(1, 3, frames) for r in rows])
    return PairBatch(x, torch.ones(len(index1)), None, None, torch.tensor(index1), torch.tensor(index2))


def starts(x: torch.Tensor) -> list[int]:
    return [int(v) % 1000 for v in x[:, 0, 0, 0]]


def test_a_recording_has_one_window_wherever_it_appears_in_the_batch():
    crop = TimeCrop(0.25, seed=7)
    cropped = crop(batch_of([0, 1, 2, 1], [3, 0, 1, 4]), epoch=1, batch_number=1)
    x = cropped.x
    assert x.shape == (5, 1, 3, 10) and cropped.label1 is None and cropped.index1.tolist() == [0, 1, 2, 1]
    x1, x2 = pair_halves(x, cropped.index1, cropped.index2)
    for half in (x1, x2):  # each window is a contiguous slice of its own recording
        torch.testing.assert_close(half - half[..., :1], torch.arange(10.0).expand_as(half))
    first, second = starts(x1), starts(x2)
    assert first[1] == first[3] == second[2] and first[0] == second[1]
    assert all(0 <= s <= 30 for s in first + second)


def test_windows_follow_seed_epoch_and_batch_and_nothing_else():
    batch = batch_of([0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11])
    crop = TimeCrop(0.5, seed=3)
    draw = [starts(crop(batch, epoch, number)[0]) for epoch, number in ((1, 1), (1, 1), (1, 2), (2, 1))]
    assert draw[0] == draw[1] and draw[0] != draw[2] and draw[0] != draw[3]
    assert draw[0] == starts(TimeCrop(0.5, seed=3)(batch, 1, 1)[0]) != starts(TimeCrop(0.5, seed=4)(batch, 1, 1)[0])


def test_a_fraction_of_one_leaves_the_batch_as_it_is():
    batch = batch_of([0, 1], [2, 3])
    assert TimeCrop(1.0, seed=0)(batch, 1, 1) is batch


def test_cli_trains_on_windows_and_validates_on_whole_recordings(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--epochs", "1", "--time-crop", "0.5")
    assert train.main(argv) == 0
    (folder,) = (tmp_path / "model_checkpoints").iterdir()
    history = load_pickle(next(folder.glob("training_history_*.pkl")))
    assert history["args"]["time_crop"] == 0.5
    plain = tmp_path / "plain"
    assert train.main(tiny_train_args(tiny_data, plain, "--frequency", "500hz", "--epochs", "1")) == 0
    (other,) = (plain / "model_checkpoints").iterdir()
    assert load_pickle(next(other.glob("training_history_*.pkl")))["train_loss_main"] != history["train_loss_main"]
