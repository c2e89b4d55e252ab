import pytest
import torch
from torch import nn

from losses import build_loss
from losses.ghm_loss import GHMRankingLoss


def batch(n=64, seed=0, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    s1 = (scale * torch.randn(n, generator=g)).requires_grad_()
    s2 = (scale * torch.randn(n, generator=g)).requires_grad_()
    target = torch.where(torch.rand(n, generator=g) > 0.5, 1.0, -1.0)
    return s1, s2, target


def test_alpha_zero_is_exactly_the_standard_loss():
    s1, s2, t = batch()
    ghm = GHMRankingLoss(margin=1.0, bins=10, alpha=0.0)(s1, s2, t)
    grad_ghm = torch.autograd.grad(ghm, (s1, s2))
    standard = nn.MarginRankingLoss(margin=1.0)(s1, s2, t)
    grad_standard = torch.autograd.grad(standard, (s1, s2))
    assert ghm.item() == standard.item()
    assert all(torch.equal(a, b) for a, b in zip(grad_ghm, grad_standard))


def test_alpha_one_gives_the_paper_weights():
    s1, s2, t = batch(seed=1)
    loss = GHMRankingLoss(margin=1.0, bins=5, alpha=1.0)
    loss(s1, s2, t)
    g = torch.sigmoid(1.0 - t * (s1 - s2)).detach()
    bins = torch.clamp((g * 5).long(), max=4)
    counts = torch.bincount(bins, minlength=5).float()
    n_nonempty = int((counts > 0).sum())
    expected = len(g) / (n_nonempty * counts[bins])
    torch.testing.assert_close(loss.last_stats["weight"], expected)
    torch.testing.assert_close(loss.last_stats["bin_counts"], counts)


@pytest.mark.parametrize("alpha", [0.0, 0.5, 0.75, 1.0, 2.0])
def test_weights_average_one(alpha):
    s1, s2, t = batch(seed=2)
    loss = GHMRankingLoss(margin=1.0, bins=10, alpha=alpha)
    loss(s1, s2, t)
    assert loss.last_stats["weight"].mean().item() == pytest.approx(1.0, rel=1e-6)
    assert torch.all(loss.last_stats["bin_weights"][loss.last_stats["bin_counts"] == 0] == 0)


def test_a_hard_pair_with_target_minus_one_lands_in_a_high_bin():
    loss = GHMRankingLoss(margin=1.0, bins=10, alpha=0.75)
    # target -1 says s1 < s2, but s1 is far higher: a hard pair.
    loss(torch.tensor([5.0, -5.0]), torch.tensor([-5.0, 5.0]), torch.tensor([-1.0, -1.0]))
    assert loss.last_stats["bin"].tolist() == [9, 0]
    assert loss.last_stats["g"][0] > 0.99 and loss.last_stats["g"][1] < 0.01


def test_g_of_one_goes_to_the_last_bin():
    loss = GHMRankingLoss(margin=100.0, bins=4, alpha=1.0)
    loss(torch.tensor([0.0]), torch.tensor([0.0]), torch.tensor([1.0]))
    assert loss.last_stats["g"].item() == 1.0 and loss.last_stats["bin"].item() == 3


def test_no_gradient_flows_through_the_weights():
    s1, s2, t = batch(seed=3)
    loss = GHMRankingLoss(margin=1.0, bins=10, alpha=0.75)
    value = loss(s1, s2, t)
    grad_s1, = torch.autograd.grad(value, s1)
    w = loss.last_stats["weight"]
    active = (1.0 - t * (s1 - s2) > 0).float().detach()
    torch.testing.assert_close(grad_s1, -w * t * active / len(t))
    assert not w.requires_grad


def test_loss_value_is_the_weighted_mean():
    s1, s2, t = batch(seed=4)
    loss = GHMRankingLoss(margin=2.0, bins=7, alpha=0.5)
    value = loss(s1, s2, t)
    manual = (loss.last_stats["weight"] * torch.clamp(2.0 - t * (s1 - s2), min=0)).mean()
    torch.testing.assert_close(value, manual)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="bins must be an integer >= 1"):
        GHMRankingLoss(bins=0)
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        GHMRankingLoss(alpha=-0.1)
    loss = GHMRankingLoss()
    with pytest.raises(ValueError, match="targets must be -1 or \\+1"):
        loss(torch.zeros(3), torch.zeros(3), torch.tensor([1.0, 0.0, -1.0]))
    with pytest.raises(ValueError, match="one shape"):
        loss(torch.zeros(3), torch.zeros(4), torch.ones(3))
    with pytest.raises(ValueError, match="unknown loss type"):
        build_loss("focal", 1.0)


