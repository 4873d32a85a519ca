"""Bundles: the runs of an experiment that one training job trains in one process.

Starting a job (the interpreter, torch, netCDF, provenance) costs more than a small run's training,
so an experiment's members (its runs and seeds: key ``"run/seed"``, or ``"run"`` for a kind whose
file holds every seed) are split into bundles of at most ``bundle`` members.

Membership must be stable: adding a sweep value or a seed, or editing one run, may rerun only the
bundles it touches. A member's place is therefore its own key's SHA-256, never its position in a
list: the bundles are the leaves of the binary trie over the hash bits, where a node is a leaf when
it holds at most ``bundle`` members (and its parent more). Adding a member raises the counts only
along its own path, so only the leaf on that path changes (it grows, or splits in two); every other
bundle keeps its members. A bundle is named ``b`` and the bits of its node (``b``, ``b0``, ``b01``).
"""

from __future__ import annotations

import hashlib
from typing import Iterable

__all__ = ["member_key", "split"]


def member_key(run: str, seed: int | None) -> str:
    """A member's key: ``"run/seed"``, or the run's name for a kind whose file holds every seed."""
    return run if seed is None else f"{run}/{seed}"


def _bits(key: str) -> str:
    return "".join(f"{byte:08b}" for byte in hashlib.sha256(key.encode()).digest())


def split(keys: Iterable[str], size: int) -> dict[str, list[str]]:
    """Bundle name -> its member keys (in the order given), the leaves of the hash trie (module docstring).

    Empty leaves are no bundles; ``size`` must be at least 1."""
    if size < 1:
        raise ValueError(f"bundle size must be at least 1, got {size}")
    keys = list(dict.fromkeys(keys))
    bits = {key: _bits(key) for key in keys}
    out: dict[str, list[str]] = {}

    def leaves(prefix: str, members: list[str]) -> None:
        if len(members) <= size:
            if members:
                out["b" + prefix] = members
            return
        depth = len(prefix)
        for bit in "01":
            leaves(prefix + bit, [k for k in members if bits[k][depth] == bit])

    leaves("", keys)
    return dict(sorted(out.items()))
