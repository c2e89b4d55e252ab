"""How a batch of pairs goes through the model: `separate` (model(x1), model(x2)) or `unique`.

`unique` sends each distinct recording of the batch through the model once and gathers the pair
scores from the results: a batch of 32 pairs from 37 training recordings holds about 31 distinct
recordings instead of 64. In training mode BatchNorm then normalises over those distinct recordings,
once each, instead of over two half-batches (x1, then x2) that can repeat a recording; in eval mode
the scores are the same either way.
"""

from collections.abc import Callable

import torch
from torch import nn


def first_slots(index1: torch.Tensor, index2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each distinct recording of a pair batch (by dataset index, in order of index) the first of the 2B slots,
    x1's then x2's, that holds it; and for each slot, the distinct recording it holds."""
    index = torch.cat([index1, index2])
    rows, inverse = torch.unique(index, return_inverse=True)
    positions = torch.arange(len(index))
    first = torch.full((len(rows),), len(index)).scatter_reduce_(0, inverse, positions, "amin")
    return first, inverse


def separate(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, index1: torch.Tensor,
             index2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """model(x1), model(x2); a model with `score_pairs` computes the same without repeating work."""
    if not model.training:  # BatchNorm's running statistics: each score is the recording's own
        return unique(model, x1, x2, index1, index2)
    if hasattr(model, "score_pairs"):
        return model.score_pairs(x1, x2, index1, index2)
    return model(x1), model(x2)


def unique(model: nn.Module, x1: torch.Tensor, x2: torch.Tensor, index1: torch.Tensor,
           index2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    first, inverse = first_slots(index1, index2)
    from_first = first < len(index1)
    x = x1.new_empty((len(first), *x1.shape[1:]))
    x[from_first.to(x.device)] = x1[first[from_first].to(x1.device)]
    x[(~from_first).to(x.device)] = x2[(first[~from_first] - len(index1)).to(x2.device)]
    scores = model(x)[inverse.to(x.device)]
    return scores[:len(index1)], scores[len(index1):]


PAIR_FORWARD: dict[str, Callable] = {"separate": separate, "unique": unique}


class PairScorer(nn.Module):
    """A model and a pair-forward mode as one module: DistributedDataParallel then sees one forward per step."""

    def __init__(self, model: nn.Module, mode: str = "separate"):
        super().__init__()
        self.model = model
        self.mode = mode

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, index1: torch.Tensor,
                index2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return PAIR_FORWARD[self.mode](self.model, x1, x2, index1, index2)
