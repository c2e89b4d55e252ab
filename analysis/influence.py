"""Which training recordings helped, which hurt: TracIn-CP influence (Pruthi et al. 2020) from a run's checkpoints.

    python -m analysis.influence <run name or run folder> [--save-dir saved_models]

For every checkpoint k the run saved (model_epoch_<N>.pt, N ≥ 1) with its learning rate η_k, a training pair
p = (a, b) with target t and score difference d = s_a − s_b has the loss w_p·max(0, margin − t·d), which depends
on the parameters only through the two scores: ∂ℓ_p/∂s_a = −∂ℓ_p/∂s_b = c_p = −w_p·t·1[margin − t·d > 0]
(w_p: the GHM weight of the pair in a GHM run, 1 otherwise). The gradient of the training loss L = Σ_p ℓ_p
therefore splits exactly into one share per recording, what that recording's own forward pass contributes:
    ∇L = Σ_r g_r,   g_r = α_r ∇s_r,   α_r = ∂L/∂s_r = Σ_{p: a=r} c_p − Σ_{p: b=r} c_p
With the recordings' score gradients ∇s_r (eval-mode BatchNorm, one backward pass per recording and checkpoint):
    self-influence of training recording r              Σ_k η_k ‖g_r(θ_k)‖² = Σ_k η_k α_r² ‖∇s_r‖²
    influence of training recording r on validation v   Σ_k η_k g_r · h_v,   h_v = β_v ∇s_v
where β_v = ∂L_val/∂s_v over every pair of validation recordings of different classes (standard margin loss).
Positive: a proponent (a step on r lowers v's loss); negative: an opponent.
    validation harm of r                                 −Σ_v influence(r, v) = −Σ_k η_k g_r · ∇L_val
how much training on r raises the validation loss altogether: the default ranking. docs/influence.md, the
label-noise experiments: both find recordings labelled two classes or more from their angle (sums over a
recording's pairs, tried first, did not), neither finds one labelled a class off.
"""

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

from analysis.ghm_runs import hard_recordings
from utils.ghm_stats import load_ghm_stats
from audio_data.loading import load_recordings, run_split
from audio_data.pairs import RankingPairDataset
from losses import build_loss, ghm_options
from models import build_model
from models.common import reads_features, score as model_score
from config import LossConfig, RunConfig
from utils.checkpoints import RESUME_KEYS, load_checkpoint, stored_config
from utils.errors import InputError, run_command
from utils.io_utils import atomic_path, output_folder, save_json
from utils.plotting import save_figure, subplots
from utils.run_paths import CHECKPOINTS, RunPaths, analysis_folder, epoch_checkpoints

RANKINGS = ("validation-harm", "self-influence")  # what ranks the training recordings in influence.csv and the plot
HARD_BINS = 2


@dataclass
class Pairs:
    """Pairs as recording indices (into the run's recordings) with their targets."""
    first: np.ndarray
    second: np.ndarray
    target: np.ndarray


def training_pairs(recordings, train: list[int], seed: int, within_subset: bool = False) -> Pairs:
    """The run's own training pair draws (as its loader sees them, repeats included; `within_subset`: its
    --pair-scope subset)."""
    pairs = RankingPairDataset(Subset(recordings, train), seed=seed, within_subset=within_subset)
    index = pairs.recording_indices
    return Pairs(index[pairs.first], index[pairs.second], pairs.targets.astype(np.float64))


def validation_pairs(labels: np.ndarray, val: list[int]) -> Pairs:
    """Every pair of validation recordings of different classes, once."""
    first, second = zip(*[(a, b) for i, a in enumerate(val) for b in val[i + 1:] if labels[a] != labels[b]])
    first, second = np.array(first), np.array(second)
    return Pairs(first, second, np.where(labels[first] > labels[second], 1.0, -1.0))