def test_build_loss_selects_by_type():
    assert isinstance(build_loss("standard", 2.0), nn.MarginRankingLoss)
    ghm = build_loss("ghm", 2.0, bins=5, alpha=0.5)
    assert isinstance(ghm, GHMRankingLoss) and (ghm.margin, ghm.bins, ghm.alpha) == (2.0, 5, 0.5)


def test_momentum_starts_from_the_first_batch_and_averages_after():
    loss = GHMRankingLoss(margin=1.0, bins=5, alpha=1.0, momentum=0.75)
    plain = GHMRankingLoss(margin=1.0, bins=5, alpha=1.0)
    first, second = batch(seed=5), batch(seed=6)
    loss(*first)
    plain(*first)
    torch.testing.assert_close(loss.last_stats["weight"], plain.last_stats["weight"])  # not inflated by 1/(1-M)
    counts1 = plain.last_stats["bin_counts"]
    loss(*second)
    counts2 = loss.last_stats["bin_counts"]
    torch.testing.assert_close(loss.density_state, 0.75 * counts1 + 0.25 * counts2)
    raw = torch.where(counts2 > 0, loss.density_state.pow(-1.0), torch.zeros(5))
    torch.testing.assert_close(loss.last_stats["bin_weights"], raw * 64 / (counts2 * raw).sum())


def test_momentum_state_is_not_updated_in_eval_mode_and_lives_in_the_state_dict():
    loss = GHMRankingLoss(margin=1.0, bins=5, momentum=0.5)
    loss(*batch(seed=7))
    state = loss.density_state.clone()
    loss.eval()
    loss(*batch(seed=8))
    assert torch.equal(loss.density_state, state)
    restored = GHMRankingLoss(margin=1.0, bins=5, momentum=0.5)
    restored.load_state_dict(loss.state_dict())
    assert torch.equal(restored.density_state, state) and bool(restored.density_started)


def test_temperature_divides_the_slack():
    s1, s2, t = batch(seed=9, scale=5.0)
    loss = GHMRankingLoss(margin=10.0, bins=10, temperature=4.0)
    loss(s1, s2, t)
    torch.testing.assert_close(loss.last_stats["g"], torch.sigmoid((10.0 - t * (s1 - s2)) / 4.0).detach())


def lone_pair_batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n - 1 pairs with the same difficulty and one far away from them."""
    s1 = torch.zeros(n)
    s1[0] = 5.0
    return s1, torch.zeros(n), torch.ones(n)


@pytest.mark.parametrize("max_weight", [1.0, 2.0, 4.0])
def test_max_weight_caps_a_lone_pair_and_keeps_the_mean(max_weight):
    uncapped = GHMRankingLoss(margin=1.0, bins=10, alpha=1.0)
    uncapped(*lone_pair_batch())
    assert uncapped.last_stats["weight"][0] == pytest.approx(16.0)  # 32 / (2 nonempty bins · 1 pair)
    loss = GHMRankingLoss(margin=1.0, bins=10, alpha=1.0, max_weight=max_weight)
    loss(*lone_pair_batch())
    w = loss.last_stats["weight"]
    assert w[0].item() == pytest.approx(max_weight)
    assert w.mean().item() == pytest.approx(1.0, rel=1e-6)
    torch.testing.assert_close(w[1:], torch.full((31,), (32 - max_weight) / 31))


def test_a_cap_that_does_not_bind_changes_nothing():
    s1, s2, t = batch(seed=10)
    free = GHMRankingLoss(margin=1.0, bins=10, alpha=0.75)
    capped = GHMRankingLoss(margin=1.0, bins=10, alpha=0.75, max_weight=1000.0)
    assert torch.equal(free(s1, s2, t), capped(s1, s2, t))


def test_non_finite_scores_leave_counts_weights_and_state_finite():
    s1, s2, t = batch(seed=11)
    s1 = s1.detach().clone()
    s1[:3] = torch.tensor([float("nan"), float("inf"), -float("inf")])
    loss = GHMRankingLoss(margin=1.0, bins=10, alpha=1.0, momentum=0.9, max_weight=10.0)
    loss(s1, s2, t)
    stats = loss.last_stats
    assert stats["bin_counts"].sum() == 64 and torch.isfinite(stats["bin_weights"]).all()
    assert torch.isfinite(stats["weight"]).all() and torch.isfinite(loss.density_state).all()


@pytest.mark.parametrize("kwargs", [{"momentum": 1.0}, {"momentum": -0.1}, {"temperature": 0.0},
                                    {"max_weight": 0.5}])
def test_bad_new_parameters_are_rejected(kwargs):
    with pytest.raises(ValueError):
        GHMRankingLoss(**kwargs)
