"""Table of a sweep's runs from their summary.json files: `python -m utils.summarize SAVE_DIR`.

One row per run (failed and unfinished runs included, with their status), then mean ± std of the
headline figures over the completed runs of each group, and the rows as CSV.
"""

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path

from utils.io_utils import atomic_path

COLUMNS = ("run", "status", "frequency", "material", "loss_type", "ghm_alpha", "seed", "epochs_done",
           "final_val_accuracy", "best_val_accuracy", "best_val_accuracy_epoch", "final_val_loss",
           "pairwise_accuracy", "kendall_tau_b", "wall_time_s", "error")
FIGURES = ("final_val_accuracy", "best_val_accuracy", "pairwise_accuracy", "kendall_tau_b")


def read_rows(save_dir: Path) -> list[dict]:
    rows = []
    for path in sorted(save_dir.glob("model_checkpoints/*/summary.json")):
        summary = json.loads(path.read_text())
        args, evaluation = summary["args"], summary.get("evaluation") or {}
        rows.append({"run": summary["run"], "status": summary["status"],
                     **{key: args.get(key) for key in ("frequency", "material", "loss_type", "seed")},
                     "ghm_alpha": args.get("ghm_alpha") if args.get("loss_type") == "ghm" else None,
                     "epochs_done": summary["epochs_done"],
                     "final_val_accuracy": summary["final"]["val_accuracy"],
                     "best_val_accuracy": summary["best_val_accuracy"],
                     "best_val_accuracy_epoch": summary["best_val_accuracy_epoch"],
                     "final_val_loss": summary["final"]["val_loss_main"],
                     "pairwise_accuracy": evaluation.get("pairwise_accuracy"),
                     "kendall_tau_b": evaluation.get("kendall_tau_b"),
                     "wall_time_s": summary["wall_time_s"], "error": summary.get("error")})
    return rows


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def group_table(rows: list[dict], group_by: list[str]) -> list[list[str]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[key] for key in group_by), []).append(row)
    table = []
    for key, members in sorted(groups.items(), key=lambda item: str(item[0])):
        done = [r for r in members if r["status"] == "completed"]
        table.append([*map(str, key), f"{len(done)}/{len(members)}",
                      *(mean_std([r[f] for r in done if r[f] is not None]) for f in FIGURES)])
    return table


def print_table(header: list[str], rows: list[list]) -> None:
    cells = [[("-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)) for v in row] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    for line in [header, *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("save_dir", help="the --save-dir of the runs")
    parser.add_argument("--group-by", default="frequency,loss_type",
                        help="comma-separated columns to group by (default: %(default)s)")
    parser.add_argument("--csv", help="where to write the rows (default: SAVE_DIR/summary.csv)")
    args = parser.parse_args(argv)
    save_dir = Path(args.save_dir)
    group_by = [c for c in args.group_by.split(",") if c]
    if unknown := [c for c in group_by if c not in COLUMNS]:
        parser.error(f"--group-by: unknown column(s) {', '.join(unknown)}; choose from {', '.join(COLUMNS)}")
    rows = read_rows(save_dir)
    if not rows:
        print(f"error: {save_dir}: no model_checkpoints/<run>/summary.json found", file=sys.stderr)
        return 1
    print_table(list(COLUMNS[:-1]), [[row[c] for c in COLUMNS[:-1]] for row in rows])
    for row in rows:
        if row["error"]:
            print(f"{row['run']}: {row['status']}: {row['error']}")
    print()
    print_table([*group_by, "completed", *(f"{f} (mean ± std)" for f in FIGURES)], group_table(rows, group_by))
    out = Path(args.csv) if args.csv else save_dir / "summary.csv"
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