def score_gradients(model: torch.nn.Module, data: torch.Tensor, features: torch.Tensor | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Each recording's score and the gradient of its score with respect to every parameter, [R] and [R, P]
    (`features`: the recordings' physical features, for a model that reads them)."""
    model.eval()
    parameters = [p for p in model.parameters() if p.requires_grad]
    scores, rows = [], []
    for i, x in enumerate(data):
        model.zero_grad(set_to_none=True)
        score = model_score(model, x[None].float(), None if features is None else features[i:i + 1])[0]
        score.backward()
        scores.append(score.item())
        rows.append(torch.cat([p.grad.flatten() for p in parameters]).double().numpy())
    return np.array(scores), np.stack(rows)


def pair_coefficients(pairs: Pairs, scores: np.ndarray, margin: float, weights: np.ndarray | None) -> np.ndarray:
    """c_p = ∂(w_p·max(0, margin − t·d))/∂d for each pair."""
    d = scores[pairs.first] - scores[pairs.second]
    active = (margin - pairs.target * d) > 0
    return -(1.0 if weights is None else weights) * pairs.target * active


def score_coefficients(pairs: Pairs, c: np.ndarray, n: int) -> np.ndarray:
    """α [n]: ∂(Σ_p ℓ_p)/∂s_r for every recording r, from the pairs' coefficients c_p = ∂ℓ_p/∂s_a."""
    return np.bincount(pairs.first, c, n) - np.bincount(pairs.second, c, n)


def membership(pairs: Pairs, rows: list[int]) -> np.ndarray:
    """M [len(rows), pairs]: 1 where rows[i] is one of the pair's two recordings."""
    owners = np.asarray(rows)[:, None]
    return ((pairs.first[None, :] == owners) | (pairs.second[None, :] == owners)).astype(np.float64)


def ghm_weights(loss_settings: LossConfig, pairs: Pairs, scores: np.ndarray) -> np.ndarray | None:
    """A GHM run's pair weights at a checkpoint: GHM applied to all training pairs as one batch (no momentum), so
    that they depend on the model alone, as the gradients do; None for the standard loss."""
    if loss_settings.type != "ghm":
        return None
    loss = build_loss("ghm", loss_settings.margin, **{**ghm_options(loss_settings), "momentum": 0.0}).eval()
    s = torch.from_numpy(scores)
    loss(s[pairs.first], s[pairs.second], torch.from_numpy(pairs.target))
    return loss.last_stats["weight"].double().numpy()


@dataclass
class Influence:
    self_influence: np.ndarray  # per training recording
    on_validation: np.ndarray  # [validation recordings, training recordings]
    final_loss: np.ndarray  # mean margin loss of each training recording's pairs at the last checkpoint
    checkpoints: list[int]


def run_influence(checkpoints: list[tuple[int, dict]], cfg: RunConfig, recordings, train: list[int],
                  val: list[int]) -> Influence:
    """All influences of a run, summed over its checkpoints (epoch, checkpoint) in order."""
    labels = recordings.labels.numpy()
    train_pairs = training_pairs(recordings, train, cfg.run.seed, cfg.data.pair_scope == "subset")
    val_pairs = validation_pairs(labels, val)
    n, margin = len(recordings), cfg.loss.margin
    self_influence, on_val = np.zeros(len(train)), np.zeros((len(val), len(train)))
    model = build_model(cfg.model.name, len(cfg.data.subsets))
    features = recordings.load_features() if reads_features(model) else None
    for _, checkpoint in checkpoints:
        model.load_state_dict(checkpoint["model_state_dict"])
        lr = checkpoint["optimizer_state_dict"]["param_groups"][0]["lr"]
        scores, gradients = score_gradients(model, recordings.data, features)
        c = pair_coefficients(train_pairs, scores, margin, ghm_weights(cfg.loss, train_pairs, scores))
        g = score_coefficients(train_pairs, c, n)[train, None] * gradients[train]
        beta = score_coefficients(val_pairs, pair_coefficients(val_pairs, scores, margin, None), n)
        self_influence += lr * np.einsum("ij,ij->i", g, g)
        on_val += lr * (beta[val, None] * gradients[val]) @ g.T
    losses = np.maximum(0.0, margin - train_pairs.target * (scores[train_pairs.first] - scores[train_pairs.second]))
    owners = membership(train_pairs, train)
    final_loss = owners @ losses / owners.sum(axis=1)
    return Influence(self_influence, on_val, final_loss, [epoch for epoch, _ in checkpoints])


def run_checkpoints(folder: Path) -> list[tuple[int, dict]]:
    """Every model_epoch_<N>.pt (N ≥ 1) of a run folder, by epoch."""
    found = {epoch: path for epoch, path in epoch_checkpoints(folder).items() if epoch >= 1}
    if not found:
        raise InputError(f"{folder}: no model_epoch_<N>.pt checkpoint with N ≥ 1")
    return [(epoch, load_checkpoint(path, "influence", RESUME_KEYS)) for epoch, path in found.items()]


def run_folder(run: str, save_dir: str) -> Path:
    folder = Path(run) if Path(run).is_dir() else Path(save_dir) / CHECKPOINTS / run
    if not folder.is_dir():
        raise InputError(f"{run}: neither a run folder nor a run under {save_dir}/{CHECKPOINTS}")
    return folder


def hard_counts(run: RunPaths, paths: list[str]) -> list[int | None]:
    """How many of each recording's recorded pairs GHM put in its two hardest bins (None without statistics)."""
    if not run.stats.is_dir() or not any(run.stats.iterdir()):
        return [None] * len(paths)
    counts = {row["path"]: row["hard_pairs"] for row in hard_recordings(load_ghm_stats(run.stats), HARD_BINS)}
    return [counts.get(path, 0) for path in paths]


def recording_scores(result: Influence) -> dict[str, np.ndarray]:
    """Every ranking of the training recordings, higher = more suspicious."""
    return {"validation-harm": -result.on_validation.sum(axis=0), "self-influence": result.self_influence}


def write_tables(out: Path, result: Influence, ranking: str, recordings, train: list[int], val: list[int],
                 hard: list, top: int) -> list[dict]:
    scores = recording_scores(result)
    ranks = np.empty(len(train), dtype=int)
    ranks[np.argsort(-scores[ranking], kind="stable")] = np.arange(1, len(train) + 1)
    rows = [{"path": recordings.paths[r], "class": recordings.classes[int(recordings.labels[r])],
             "material": recordings.materials[r], "rank": int(ranks[i]), "score": float(scores[ranking][i]),
             "validation_harm": float(scores["validation-harm"][i]),
             "self_influence": float(scores["self-influence"][i]),
             "final_pair_loss": float(result.final_loss[i]), "ghm_hard_pairs": hard[i]}
            for i, r in enumerate(train)]
    rows.sort(key=lambda row: row["rank"])
    write_csv(out / "influence.csv", rows)
    proponents = []
    for j, v in enumerate(val):
        order = np.argsort(-result.on_validation[j], kind="stable")
        for kind, picks in (("proponent", order[:top]), ("opponent", order[::-1][:top])):
            proponents += [{"validation_recording": recordings.paths[v], "kind": kind, "rank": k + 1,
                            "training_recording": recordings.paths[train[i]],
                            "influence": float(result.on_validation[j, i])} for k, i in enumerate(picks)]
    write_csv(out / "proponents.csv", proponents)
    return rows


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot_by_class(rows: list[dict], classes: list[str], named: int, path: Path, title: str) -> None:
    """The ranking score of every training recording by class; the `named` highest are labelled."""
    fig, ax = subplots(figsize=(9, 4.5))
    position = {c: k for k, c in enumerate(classes)}
    rng = np.random.default_rng(0)
    xs = [position[r["class"]] + rng.uniform(-0.15, 0.15) for r in rows]
    ax.scatter(xs, [r["score"] for r in rows], s=14, color="tab:blue")
    for x, row in list(zip(xs, rows))[:named]:
        ax.annotate(Path(row["path"]).name, (x, row["score"]), fontsize=7, xytext=(4, 2),
                    textcoords="offset points", color="tab:red")
    ax.set_xticks(range(len(classes)), classes, rotation=45)
    ax.set(xlabel="class (as labelled)", ylabel="score", title=title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


def plot_map(result: Influence, labels: np.ndarray, train: list[int], val: list[int], classes: list[str],
             path: Path) -> None:
    """Validation × training influence, both ordered by class."""
    rows, cols = np.argsort(labels[val], kind="stable"), np.argsort(labels[train], kind="stable")
    values = result.on_validation[np.ix_(rows, cols)]
    extent = max(float(np.abs(values).max()), 1e-12)
    fig, ax = subplots(figsize=(10, 5))
    image = ax.imshow(values, aspect="auto", cmap="coolwarm", vmin=-extent, vmax=extent, interpolation="nearest")
    for axis, order, members in ((ax.set_xticks, cols, train), (ax.set_yticks, rows, val)):
        classes_in = [labels[members[i]] for i in order]
        starts = [i for i, k in enumerate(classes_in) if i == 0 or classes_in[i - 1] != k]
        axis(starts, [classes[classes_in[i]] for i in starts])
    ax.set(xlabel="training recording (by class)", ylabel="validation recording (by class)",
           title="influence on validation recordings (red: proponent, blue: opponent)")
    fig.colorbar(image, ax=ax)
    save_figure(fig, path)


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="TracIn influence of a run's training recordings, from its checkpoints.")
    p.add_argument("run", help="a run folder (model_checkpoints/<run>) or a run name under --save-dir")
    p.add_argument("--save-dir", default="saved_models", help="(default: %(default)s)")
    p.add_argument("--rank-by", choices=RANKINGS, default="validation-harm",
                   help="what ranks the training recordings: validation-harm (minus the summed influence on every "
                        "validation recording) or self-influence (default: %(default)s)")
    p.add_argument("--margin", type=float,
                   help="the margin of the loss whose gradients enter (default: the run's): a smaller margin keeps "
                        "only the pairs that are misordered or nearly so")
    p.add_argument("--top", type=int, default=5, help="proponents and opponents per validation recording, and "
                                                      "recordings named in the plot (default: %(default)s)")
    p.add_argument("--out", help="(default: <save-dir>/analysis/<run>/influence/)")
    return p


def influence(args: argparse.Namespace) -> int:
    folder = run_folder(args.run, args.save_dir)
    checkpoints = run_checkpoints(folder)
    last = checkpoints[-1][1]
    run = RunPaths.of_checkpoint(epoch_checkpoints(folder)[checkpoints[-1][0]], last["run"])
    cfg = stored_config(last, "influence", folder, "a run this program wrote")
    if args.margin is not None:
        cfg = cfg.with_values(margin=args.margin)
    out = output_folder(Path(args.out) if args.out else analysis_folder(run.save_dir, run.name) / "influence")
    recordings = load_recordings(cfg.data)
    split = run_split(recordings, cfg.data, cfg.run.seed)
    if [recordings.paths[i] for i in split.val] != last["val_recordings"]:
        raise InputError(f"{folder}: the run's recordings under {cfg.data.root} are not the ones it trained on")
    result = run_influence(checkpoints, cfg, recordings, split.train, split.val)
    hard = hard_counts(run, [recordings.paths[r] for r in split.train])
    rows = write_tables(out, result, args.rank_by, recordings, split.train, split.val, hard, args.top)
    plot_by_class(rows, recordings.classes, args.top, out / "influence_by_class.png",
                  f"{run.name}: {args.rank_by} ({len(checkpoints)} checkpoints)")
    plot_map(result, recordings.labels.numpy(), split.train, split.val, recordings.classes, out / "influence_map.png")
    save_json({"run": run.name, "rank_by": args.rank_by, "margin": cfg.loss.margin,
               "checkpoints": result.checkpoints,
               "training_recordings": len(split.train), "validation_recordings": len(split.val),
               "loss_type": cfg.loss.type,
               "top": [{key: row[key] for key in ("path", "class", "score")} for row in rows[:args.top]]},
              out / "influence.json")
    coarse = " (a coarse estimate: few checkpoints)" if len(checkpoints) < 5 else ""
    print(f"{len(checkpoints)} checkpoints (epochs {', '.join(map(str, result.checkpoints))}){coarse}, "
          f"{len(split.train)} training and {len(split.val)} validation recordings → {out}/")
    for row in rows[:args.top]:
        print(f"  {row['rank']:>3}  {row['score']:.4g}  {row['class']:<8} {Path(row['path']).name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = get_args_parser()
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error("--top must be >= 1")
    if args.margin is not None and not 0 < args.margin < float("inf"):
        parser.error("--margin must be > 0 and finite")
    return run_command(lambda: influence(args))


if __name__ == "__main__":
    sys.exit(main())
