"""Proportional prioritised replay (Schaul et al. 2016) over a sum-tree.

P(i) = p_i^alpha / sum_k p_k^alpha; the importance-sampling weight of a sampled i is (N * P(i))^-beta, divided
by the largest weight in the buffer (that of the least likely item) so weights only ever scale updates down.
New items enter at the current maximum priority, so each is replayed at least once soon after it arrives.
The tree stores p^alpha; `priority` is |TD error| + eps, so an item whose error is 0 can still be drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class SumTree:
    """A binary tree over `capacity` leaves whose inner nodes hold the sums of their children: O(log n) update,
    O(log n) prefix-sum search."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        size = 1
        while size < capacity:
            size *= 2
        self._leaves = size
        self._tree = np.zeros(2 * size, dtype=np.float64)

    @property
    def total(self) -> float:
        return float(self._tree[1])

    def get(self, i: int) -> float:
        return float(self._tree[self._leaves + i])

    def set(self, i: int, value: float) -> None:
        if not 0 <= i < self.capacity:
            raise IndexError(f"leaf {i} outside 0..{self.capacity - 1}")
        j = self._leaves + i
        self._tree[j] = value
        j //= 2
        while j >= 1:
            self._tree[j] = self._tree[2 * j] + self._tree[2 * j + 1]
            j //= 2

    def find(self, mass: float) -> int:
        """The leaf i with prefix(i) <= mass < prefix(i) + leaf(i) (the last positive leaf for mass >= total)."""
        j = 1
        while j < self._leaves:
            left = 2 * j
            if mass < self._tree[left] or self._tree[left + 1] <= 0.0:
                j = left
            else:
                mass -= self._tree[left]
                j = left + 1
        return min(j - self._leaves, self.capacity - 1)

    def find_many(self, masses: np.ndarray) -> np.ndarray:
        """`find` for many masses at once: one vectorised descent (the learner samples a batch per step)."""
        m = np.asarray(masses, dtype=np.float64).copy()
        j = np.ones(len(m), dtype=np.int64)
        while j[0] < self._leaves:  # every path has the same depth
            left = 2 * j
            lv = self._tree[left]
            right = (m >= lv) & (self._tree[left + 1] > 0.0)
            m = np.where(right, m - lv, m)
            j = np.where(right, left + 1, left)
        return np.minimum(j - self._leaves, self.capacity - 1)

    def set_many(self, idx: np.ndarray, values: np.ndarray) -> None:
        """`set` for many leaves: write them, then recompute each touched parent once per level."""
        j = np.asarray(idx, dtype=np.int64) + self._leaves
        self._tree[j] = values
        j = np.unique(j // 2)
        while j[0] >= 1:
            self._tree[j] = self._tree[2 * j] + self._tree[2 * j + 1]
            if j[0] == 1:
                break
            j = np.unique(j // 2)

    def leaves(self) -> np.ndarray:
        return self._tree[self._leaves:self._leaves + self.capacity].copy()


@dataclass
class PrioritySample:
    slots: np.ndarray  # buffer slots drawn
    keys: list  # the caller's key of each slot (e.g. a replay-store row id)
    probabilities: np.ndarray  # P(i) of each draw
    weights: np.ndarray  # importance-sampling weights, max-normalised


class PrioritizedReplay:
    """Keys (any hashable id, e.g. a store row id) with priorities; sampling returns keys, probabilities and
    IS weights. A full buffer overwrites its oldest slot."""

    def __init__(self, capacity: int, alpha: float = 0.6, beta: float = 0.4, eps: float = 1e-3):
        if not 0.0 <= alpha <= 1.0 or not 0.0 <= beta <= 1.0:
            raise ValueError(f"alpha and beta must lie in [0, 1], got alpha={alpha}, beta={beta}")
        self.tree = SumTree(capacity)
        self.alpha, self.beta, self.eps = alpha, beta, eps
        self.keys: list = [None] * capacity
        self.slot_of: dict = {}
        self.size = 0
        self._next = 0
        self.max_priority = 1.0

    def __len__(self) -> int:
        return self.size

    def add(self, key, priority: float | None = None) -> int:
        """Insert `key` (at the max priority unless given); a key already present only has its priority set."""
        p = self.max_priority if priority is None else float(priority)
        if key in self.slot_of:
            self.update([self.slot_of[key]], [p])
            return self.slot_of[key]
        slot = self._next
        old = self.keys[slot]
        if old is not None:
            del self.slot_of[old]
        self.keys[slot] = key
        self.slot_of[key] = slot
        self._next = (slot + 1) % self.tree.capacity
        self.size = min(self.size + 1, self.tree.capacity)
        self._set(slot, p)
        return slot

    def _set(self, slot: int, priority: float) -> None:
        if not np.isfinite(priority) or priority < 0:
            raise ValueError(f"priority must be finite and >= 0, got {priority}")
        self.max_priority = max(self.max_priority, priority)
        self.tree.set(slot, priority ** self.alpha)

    def update(self, slots, priorities) -> None:
        p = np.asarray(priorities, dtype=np.float64)
        if not np.isfinite(p).all() or (p < 0).any():
            raise ValueError(f"priorities must be finite and >= 0, got {p[~np.isfinite(p) | (p < 0)][:3]}")
        if len(p):
            self.max_priority = max(self.max_priority, float(p.max()))
            self.tree.set_many(np.asarray(slots, dtype=np.int64), p ** self.alpha)

    def update_from_td(self, slots, td_errors) -> None:
        self.update(slots, np.abs(np.asarray(td_errors, dtype=np.float64)) + self.eps)

    def probabilities(self) -> np.ndarray:
        """P(i) of every filled slot, in slot order."""
        leaves = self.tree.leaves()[:self.size]
        return leaves / leaves.sum()

    def sample(self, batch_size: int, rng: np.random.Generator, beta: float | None = None) -> PrioritySample:
        """Stratified proportional draw: one uniform point in each of `batch_size` equal slices of the mass."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty buffer")
        beta = self.beta if beta is None else beta
        total = self.tree.total
        bounds = np.linspace(0.0, total, batch_size + 1)
        points = rng.uniform(bounds[:-1], bounds[1:])
        slots = self.tree.find_many(points)
        leaves = self.tree.leaves()[:self.size]
        probs = leaves[slots] / total
        p_min = leaves[leaves > 0].min() / total
        max_w = (self.size * p_min) ** -beta
        weights = (self.size * probs) ** -beta / max_w
        return PrioritySample(slots, [self.keys[s] for s in slots], probs, weights)

    # -- persistence: priorities as (key, priority) pairs, so a restart replays the same mass -------------
    def state(self) -> list[tuple]:
        leaves = self.tree.leaves()
        return [(self.keys[s], float(leaves[s] ** (1.0 / self.alpha)) if self.alpha > 0 else 1.0)
                for s in range(self.size)]
