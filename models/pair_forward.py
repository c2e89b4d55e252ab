"""How a batch of pairs goes through the model: `separate` (model(x1), model(x2)) or `unique`.

A training batch holds each of its recordings once (`audio_data.pairs.RankingPairDataset.distinct_batch`): x, the
distinct recordings in order of recording number, with the pairs' recording numbers index1, index2. On the CPU x is a
tuple of views into the recordings (`view_batch`): models with `reads_views` take it as it is, the others get it
stacked.

`separate` scores the two half-batches x1, x2 as model(x1), model(x2) would: in training mode BatchNorm normalises
each half-batch, where a repeated recording counts as often as it appears. A model with `score_pairs` computes
that without expanding x; any other gets the half-batches expanded.

`unique` sends each distinct recording through the model once and gathers the pair scores from the results: a
batch of 32 pairs from 37 training recordings holds about 31 distinct recordings instead of 64. In training mode
BatchNorm then normalises over those distinct recordings, once each; in eval mode the scores are the same either way.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn

from audio_data.pairs import batch_rows, pair_halves, stacked
from models.common import score

Batch = torch.Tensor | Sequence[torch.Tensor]  # a batch's distinct recordings, stacked or as views


def separate(model: nn.Module, x: Batch, index1: torch.Tensor, index2: torch.Tensor,
             features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """model(x1), model(x2) of the half-batches; a model with `score_pairs` computes the same without repeating
    work. `features`: x's rows' physical features, for a model that reads them."""
    if not model.training:  # BatchNorm's running statistics: each score is the recording's own
        return unique(model, x, index1, index2, features)
    if hasattr(model, "score_pairs"):
        return model.score_pairs(_model_input(model, x), index1, index2, features)
    (x1, x2), (f1, f2) = pair_halves(x, index1, index2), pair_halves(features, index1, index2)
    return score(model, x1, f1), score(model, x2, f2)


def unique(model: nn.Module, x: Batch, index1: torch.Tensor, index2: torch.Tensor,
           features: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    scores = score(model, _model_input(model, x), features)
    _, slots = batch_rows(index1, index2)
    scores = scores[slots.to(scores.device)]
    return scores[:len(index1)], scores[len(index1):]


def _model_input(model: nn.Module, x: Batch) -> Batch:
    return x if getattr(model, "reads_views", False) else stacked(x)


PAIR_FORWARD: dict[str, Callable] = {"separate": separate, "unique": unique}


class PairScorer(nn.Module):
    """A model and a pair-forward mode as one module: DistributedDataParallel then sees one forward per step."""

    def __init__(self, model: nn.Module, mode: str = "separate"):
        super().__init__()
        self.model = model
        self.mode = mode

    def forward(self, x: Batch, index1: torch.Tensor, index2: torch.Tensor, features: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        return PAIR_FORWARD[self.mode](self.model, x, index1, index2, features)
