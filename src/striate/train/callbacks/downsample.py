"""Downsample: a bounded, evenly spaced sample of a record series that grows for the whole run (the History's
iteration records, the diagnostics' snapshots and update ratios), so memory stays bounded over any run length."""

from __future__ import annotations

from collections.abc import Iterable


class Downsample:
    """Records in time order, each with an integer `key` (`rec[key]`, e.g. its iteration), that arrive at
    keys origin, origin + step, origin + 2·step, …; `records` holds

    - those with key = origin + k·stride, where stride = step·2^j is the smallest such that at most `limit`
      keys from origin up to the latest one are multiples (a full sample keeps every 2nd record and doubles
      the stride), so the kept records are evenly spaced and never fewer than limit/2 once the limit is met;
    - the first record added and the latest one, whatever their keys (`records[0]`, `records[-1]`).

    So at most `limit` + 2 records are held. What is kept depends only on the keys seen, not on when the
    sample was taken: `reset(all records up to k)` holds what adding them one by one did, which is how a
    resumed run rebuilds a straight run's sample from a file. `limit=None` keeps every record."""

    def __init__(self, limit: int | None, step: int = 1, origin: int = 1, key: str = "iteration"):
        if limit is not None and limit < 2:
            raise ValueError(f"Downsample: limit must be ≥ 2 (or None: keep all), got {limit!r}")
        if step < 1:
            raise ValueError(f"Downsample: step must be ≥ 1, got {step!r}")
        self.limit, self.step, self.origin, self.key = limit, int(step), int(origin), key
        self.stride = self.step
        self.records: list[dict] = []

    def stride_at(self, last: int) -> int:
        """The stride once the latest key is `last`."""
        s = self.step
        if self.limit is not None:
            while (last - self.origin) // s + 1 > self.limit:
                s *= 2
        return s

    def _on_stride(self, rec: dict) -> bool:
        return (int(rec[self.key]) - self.origin) % self.stride == 0

    def add(self, rec: dict) -> None:
        """Append `rec` (its key after every key held) and drop what the sample no longer keeps."""
        recs = self.records
        if len(recs) > 1 and not self._on_stride(recs[-1]):
            recs.pop()  # kept only while it was the latest
        recs.append(rec)
        stride = self.stride_at(int(rec[self.key]))
        if stride != self.stride:
            self.stride = stride
            if len(recs) > 2:
                self.records = [recs[0], *(r for r in recs[1:-1] if self._on_stride(r)), recs[-1]]

    def reset(self, records: Iterable[dict] = ()) -> None:
        """The sample of `records` (in time order), as if added one by one to an empty sample."""
        self.stride, self.records = self.step, []
        for r in records:
            self.add(r)

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"Downsample(limit={self.limit}, {len(self.records)} records, stride {self.stride})"
