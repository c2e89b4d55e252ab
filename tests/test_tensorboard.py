"""--tensorboard: the event file holds the run's step and epoch figures and the GHM histograms, read back with
TensorBoard's own reader."""

import json
import pickle

import numpy as np
import pytest
from conftest import tiny_train_args

import train
from utils import extras

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


@pytest.mark.slow
def test_the_event_file_holds_steps_epochs_and_ghm_histograms(tiny_data, tmp_path):
    argv = tiny_train_args(tiny_data, tmp_path, "--frequency", "1000hz", "--tensorboard", "--ghm-stats-batches",
                           "every:2")
    assert train.main(argv) == 0
    (run,) = (tmp_path / "model_checkpoints").iterdir()
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0}).Reload()
    history = pickle.loads(next(run.glob("training_history_*.pkl")).read_bytes())
    steps = events.Scalars("step/train_loss")
    batches = len(steps) // 2
    assert [s.step for s in steps] == list(range(1, 2 * batches + 1))
    assert {s.value for s in events.Scalars("step/train_accuracy")} <= {k / 8 for k in range(9)}  # batch 8
    assert np.allclose([s.value for s in events.Scalars("step/lr")], [1e-3] * 2 * batches)  # float32
    for key in ("val_accuracy", "train_loss_main", "val_loss_standard_log"):
        logged = events.Scalars(f"epoch/{key}")
        assert [s.step for s in logged] == [batches, 2 * batches]
        assert np.allclose([s.value for s in logged], history[key])
    summary = json.loads((run / "summary.json").read_text())
    (final,) = events.Scalars("final/pairwise_accuracy")
    assert final.step == 2 * batches and np.isclose(final.value, summary["evaluation"]["pairwise_accuracy"])
    (settings,) = events.Tensors("settings/text_summary")
    assert "logger: csv,tensorboard" in settings.tensor_proto.string_val[0].decode()

    stats = [pickle.loads(p.read_bytes()) for p in sorted((tmp_path / "stats" / run.name).iterdir())]
    stats.sort(key=lambda s: s["global_step"])
    counts = events.Histograms("ghm/bin_counts")
    assert [h.step for h in counts] == [s["global_step"] for s in stats]
    for event, s in zip(counts, stats):
        assert event.histogram_value.bucket == s["bin_counts"].tolist()
        assert np.allclose(event.histogram_value.bucket_limit, s["bin_edges"][1:])
    for event, s in zip(events.Histograms("ghm/bin_weights"), stats):
        assert np.allclose(event.histogram_value.bucket, s["bin_weights"])
    assert len(events.Histograms("ghm/pair_weights")) == len(stats)


def test_a_missing_tensorboard_is_one_clear_error(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(extras, "installed", lambda extra: extra != "tensorboard")
    with pytest.raises(SystemExit) as exit_info:
        train.parse_args(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz", "--tensorboard"))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert ("--logger tensorboard needs the tensorboard package: python -m pip install -r requirements-tensorboard.txt "
            "-c constraints.txt") in err
