"""Training-step benchmark on real-size recordings: the plain implementation against the trainer's step.

    python benchmarks/bench_train.py [--steps 5] [--warmup 2] [--rounds 1] [--device cuda] [--amp bf16]
        [--variants plain,ours,unique,ours:bf16]

Generates once (cached in benchmarks/.cache) 54 recordings of 6 s at 48 kHz in six classes
(1025 × 1126 spectrograms) and times, per variant, `--steps` training steps of 32 pairs after
`--warmup` steps:
  plain  the straightforward step: default-collated pair batches, model(x1), model(x2) through the
         plain module sequence with the default weight layout, MarginRankingLoss, backward, Adam; default
         allocator;
  plain_cl  the plain step with the model's channels-last weights (not in the default --variants: on a GPU it
         shows what the layout alone does);
  ours   the trainer's own `training.loop.train_step` with default settings (pair scorer, GHM loss, fused
         first block, the non-finite-loss check, the (disabled) autocast and gradient scaler, retained memory);
  unique ours with --pair-forward unique (each distinct recording of the batch through the model once);
  resnet18 ours with --model resnet18 at the largest --batch-size that train.py's memory check lets through
         (not in the default --variants: a step takes about a minute); it also reports the check's estimate.
A variant may name its own `--amp` after a colon (`ours:bf16`, `resnet18:bf16`), so one invocation compares fp32
and mixed precision against one plain step; the plain steps are always float32.
Per step: `data` (the loader's next batch) and `step`; the loss columns time one more forward + backward of
each loss on the step's scores.
With `--device cuda` every variant runs on the GPU (the plain steps in float32 from ordinary memory with
PyTorch's defaults; ours and unique with `--amp`, the small CNN's channels-last weights and, as train.py,
batches stacked into page-locked memory within the step and cuDNN's autotuning unless `--deterministic`), the
clock is read after a device synchronisation, and the peak GPU memory is reported too.
Each variant runs in its own process, so peak RSS does not mix and the allocator setting (which is
process-wide) stays with the variant it belongs to; with --rounds > 1 the processes alternate.
"""

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CACHE = ROOT / "benchmarks" / ".cache" / "data_6s"
METRICS = ("data", "step", "total")
SHAPE = (1, 1025, 1126)  # the spectrograms of the 6 s recordings
PLAIN = ("plain", "plain_cl")  # float32 steps without the trainer's code
VARIANTS = (*PLAIN, "ours", "unique", "resnet18")
AMP_MODES = ("off", "bf16", "fp16")


def ensure_data() -> Path:
    from audio_data.synthetic import MARKER, generate

    if not (CACHE / MARKER).is_file():
        print(f"generating 6 s recordings in {CACHE} ...", flush=True)
        generate(CACHE, sample_rate=48000, duration=6.0, seqs=9, materials=["plastic"], frequencies=["1000hz"])
    return CACHE


def device_sync(device):
    """What makes the clock wait for the device's queued work: torch.cuda.synchronize on CUDA."""
    import torch

    return torch.cuda.synchronize if device.type == "cuda" else (lambda: None)


def time_loss(criterion, s1, s2, target, sync, repeats: int = 20) -> float:
    """Median seconds of one loss forward + backward on fixed scores."""
    times = []
    for _ in range(repeats):
        a, b = s1.detach().requires_grad_(), s2.detach().requires_grad_()
        sync()
        start = time.perf_counter()
        criterion(a, b, target).backward()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def plain_loader(data, seed: int):
    """The plain implementation's batches: PyTorch's default collate of the pair items, two spectrograms per pair
    (the trainer's loader gives each distinct recording once)."""
    import torch
    from torch.utils.data import DataLoader

    return DataLoader(data.train_pairs, batch_size=data.train_loader.batch_size, shuffle=True, drop_last=True,
                      generator=torch.Generator().manual_seed(seed))


def plain_step(model, optimizer, criterion, batch, device) -> tuple:
    """The straightforward step: model(x1), model(x2) through the plain modules, the loss, backward, Adam."""
    from models.common import standardize

    x1, x2, target = (tensor.to(device) for tensor in batch[:3])
    s1, s2 = (model.head(model.features(standardize(x))).squeeze(1) for x in (x1, x2))
    loss = criterion(s1, s2, target)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return s1.detach(), s2.detach(), target


