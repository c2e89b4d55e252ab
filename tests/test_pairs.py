import numpy as np
import torch
from torch.utils.data import Subset

from audio_data import RankingPairDataset


class Recordings:
    """A stand-in recording dataset: item i is a constant spectrogram of value i."""

    def __init__(self, labels):
        self.labels = torch.tensor(labels)
        self.data = torch.arange(len(labels), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 3)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.data[i], self.labels[i]


LABELS = [0, 0, 1, 1, 2, 2, 3, 4, 5, 5]


def test_pairs_follow_the_rule():
    pairs = RankingPairDataset(Recordings(LABELS), seed=3)
    n = len(LABELS)
    assert 0 < len(pairs) <= n * (n - 1)
    for k in range(len(pairs)):
        x1, x2, target, l1, l2, i1, i2 = pairs[k]
        assert i1 != i2 and l1 != l2
        assert float(target) == (1.0 if l1 > l2 else -1.0)
        assert x1[0, 0, 0] == i1 and x2[0, 0, 0] == i2
        assert LABELS[i1] == l1 and LABELS[i2] == l2


def test_draw_count_matches_the_old_behaviour():
    labels = [0] * 5 + [1] * 5
    pairs = RankingPairDataset(Recordings(labels), seed=0)
    # n(n-1) = 90 draws of distinct recordings; 5/9 of them have different labels.
    assert abs(len(pairs) - 50) < 15
    assert set(pairs.targets.tolist()) == {-1.0, 1.0}


def test_pairs_are_reproducible_and_use_their_own_generator():
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    a = RankingPairDataset(Recordings(LABELS), seed=7)
    b = RankingPairDataset(Recordings(LABELS), seed=7)
    c = RankingPairDataset(Recordings(LABELS), seed=8)
    assert np.array_equal(np.random.get_state()[1], before)
    assert np.array_equal(a.first, b.first) and np.array_equal(a.second, b.second)
    assert not (len(a) == len(c) and np.array_equal(a.first, c.first))


def test_indices_name_recordings_through_a_subset():
    base = Recordings(LABELS)
    subset = Subset(base, [9, 0, 6, 3])
    pairs = RankingPairDataset(subset, seed=1)
    assert len(pairs) > 0
    for k in range(len(pairs)):
        x1, x2, _, l1, l2, i1, i2 = pairs[k]
        assert i1 in (9, 0, 6, 3) and i2 in (9, 0, 6, 3)
        assert int(l1) == LABELS[i1] and x1[0, 0, 0] == i1 and x2[0, 0, 0] == i2


def test_fewer_than_two_recordings_give_no_pairs():
    assert len(RankingPairDataset(Recordings([0]), seed=0)) == 0
    assert len(RankingPairDataset(Recordings([1, 1, 1]), seed=0)) == 0


def test_a_distinct_batch_holds_each_recording_once_and_expands_to_the_default_collate():
    """The trainer's batches: each recording's spectrogram once, in order of recording number; expanded to the
    half-batches, the same tensors, dtypes and shapes as default_collate of the items."""
    from torch.utils.data import default_collate

    from audio_data.pairs import pair_halves

    pairs = RankingPairDataset(Subset(Subset(Recordings(LABELS), [9, 0, 6, 3, 4, 7]), [5, 0, 1, 3, 2]), seed=2)
    chosen = [4, 0, 7, 2, 7]
    expected, distinct = default_collate([pairs[k] for k in chosen]), pairs.distinct_batch(chosen)
    x, *rest, features = distinct
    in_batch = sorted(set(expected[5].tolist()) | set(expected[6].tolist()))
    assert x[:, 0, 0, 0].tolist() == in_batch
    assert features is None  # these recordings have no physical features loaded
    assert len(distinct) == len(expected)  # the item's x1, x2 are the batch's x; the batch adds the features
    assert all(torch.equal(a, b) for a, b in zip(distinct.halves(), pair_halves(x, distinct.index1, distinct.index2)))
    for a, b in zip((*distinct.halves(), *rest), expected):
        assert a.dtype == b.dtype and torch.equal(a, b)


def test_a_view_batch_is_the_distinct_batch_as_views_into_the_recordings():
    """On the CPU training reads each recording where it is: no copy of the batch's spectrograms."""
    from audio_data.pairs import batch_to, stacked

    recordings = Recordings(LABELS)
    recordings.features = torch.arange(2.0 * len(LABELS), dtype=torch.float64).reshape(-1, 2)  # as loaded
    pairs = RankingPairDataset(Subset(recordings, [9, 0, 6, 3, 4, 7]), seed=2)
    chosen = [4, 0, 7, 2, 7]
    views, distinct = pairs.view_batch(chosen), pairs.distinct_batch(chosen)
    assert isinstance(views.x, tuple) and torch.equal(stacked(views.x), distinct.x)
    rows = sorted(set(views.index1.tolist()) | set(views.index2.tolist()))
    assert torch.equal(views.features, recordings.features[rows])  # each distinct recording's, in x's order
    for a, b in zip(views[1:], distinct[1:]):
        assert torch.equal(a, b)
    storage = recordings.data.untyped_storage().data_ptr()
    assert all(row.untyped_storage().data_ptr() == storage for row in views.x)
    assert batch_to(views.x, torch.device("cpu")) is views.x
    for a, b in zip(views.halves(), distinct.halves()):
        assert torch.equal(a, b)
    moved = batch_to(views.x, torch.device("meta"))  # another device: the batch stacked there
    assert moved.device.type == "meta" and moved.shape == distinct.x.shape
