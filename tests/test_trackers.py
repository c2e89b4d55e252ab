"""--logger mlflow,wandb: what each tracker holds, read back from MLflow's store and W&B's offline files, equals
metrics.csv and summary.json; a resumed run continues the same tracked runs; training is unchanged by them."""

import csv
import json
import pickle
import struct
from pathlib import Path

import pytest
import torch
from conftest import tiny_train_args

import config
import train
from utils import extras

mlflow = pytest.importorskip("mlflow")
wandb_pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

RUN = ("--frequency", "1000hz", "--checkpoint-interval", "1")


@pytest.fixture
def offline_trackers(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):  # nothing written to the home folder
        monkeypatch.setenv(name, str(tmp_path / "wandb_home"))


def wandb_records(path: Path) -> list:
    """The records of a W&B run file (a LevelDB-style log of 32 KiB blocks, each record in chunks behind a
    7-byte header: checksum, length, type 1 whole / 2 first / 3 middle / 4 last; the file starts with ':W&B')."""
    data, block, records, parts, pos = path.read_bytes(), 32768, [], b"", 7
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        parts = chunk if kind in (1, 2) else parts + chunk
        if kind in (1, 4):
            record = wandb_pb.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def wandb_logged(folder: Path, run_id: str) -> tuple[list[dict], dict, list[str]]:
    """Every history row and the summary of W&B run `run_id` (one offline folder per process that ran it, in
    time order), and the run ids the files name."""
    rows, summary, ids = [], {}, []
    for path in sorted(folder.glob(f"wandb/offline-run-*-{run_id}/run-{run_id}.wandb")):
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                ids.append(record.run.run_id)
            elif kind == "history":
                rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                             for item in record.history.item})
            elif kind == "summary":
                summary.update({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                for item in record.summary.update})
    return rows, summary, ids


def metrics_csv(folder: Path) -> list[dict]:
    with open(folder / "metrics.csv", newline="") as f:
        return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(f)]


def newest_per_step(history) -> dict[int, float]:
    return {m.step: m.value for m in sorted(history, key=lambda m: m.timestamp)}


def test_the_trackers_hold_metrics_csv_and_a_resumed_run_continues_them(tiny_data, tmp_path, offline_trackers):
    argv = tiny_train_args(tiny_data, tmp_path / "tracked", *RUN, "--logger", "mlflow,wandb")
    assert train.main(argv) == 0
    (folder,) = (tmp_path / "tracked" / "model_checkpoints").iterdir()
    first = torch.load(folder / "model_epoch_2.pt", weights_only=True)["trackers"]
    assert train.main(["--resume", str(folder), "--epochs", "3", "--no-progress"]) == 0
    assert torch.load(folder / "model_epoch_3.pt", weights_only=True)["trackers"] == first
    rows, summary = metrics_csv(folder), json.loads((folder / "summary.json").read_text())
    batches = 14  # 112 training pairs, batch 8

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = client.search_runs(client.get_experiment_by_name("audio-angle-ranker").experiment_id)
    assert run.info.run_id == first["mlflow"] and run.info.status == "FINISHED" and run.info.run_name == folder.name
    assert run.data.params["learning_rate"] == "0.001" and run.data.params["logger"] == "mlflow,wandb"
    for column in rows[0]:
        assert newest_per_step(client.get_metric_history(run.info.run_id, f"epoch/{column}")) == {
            int(row["epoch"]): row[column] for row in rows}
    assert sorted(newest_per_step(client.get_metric_history(run.info.run_id, "step/train_loss"))) == list(
        range(1, 3 * batches + 1))
    assert run.data.metrics["final/pairwise_accuracy"] == summary["evaluation"]["pairwise_accuracy"]
    assert run.data.metrics["final/baselines_pairwise_accuracy/logistic _7 features_"] == summary["evaluation"][
        "baselines_pairwise_accuracy"]["logistic (7 features)"]  # a name MLflow refuses, its characters replaced

    logged, wandb_summary, ids = wandb_logged(folder, first["wandb"])
    assert ids == [first["wandb"]] * 2  # the first process and the resumed one: one W&B run
    epochs = {row["epoch"]: row for row in logged if "epoch/train_loss_main" in row}  # the newest per epoch
    assert [{column: epochs[row["epoch"]][f"epoch/{column}"] for column in row} for row in rows] == rows
    assert sorted({row["global_step"] for row in logged if "step/train_loss" in row}) == list(
        range(1, 3 * batches + 1))
    assert wandb_summary["final/kendall_tau_b"] == summary["evaluation"]["kendall_tau_b"]

    assert train.main(tiny_train_args(tiny_data, tmp_path / "plain", *RUN, "--epochs", "3")) == 0
    history = [pickle.loads(next(f.glob("training_history_*.pkl")).read_bytes())
               for f in (folder, *(tmp_path / "plain" / "model_checkpoints").iterdir())]
    for h in history:
        h["args"].pop("save_dir"), h["args"].pop("logger"), h["args"].pop("resume")
    assert history[0] == history[1]  # the trackers change nothing in training


@pytest.mark.parametrize("name", ["mlflow", "wandb"])
def test_a_missing_tracker_package_is_one_error_line_naming_the_install(name, tiny_data, tmp_path, monkeypatch,
                                                                       capsys):
    monkeypatch.setattr(extras, "installed", lambda extra: extra != name)
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--logger", f"csv,{name}"))
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 2 and lines[-1].endswith(
        f"--logger {name} needs the {name} package: python -m pip install -r requirements-{name}.txt -c "
        "constraints.txt")


def test_tensorboard_is_an_alias_and_old_runs_read_as_loggers(tiny_data, tmp_path, capsys):
    args = tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz")
    assert train.parse_args([*args, "--tensorboard"]).run.logger == "csv,tensorboard"
    assert train.parse_args([*args, "--logger", "mlflow,tensorboard", "--no-tensorboard"]).run.logger == "mlflow"
    assert train.parse_args([*args, "--logger", "wandb,mlflow,wandb"]).run.trackers() == ("wandb", "mlflow")
    assert config.migrate({"tensorboard": True, "format_version": 3}) == {"logger": "csv,tensorboard"}
    assert config.migrate({"tensorboard": False}) == {"logger": "csv"}
    with pytest.raises(SystemExit):
        train.parse_args([*args, "--logger", "csv,neptune"])
    assert "--logger must be names from csv, tensorboard, mlflow, wandb" in capsys.readouterr().err