def worker(variant: str, steps: int, warmup: int, device_name: str, amp: str, deterministic: bool) -> dict:
    import torch
    from torch import nn

    from losses import build_loss, ghm_options
    from training.cli import parse_args
    from training.loop import build_training, run_data, train_step
    from utils.common_utils import choose_algorithms
    from utils.memory import retain_freed_memory

    plain = variant in PLAIN
    if not plain:
        retain_freed_memory()
    flags = ["--frequency", "1000hz", "--data-root", str(CACHE), "--device", device_name,
             "--amp", "off" if plain else amp]
    flags += ["--pair-forward", "unique"] if variant == "unique" else []
    flags += ["--deterministic"] if deterministic and not plain else []
    if variant == "resnet18":
        flags += ["--model", "resnet18", "--batch-size", str(largest_resnet_batch(device_name, amp))]
    cfg = parse_args(flags)
    torch.manual_seed(cfg.run.seed)
    device = torch.device(device_name)
    # as train.py (batch_to stacks a GPU batch into page-locked memory), except for the plain steps (ordinary memory)
    data = run_data(cfg, None if plain else device)
    loader = plain_loader(data, cfg.run.seed) if plain else data.train_loader
    if not plain:
        choose_algorithms(device, cfg.devices.deterministic)  # as train.py does
    sync = device_sync(device)
    t = build_training(cfg, device)
    t.model.train()
    if plain:
        if variant == "plain":
            t.model.to(memory_format=torch.contiguous_format)  # the modules' default layout
        criterion = nn.MarginRankingLoss(margin=cfg.loss.margin)

        def step(batch):
            return plain_step(t.model, t.optimizer, criterion, batch, device)
    else:
        def step(batch):
            result = train_step(t, batch, device)
            return result.s1, result.s2, result.target
    standard = nn.MarginRankingLoss(cfg.loss.margin)
    sync()
    ghm = build_loss("ghm", cfg.loss.margin, **ghm_options(cfg.loss))
    batches = iter(loader)
    record = {key: [] for key in METRICS + ("loss_standard", "loss_ghm")}
    for n in range(warmup + steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        s1, s2, target = step(batch)
        sync()
        t2 = time.perf_counter()
        if n >= warmup:
            for key, value in zip(METRICS, (t1 - t0, t2 - t1, t2 - t0)):
                record[key].append(value)
            record["loss_standard"].append(time_loss(standard, s1, s2, target, sync))
            record["loss_ghm"].append(time_loss(ghm, s1, s2, target, sync))
    record["pairs"] = loader.batch_size
    if variant == "resnet18":
        from training.step_memory import estimate
        record["estimate_gb"] = estimate(t.model, "resnet18", SHAPE, 2.0, device, t.amp_dtype).peak(
            loader.batch_size) / 1e9
    record["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    record["peak_gpu_gb"] = torch.cuda.max_memory_allocated() / 1e9 if device.type == "cuda" else 0.0
    record["reserved_gpu_gb"] = torch.cuda.max_memory_reserved() / 1e9 if device.type == "cuda" else 0.0
    return record


def largest_resnet_batch(device_name: str, amp: str) -> int:
    """The largest batch of pairs that train.py's memory check accepts for the ResNet-18 on the 6 s recordings."""
    import torch

    from models import build_model
    from training.loop import AMP_DTYPES
    from training.step_memory import HEADROOM, available_bytes, estimate

    device = torch.device(device_name)
    model = build_model("resnet18").to(device)
    memory = estimate(model, "resnet18", SHAPE, 2.0, device, AMP_DTYPES[amp])
    return memory.largest_batch(HEADROOM * available_bytes(device))


def summary(values: list[float]) -> str:
    return f"{statistics.median(values):8.3f} ({min(values):.3f}–{max(values):.3f})"


def report(results: dict[str, dict]) -> None:
    print(f"\n{'seconds per step: median (min–max)':<36}" + "".join(f"{v:>26}" for v in results))
    for key in METRICS + ("loss_standard", "loss_ghm"):
        print(f"{key:<36}" + "".join(f"{summary(r[key]):>26}" for r in results.values()))
    print(f"{'pairs per second':<36}"
          + "".join(f"{r['pairs'] / statistics.median(r['total']):>26.2f}" for r in results.values()))
    print(f"{'peak RSS (GB, max over processes)':<36}"
          + "".join(f"{r['peak_rss_gb']:>26.2f}" for r in results.values()))
    if any("estimate_gb" in r for r in results.values()):
        print(f"{'memory check estimate (GB)':<36}"
              + "".join(f"{r.get('estimate_gb', float('nan')):>26.2f}" for r in results.values()))
    if any(r["peak_gpu_gb"] for r in results.values()):
        print(f"{'peak GPU memory (GB, allocated)':<36}"
              + "".join(f"{r['peak_gpu_gb']:>26.2f}" for r in results.values()))
        print(f"{'peak GPU memory (GB, reserved)':<36}"
              + "".join(f"{r['reserved_gpu_gb']:>26.2f}" for r in results.values()))
    for name, r in results.items():
        median = {key: statistics.median(r[key]) for key in METRICS + ("loss_standard", "loss_ghm")}
        ghm_ratio = (median["total"] + median["loss_ghm"]) / (median["total"] + median["loss_standard"])
        print(f"{name}: data {median['data'] / median['total']:.1%} of the step; GHM/standard step time "
              f"(one more loss forward + backward on the step's scores, either kind) {ghm_ratio:.4f}")
    if "plain" in results:
        plain = statistics.median(results["plain"]["total"])
        for name in results:
            if name != "plain":
                print(f"plain / {name} step time: {plain / statistics.median(results[name]['total']):.2f}x")


def parse_variants(spec: str, amp: str) -> dict[str, tuple[str, str]]:
    """`ours,ours:bf16` -> {"ours": ("ours", amp), "ours:bf16": ("ours", "bf16")}; ValueError names a bad one."""
    variants = {}
    for item in spec.split(","):
        name, _, own_amp = item.partition(":")
        if name not in VARIANTS or (own_amp and (own_amp not in AMP_MODES or name in PLAIN)):
            raise ValueError(f"--variants: {item!r} is not one of {', '.join(VARIANTS)}, optionally with :"
                             f"{'|'.join(AMP_MODES)} (not for the plain steps, which are float32)")
        variants[item] = (name, own_amp or amp)
    return variants


def run_worker(name: str, amp: str, args: argparse.Namespace) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", name, "--steps", str(args.steps),
                          "--warmup", str(args.warmup), "--device", args.device, "--amp", amp,
                          *(["--deterministic"] if args.deterministic else [])],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternating processes per variant")
    parser.add_argument("--variants", default="plain,ours,unique", help="comma-separated; name:amp sets one's --amp")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", default="off", choices=AMP_MODES, help="for the variants without their own")
    parser.add_argument("--deterministic", action="store_true",
                        help="ours and unique with train.py --deterministic (CUDA: no cuDNN autotuning)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.device, args.amp, args.deterministic)))
        return
    try:
        variants = parse_variants(args.variants, args.amp)
    except ValueError as error:
        parser.error(str(error))
    ensure_data()
    import platform

    import torch

    card = f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""
    print(f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads{card}, "
          f"--amp {args.amp} (ours, unique, resnet18 unless named), "
          f"{'--deterministic' if args.deterministic else 'cuDNN autotuning'} on CUDA (ours, unique), "
          "batch 32 pairs, 6 s recordings")
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for label, (name, amp) in variants.items():
            record = run_worker(name, amp, args)
            print(f"{label}: total {summary(record['total'])} s/step, batch {record['pairs']} pairs, peak RSS "
                  f"{record['peak_rss_gb']:.2f} GB", flush=True)
            if label in results:
                for key in METRICS + ("loss_standard", "loss_ghm"):
                    results[label][key] += record[key]
                results[label]["peak_rss_gb"] = max(results[label]["peak_rss_gb"], record["peak_rss_gb"])
            else:
                results[label] = record
    report(results)

if __name__ == "__main__":
    main()
