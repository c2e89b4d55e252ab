"""Batch consistency: do the same seed and arguments give the same training batches?"""

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from utils.errors import InputError
from utils.io_utils import save_pickle
from utils.run_paths import consistency_record, consistency_records
from utils.safe_pickle import load_pickle


def batch_record(batch) -> dict:
    """What identifies a pair batch (audio_data.pairs.PairBatch): shapes, targets, labels, recording indices,
    data sums and stds."""
    x1, x2 = batch.halves()
    return {
        "x1_shape": tuple(x1.shape), "x2_shape": tuple(x2.shape),
        "target": batch.target.numpy().copy(), "label1": batch.label1.numpy().copy(),
        "label2": batch.label2.numpy().copy(), "index1": batch.index1.numpy().copy(),
        "index2": batch.index2.numpy().copy(),
        "x1_sum": float(x1.double().sum()), "x2_sum": float(x2.double().sum()),
        "x1_std": float(x1.double().std()), "x2_std": float(x2.double().std()),
    }


def first_batches(loader: Iterable, count: int) -> list[dict]:
    records = []
    for batch in loader:
        records.append(batch_record(batch))
        if len(records) == count:
            break
    return records


def record_differences(a: list[dict], b: list[dict]) -> list[str]:
    """Human-readable differences between two lists of batch records; empty when identical."""
    if len(a) != len(b):
        return [f"{len(a)} batches against {len(b)}"]
    return [f"batch {n + 1}: {key} differs" for n, (ra, rb) in enumerate(zip(a, b))
            for key in ra if not np.array_equal(ra[key], rb.get(key))]


def is_record(saved) -> bool:
    """Whether an unpickled file has the shape of what verify_batch_consistency writes."""
    return (isinstance(saved, dict) and isinstance(saved.get("args"), dict) and isinstance(saved.get("batches"), list)
            and all(isinstance(record, dict) for record in saved["batches"]))


def verify_batch_consistency(loader: Iterable, folder: Path, timestamp: str, seed: int,
                             key_args: dict, count: int = 3) -> str:
    """Record the first `count` batches; compare with the newest earlier record of the same arguments."""
    records = first_batches(loader, count)
    path = consistency_record(folder, timestamp, seed)
    earlier = None
    for candidate in consistency_records(folder, seed):
        saved = load_pickle(candidate)
        if not is_record(saved):
            raise InputError(f"{candidate}: not a batch-consistency record of this project")
        if saved["args"] == key_args:
            earlier = (candidate, saved)
    save_pickle({"args": key_args, "batches": records}, path)
    if earlier is None:
        return f"batch consistency: recorded {len(records)} batches in {path} (no earlier record to compare)"
    differences = record_differences(earlier[1]["batches"], records)
    if not differences:
        return f"batch consistency: first {len(records)} batches identical to {earlier[0]}"
    return f"batch consistency: batches DIFFER from {earlier[0]}: " + "; ".join(differences)
