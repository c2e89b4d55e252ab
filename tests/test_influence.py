"""TracIn influence equals a brute-force computation of the same definition; --exclude-recordings; the
generator's mislabelled recordings."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import tiny_train_args

import train
from analysis import influence
from training.loop import run_data
from audio_data.synthetic import MISLABELLED, generate
from models import build_model


@pytest.fixture(scope="module")
def noisy_data(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("noisy"), sample_rate=8000, duration=0.25, seqs=3,
                    materials=["plastic"], frequencies=["1000hz"], mislabel=1)


def test_the_generator_mislabels_and_lists_the_recording(noisy_data, tmp_path):
    (entry,) = json.loads((noisy_data / MISLABELLED).read_text())
    assert entry["written_class"] != entry["true_class"] and (noisy_data / entry["path"]).is_file()
    clean = generate(tmp_path / "clean", sample_rate=8000, duration=0.25, seqs=3, materials=["plastic"],
                     frequencies=["1000hz"])
    changed = [p.relative_to(noisy_data) for p in sorted(noisy_data.rglob("*.wav"))
               if p.read_bytes() != (clean / p.relative_to(noisy_data)).read_bytes()]
    assert [str(p) for p in changed] == [entry["path"]]


def brute_force(cfg, checkpoints: list, recordings, train_rows: list[int], val_rows: list[int]):
    """The definition with autograd, pair by pair: each pair's gradient through each of its two scores (the other
    held fixed) is that recording's share; shares summed per recording by hand."""
    pairs = influence.training_pairs(recordings, train_rows, cfg.run.seed)
    val_pairs = influence.validation_pairs(recordings.labels.numpy(), val_rows)
    model = build_model(cfg.model.name).eval()
    parameters = list(model.parameters())
    margin = cfg.loss.margin
    self_influence = np.zeros(len(train_rows))
    on_val = np.zeros((len(val_rows), len(train_rows)))

    def add_shares(shares: dict, a: int, b: int, t: float, w: float) -> None:
        s = model(recordings.data[[a, b]].float())
        for owner, first, second in ((a, s[0], s[1].detach()), (b, s[0].detach(), s[1])):
            loss = w * torch.clamp(margin - t * (first - second), min=0)
            grads = torch.autograd.grad(loss, parameters, retain_graph=True, allow_unused=True)
            shares[owner] = shares[owner] + torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                                                       for g, p in zip(grads, parameters)]).double().numpy()
    for _, checkpoint in checkpoints:
        model.load_state_dict(checkpoint["model_state_dict"])
        lr = checkpoint["optimizer_state_dict"]["param_groups"][0]["lr"]
        with torch.no_grad():
            scores = model(recordings.data.float()).double().numpy()
        weights = influence.ghm_weights(cfg.loss, pairs, scores)
        shares = {r: 0.0 for r in train_rows}
        for p, (a, b, t) in enumerate(zip(pairs.first, pairs.second, pairs.target)):
            add_shares(shares, int(a), int(b), t, 1.0 if weights is None else float(weights[p]))
        val_shares = {v: 0.0 for v in val_rows}
        for a, b, t in zip(val_pairs.first, val_pairs.second, val_pairs.target):
            add_shares(val_shares, int(a), int(b), t, 1.0)
        for i, r in enumerate(train_rows):
            self_influence[i] += lr * np.dot(shares[r], shares[r])
            for j, v in enumerate(val_rows):
                on_val[j, i] += lr * np.dot(val_shares[v], shares[r])
    return self_influence, on_val


@pytest.mark.slow
def test_influence_equals_brute_force_and_names_every_file(noisy_data, tmp_path, capsys):
    argv = tiny_train_args(noisy_data, tmp_path, "--frequency", "1000hz", "--ghm-stats-batches", "all")
    assert train.main(argv) == 0
    (folder,) = (tmp_path / "model_checkpoints").iterdir()
    assert influence.main([str(folder), "--top", "2"]) == 0
    assert "2 checkpoints (epochs 1, 2)" in capsys.readouterr().out
    out = tmp_path / "analysis" / folder.name / "influence"
    with open(out / "influence.csv") as f:
        rows = list(csv.DictReader(f))

    cfg = train.parse_args(argv)
    data = run_data(cfg)
    checkpoints = influence.run_checkpoints(folder)
    result = influence.run_influence(checkpoints, cfg, data.recordings, data.split.train, data.split.val)
    self_influence, on_val = brute_force(cfg, checkpoints, data.recordings, data.split.train, data.split.val)
    for got, expected in ((result.self_influence, self_influence), (result.on_validation, on_val)):
        assert np.abs(got - expected).max() <= 1e-5 * np.abs(expected).max()
    by_path = {row["path"]: row for row in rows}
    listed = [by_path[data.recordings.paths[r]] for r in data.split.train]
    assert [float(row["self_influence"]) for row in listed] == pytest.approx(self_influence, rel=1e-5)
    harm = -on_val.sum(axis=0)
    assert [float(row["score"]) for row in listed] == pytest.approx(harm, rel=1e-5, abs=1e-5 * np.abs(harm).max())
    assert {row["rank"] for row in rows} == {str(k) for k in range(1, len(data.split.train) + 1)}
    assert all(row["ghm_hard_pairs"] != "" for row in rows)
    with open(out / "proponents.csv") as f:
        assert len(list(csv.DictReader(f))) == 2 * 2 * len(data.split.val)
    assert (out / "influence_by_class.png").is_file() and (out / "influence_map.png").is_file()


@pytest.mark.slow
def test_exclude_recordings_trains_without_exactly_those(noisy_data, tmp_path, capsys):
    base = tiny_train_args(noisy_data, tmp_path, "--frequency", "1000hz", "--epochs", "1")
    full = run_data(train.parse_args(base))
    paths = full.recordings.paths
    dropped = [paths[full.split.train[0]], Path(paths[full.split.train[3]]).name]
    listing = tmp_path / "exclude.txt"
    listing.write_text(f"# the two worst\n{dropped[0]}\n{dropped[1]}  # by file name\n")
    argv = [*base, "--exclude-recordings", str(listing)]
    cfg = train.parse_args(argv)
    assert cfg.data.exclude_recordings.entries == tuple(dropped)
    data = run_data(cfg)
    assert data.split.train == [i for k, i in enumerate(full.split.train) if k not in (0, 3)]
    assert (data.split.val, data.split.test) == (full.split.val, full.split.test)

    assert train.main(argv) == 0
    (folder,) = (tmp_path / "model_checkpoints").iterdir()
    stored = {"sha256": cfg.data.exclude_recordings.sha256, "entries": dropped}
    assert json.loads((folder / "summary.json").read_text())["args"]["exclude_recordings"] == stored
    assert yaml.safe_load((folder / "config.yaml").read_text())["exclude_recordings"] == stored
    assert torch.load(folder / "model_epoch_1.pt", weights_only=True)["args"]["exclude_recordings"] == stored
    listing.write_text("other.wav\n")
    with pytest.raises(SystemExit):
        train.parse_args(["--resume", str(folder), "--exclude-recordings", str(listing)])
    assert "--exclude-recordings" in capsys.readouterr().err
