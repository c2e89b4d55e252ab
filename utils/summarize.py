"""Table of a sweep's runs from their summary.json files: `python -m utils.summarize SAVE_DIR`.

One row per run (failed and unfinished runs included, with their status), then mean ± std of the
headline figures over the completed runs of each group, and the rows as CSV.
"""

import argparse
import csv
import socket
import statistics
import sys
import time
from pathlib import Path

from utils.errors import InputError
from utils.io_utils import atomic_path
from utils.run_lock import process_gone
from utils.run_paths import summaries
from utils.run_summary import read_summary

COLUMNS = ("run", "status", "frequency", "material", "loss_type", "ghm_alpha", "seed", "epochs_done",
           "final_train_accuracy", "final_val_accuracy", "best_val_accuracy", "best_val_accuracy_epoch",
           "final_val_loss", "pairwise_accuracy", "kendall_tau_b", "best_baseline", "best_baseline_accuracy",
           "best_baseline_tau", "vs_best_baseline", "wall_time_s", "error")
NUMERIC = ("ghm_alpha", "epochs_done", "final_train_accuracy", "final_val_accuracy", "best_val_accuracy",
           "best_val_accuracy_epoch", "final_val_loss", "pairwise_accuracy", "kendall_tau_b", "best_baseline_accuracy",
           "best_baseline_tau", "vs_best_baseline", "wall_time_s")
STALE_BEFORE_FIRST_EPOCH_S = 600
FIGURES = ("final_train_accuracy", "final_val_accuracy", "best_val_accuracy", "pairwise_accuracy", "kendall_tau_b",
           "best_baseline_accuracy", "best_baseline_tau", "vs_best_baseline")


def run_status(summary: dict, now: float) -> str:
    """The status a summary states, or `stale` for a `running` run that is not: its process is gone (same host),
    or its heartbeat is older than three of its epochs (ten minutes before its first epoch ends; never less than
    a minute, so that a pause between short epochs is not taken for a dead run)."""
    if summary["status"] != "running":
        return summary["status"]
    if summary.get("host") == socket.gethostname() and process_gone(summary.get("pid")):
        return "stale"
    beat, epochs = summary.get("heartbeat"), summary["epochs_done"]
    limit = 3 * summary["wall_time_s"] / epochs if epochs else STALE_BEFORE_FIRST_EPOCH_S
    if isinstance(beat, (int, float)) and now - beat > max(limit, 60.0):
        return "stale"
    return "running"


def read_rows(save_dir: Path) -> list[dict]:
    """One row per readable summary.json; an unreadable one is skipped with a warning naming it."""
    rows, now = [], time.time()
    for path in summaries(save_dir):
        try:
            summary = read_summary(path)
        except InputError as exc:
            print(f"warning: {exc}; skipped", file=sys.stderr)
            continue
        args, evaluation, final = summary["args"], summary.get("evaluation") or {}, summary["final"]
        row = {"run": summary["run"], "status": run_status(summary, now),
               **{key: args.get(key) for key in ("frequency", "material", "loss_type", "seed")},
               "ghm_alpha": args.get("ghm_alpha") if args.get("loss_type") == "ghm" else None,
               "epochs_done": summary["epochs_done"], "final_train_accuracy": final.get("train_accuracy"),
               "final_val_accuracy": final.get("val_accuracy"),
               "best_val_accuracy": summary.get("best_val_accuracy"),
               "best_val_accuracy_epoch": summary.get("best_val_accuracy_epoch"),
               "final_val_loss": final.get("val_loss_main"),
               "pairwise_accuracy": evaluation.get("pairwise_accuracy"),
               "kendall_tau_b": evaluation.get("kendall_tau_b"),
               "best_baseline": evaluation.get("best_baseline"),
               "best_baseline_accuracy": evaluation.get("best_baseline_pairwise_accuracy"),
               "best_baseline_tau": evaluation.get("best_baseline_kendall_tau_b"),
               "vs_best_baseline": evaluation.get("vs_best_baseline"),
               "wall_time_s": summary["wall_time_s"], "error": summary.get("error")}
        if problem := row_problem(row):
            print(f"warning: {path}: {problem}; skipped", file=sys.stderr)
            continue
        rows.append({**row, "args": args})
    return rows


def group_value(row: dict, column: str) -> str:
    """A row's value in a table column, or else the run argument of that name (what --group-by can use)."""
    return str(row[column] if column in COLUMNS else row["args"].get(column))


def row_problem(row: dict) -> str | None:
    """Values a table cannot hold: anything but text and numbers, or text where a figure belongs."""
    for column, value in row.items():
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number or isinstance(value, str) and column not in NUMERIC):
            return f"{column} holds {value!r}"
    return None


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values) if len(values) > 1 else 0.0:.3f}"


def group_table(rows: list[dict], group_by: list[str]) -> list[list[str]]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(group_value(row, key) for key in group_by), []).append(row)
    table = []
    for key, members in sorted(groups.items(), key=lambda item: str(item[0])):
        done = [r for r in members if r["status"] == "completed"]
        table.append([*key, f"{len(done)}/{len(members)}",
                      *(mean_std([r[f] for r in done if r[f] is not None]) for f in FIGURES)])
    return table


def printable(value: object) -> str:
    """Text from a summary.json as it may be printed: control characters (a planted escape sequence that would
    clear the screen or retitle the window) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))


def print_table(header: list[str], rows: list[list]) -> None:
    cells = [[("-" if v is None else f"{v:.3f}" if isinstance(v, float) else printable(v)) for v in row]
             for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(header)]
    for line in [header, *cells]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("save_dir", help="the --save-dir of the runs")
    parser.add_argument("--group-by", default="frequency,loss_type",
                        help="comma-separated table columns or run arguments (any flag stored in summary.json, "
                             "e.g. margin,ghm_alpha) to group by (default: %(default)s)")
    parser.add_argument("--csv", help="where to write the rows (default: SAVE_DIR/summary.csv)")
    args = parser.parse_args(argv)
    save_dir = Path(args.save_dir)
    group_by = [c.strip().replace("-", "_") for c in args.group_by.split(",") if c.strip()]
    rows = read_rows(save_dir)
    if not rows:
        print(f"error: {save_dir}: no model_checkpoints/<run>/summary.json found", file=sys.stderr)
        return 1
    known = set(COLUMNS).union(*(row["args"] for row in rows))
    if unknown := [c for c in group_by if c not in known]:
        parser.error(f"--group-by: unknown column(s) {', '.join(unknown)}; choose table columns or run arguments")
    print_table(list(COLUMNS[:-1]), [[row[c] for c in COLUMNS[:-1]] for row in rows])
    for row in rows:
        if row["error"]:
            print(f"{printable(row['run'])}: {printable(row['status'])}: {printable(row['error'])}")
    print()
    print_table([*group_by, "completed", *(f"{f} (mean ± std)" for f in FIGURES)], group_table(rows, group_by))
    out = Path(args.csv) if args.csv else save_dir / "summary.csv"
    with atomic_path(out) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
