"""Training-step benchmark on real-size recordings: the plain implementation against the trainer's step.

    python benchmarks/bench_train.py [--steps 5] [--warmup 2] [--rounds 1]

Generates once (cached in benchmarks/.cache) 54 recordings of 6 s at 48 kHz in six classes
(1025 × 1126 spectrograms) and times, per variant, `--steps` training steps of 32 pairs after
`--warmup` steps:
  plain  the straightforward step: default-collated pair batches, model(x1), model(x2) through the
         plain module sequence with the default weight layout, MarginRankingLoss, backward, Adam; default
         allocator;
  ours   the trainer's own step with default settings (GHM loss, fused first block, retained memory);
  unique ours with --pair-forward unique (each distinct recording of the batch through the model once).
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
METRICS = ("data", "fwd_bwd", "loss", "optimizer", "total")


def ensure_data() -> Path:
    from datasets.synthetic import MARKER, generate

    if not (CACHE / MARKER).is_file():
        print(f"generating 6 s recordings in {CACHE} ...", flush=True)
        generate(CACHE, sample_rate=48000, duration=6.0, seqs=9, materials=["plastic"], frequencies=["1000hz"])
    return CACHE


def time_loss(criterion, s1, s2, target, repeats: int = 20) -> float:
    """Median seconds of one loss forward + backward on fixed scores."""
    times = []
    for _ in range(repeats):
        a, b = s1.detach().requires_grad_(), s2.detach().requires_grad_()
        start = time.perf_counter()
        criterion(a, b, target).backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def worker(variant: str, steps: int, warmup: int) -> dict:
    import torch
    from torch import nn

    import train
    from losses import build_loss
    from models import build_model
    from models.fused_block import standardize
    from models.pair_forward import PAIR_FORWARD
    from utils.memory import retain_freed_memory

    if variant != "plain":
        retain_freed_memory()
    args = train.parse_args(["--frequency", "1000hz", "--data-root", str(CACHE)])
    torch.manual_seed(args.seed)
    _, loader, _ = train.build_data(args, "1000hz")
    model = build_model("simple_cnn").train()
    if variant == "plain":
        model.to(memory_format=torch.contiguous_format)  # the modules' default layout

        def pair_forward(model, x1, x2, index1, index2):
            return tuple(model.head(model.features(standardize(x))).squeeze(1) for x in (x1, x2))
        criterion = nn.MarginRankingLoss(margin=args.margin)
    else:
        pair_forward = PAIR_FORWARD["unique" if variant == "unique" else "separate"]
        criterion = build_loss(args.loss_type, args.margin, **train.ghm_options(args))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.learning_rate, weight_decay=args.weight_decay)
    standard, ghm = nn.MarginRankingLoss(args.margin), build_loss("ghm", args.margin, **train.ghm_options(args))
    batches = iter(loader)
    record = {key: [] for key in METRICS + ("loss_standard", "loss_ghm")}
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        x1, x2, target, _, _, index1, index2 = next(batches)
        t1 = time.perf_counter()
        s1, s2 = pair_forward(model, x1, x2, index1, index2)
        t2 = time.perf_counter()
        loss = criterion(s1, s2, target)
        t3 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        t4 = time.perf_counter()
        optimizer.step()
        t5 = time.perf_counter()
        if step >= warmup:
            for key, value in zip(METRICS, (t1 - t0, (t2 - t1) + (t4 - t3), t3 - t2, t5 - t4, t5 - t0)):
                record[key].append(value)
            record["loss_standard"].append(time_loss(standard, s1, s2, target))
            record["loss_ghm"].append(time_loss(ghm, s1, s2, target))
    record["pairs"] = loader.batch_size
    record["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    return record


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
    for name, r in results.items():
        median = {key: statistics.median(r[key]) for key in METRICS + ("loss_standard", "loss_ghm")}
        without_loss = median["total"] - median["loss"]
        ghm_ratio = (without_loss + median["loss_ghm"]) / (without_loss + median["loss_standard"])
        print(f"{name}: data {median['data'] / median['total']:.1%} of the step, not model compute "
              f"{1 - median['fwd_bwd'] / median['total']:.1%}; GHM/standard step time {ghm_ratio:.4f}")
    if "plain" in results:
        plain = statistics.median(results["plain"]["total"])
        for name in results:
            if name != "plain":
                print(f"plain / {name} step time: {plain / statistics.median(results[name]['total']):.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1, help="alternating processes per variant")
    parser.add_argument("--variants", default="plain,ours,unique")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup)))
        return
    ensure_data()
    import torch

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 32 pairs, 6 s recordings")
    results: dict[str, dict] = {}
    for _ in range(args.rounds):
        for variant in args.variants.split(","):
            out = subprocess.run([sys.executable, __file__, "--worker", variant, "--steps", str(args.steps),
                                  "--warmup", str(args.warmup)], capture_output=True, text=True, check=True)
            record = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{variant}: total {summary(record['total'])} s/step, peak RSS {record['peak_rss_gb']:.2f} GB",
                  flush=True)
            if variant in results:
                for key in METRICS + ("loss_standard", "loss_ghm"):
                    results[variant][key] += record[key]
                results[variant]["peak_rss_gb"] = max(results[variant]["peak_rss_gb"], record["peak_rss_gb"])
            else:
                results[variant] = record
    report(results)


if __name__ == "__main__":
    main()
