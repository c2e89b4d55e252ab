"""Takes kept together: each recording's group (a manifest's `group` column, or --group-pattern on its file name),
and splits that never divide a group, stratified by class.

The split follows the semantics of scikit-learn's StratifiedGroupKFold, generalised to parts of any size: the
groups, shuffled by the seed, then ordered by how uneven their class counts are (most uneven first, as sklearn
does), go one by one to the part where they bring the part's class counts closest to its target (the part's share
of each class's recordings), measured as the increase in the squared distance to the target; among equal costs,
to the part furthest below its size. We implement it here rather than take scikit-learn: its class makes K equal
folds only, and the package (with scipy) would be a large dependency for thirty lines.
"""

import re
from pathlib import Path

import numpy as np

from utils.errors import InputError


def pattern_groups(paths: list[str], pattern: str) -> list[str]:
    """--group-pattern: each file name's match (its first parenthesised group, if the pattern has one)."""
    regex, groups = re.compile(pattern), []
    for path in paths:
        match = regex.search(Path(path).name)
        if match is None:
            raise InputError(f"--group-pattern {pattern}: does not match the file name of {path}")
        groups.append(match.group(1) if regex.groups else match.group(0))
    return groups


def recording_groups(paths: list[str], manifest_groups: list[str | None], pattern: str | None) -> list[str] | None:
    """Each recording's group: --group-pattern's, else the manifest's (a row without one is a group of its own);
    None when neither gives groups (the ungrouped split)."""
    if pattern is not None:
        return pattern_groups(paths, pattern)
    if all(group is None for group in manifest_groups):
        return None
    return [group if group is not None else f"\0{path}" for path, group in zip(paths, manifest_groups)]


def grouped_parts(labels: list[int], groups: list[str], fractions: list[float], seed: int) -> list[list[int]]:
    """Indices of the recordings in each part (sorted), the parts' sizes near `fractions` of every class, no group
    in two parts."""
    names = list(dict.fromkeys(groups))
    index = {name: i for i, name in enumerate(names)}
    classes = sorted(set(labels))
    counts = np.zeros((len(names), len(classes)))
    for label, group in zip(labels, groups):
        counts[index[group], classes.index(label)] += 1
    order = np.random.default_rng(seed).permutation(len(names))
    order = sorted(order, key=lambda g: -counts[g].std())  # stable: the shuffle decides among equals
    targets = np.outer(fractions, counts.sum(axis=0))
    have, part_of = np.zeros_like(targets), np.empty(len(names), dtype=int)
    for g in order:
        cost = ((have + counts[g] - targets) ** 2).sum(axis=1) - ((have - targets) ** 2).sum(axis=1)
        tied = np.flatnonzero(np.isclose(cost, cost.min()))
        # among equal costs the part furthest below its size, as sklearn takes the smallest fold
        part_of[g] = int(tied[np.argmin(have[tied].sum(axis=1) / np.maximum(targets[tied].sum(axis=1), 1e-12))])
        have[part_of[g]] += counts[g]
    return [[i for i, group in enumerate(groups) if part_of[index[group]] == part] for part in range(len(fractions))]


def split_groups(groups: list[str], parts: list[list[int]]) -> list[list[str]]:
    """The groups of each part, in first-seen order (for summary.json); the manifest-less groups of single
    recordings left out."""
    return [list(dict.fromkeys(groups[i] for i in part if not groups[i].startswith("\0"))) for part in parts]
