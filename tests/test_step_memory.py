"""The estimate of a training step's peak memory, against real peaks, and the check before training."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, tiny_train_args

import train
from config import ModelConfig
from models import build_model
from training import step_memory
from utils.errors import InputError

# Real training steps (the trainer's own, on random spectrograms), each case in a fresh process (memory that an
# earlier case freed would hide a later one's): the step's peak resident memory above what the process held before
# it, from the kernel's high-water mark reset just before.
MEASURE = r"""
import json, re, sys, torch
sys.path.insert(0, sys.argv[1])
from audio_data.pairs import PairBatch
from config import RunConfig
from training.loop import build_training, train_step
from training.step_memory import estimate


def status(key):
    return int(re.search(key + r":\s+(\d+) kB", open("/proc/self/status").read()).group(1)) * 1024


for case in json.loads(sys.argv[2]):
    name, height, width, batch = case
    torch.manual_seed(0)
    t = build_training(RunConfig.from_flat({"frequency": "1000hz", "model": name, "batch_size": batch}),
                       torch.device("cpu"))
    t.model.train()
    memory = estimate(t.model, name, (1, height, width), 2.0, torch.device("cpu"))
    x = torch.randn(2 * batch, 1, height, width)  # a distinct batch of 2·batch recordings
    index = torch.arange(2 * batch)
    before = status("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    train_step(t, PairBatch(x, torch.ones(batch), None, None, index[:batch], index[batch:]), torch.device("cpu"))
    print(json.dumps({"case": case, "measured": status("VmHWM") - before, "estimate": memory.peak(batch)}))
    del t, x
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux's peak-RSS reset")
def test_the_estimate_is_at_or_a_little_above_the_real_peak():
    for case in [["resnet18", 257, 400, 4], ["simple_cnn", 257, 600, 8]]:
        out = subprocess.run([sys.executable, "-c", MEASURE, str(ROOT), json.dumps([case])],
                             capture_output=True, text=True, check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        assert 0.9 <= figures["estimate"] / figures["measured"] <= 1.7, figures


def test_the_estimate_grows_with_the_batch_and_the_spectrogram_area():
    torch.manual_seed(0)
    model = build_model("resnet18")
    small = step_memory.estimate(model, "resnet18", (1, 128, 200), 2.0, torch.device("cpu"))
    large = step_memory.estimate(model, "resnet18", (1, 256, 400), 2.0, torch.device("cpu"))
    assert large.fixed == small.fixed
    assert 3.5 <= large.per_pair / small.per_pair <= 4.5
    assert large.peak(8) - large.peak(4) == pytest.approx(4 * large.per_pair)


def test_the_resnet_is_estimated_on_spectrograms_that_shrink_to_one_value_per_channel():
    """A small probe of a small spectrogram reaches 1 × 1 maps in the ResNet-18, where training-mode BatchNorm needs
    more than one recording (probing a single one raised)."""
    memory = step_memory.estimate(build_model("resnet18"), "resnet18", (1, 65, 40), 2.0, torch.device("cpu"))
    assert memory.per_pair > 0 and memory.fixed > 0


def test_a_step_that_does_not_fit_names_the_estimate_and_the_largest_batch(monkeypatch):
    settings = ModelConfig(name="resnet18", pair_forward="separate")
    shape, device = (1, 257, 400), torch.device("cpu")
    model = build_model("resnet18")
    memory = step_memory.estimate(model, "resnet18", shape, 2.0, device)
    available = (memory.peak(9) + 0.5 * memory.per_pair) / step_memory.HEADROOM
    monkeypatch.setattr(step_memory, "available_bytes", lambda device: available)
    with pytest.raises(InputError, match=r"--batch-size 32: .* needs about .* GB \(estimate\), more than 85% of "
                                         r"the .* available on cpu; the largest batch that fits is --batch-size 9 "):
        step_memory.check_step_memory(settings, 32, model, shape, 100, device, None)
    assert step_memory.check_step_memory(settings, 9, model, shape, 100, device, None) == memory


def test_unique_pair_forward_counts_at_most_the_training_recordings(monkeypatch):
    monkeypatch.setattr(step_memory, "available_bytes", lambda device: float("inf"))
    shape, device, model = (1, 65, 100), torch.device("cpu"), build_model("simple_cnn")
    separate = step_memory.check_step_memory(ModelConfig("simple_cnn", "separate"), 32, model, shape, 16, device, None)
    unique = step_memory.check_step_memory(ModelConfig("simple_cnn", "unique"), 32, model, shape, 16, device, None)
    assert unique.per_pair == pytest.approx(separate.per_pair * 16 / 64)


def test_train_stops_before_training_with_one_error_line(tiny_data, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(step_memory, "available_bytes", lambda device: 1.0)
    assert train.main(tiny_train_args(tiny_data, tmp_path, "--frequency", "500hz")) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: --batch-size 8: a training step of --model simple_cnn")
    assert "not even --batch-size 1 fits" in err[0] and "Traceback" not in err[0]
    assert not (tmp_path / "model_checkpoints").exists()
