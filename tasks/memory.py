"""Peak memory of one piece of work in this process: what loading and running a model added.

Linux keeps the process's peak resident set (VmHWM) and lets the process reset it (clear_refs 5),
so the peak is measured without sampling; on a GPU the CUDA allocator's peak is what counts.
Elsewhere the measure is None rather than a guess.
"""

from __future__ import annotations

from pathlib import Path

STATUS, CLEAR_REFS = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    try:
        line = next(line for line in STATUS.read_text().splitlines() if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024  # kB


class PeakMemory:
    """`with PeakMemory() as peak: ...` then `peak.mb`: the peak above the memory in use at the start."""

    def __init__(self) -> None:
        self.mb: float | None = None

    def __enter__(self) -> PeakMemory:
        import gc

        import torch

        gc.collect()  # what the previous piece of work left for the collector is not this one's

        self._cuda = torch.cuda.is_available()
        if self._cuda:
            torch.cuda.reset_peak_memory_stats()
            self._start = torch.cuda.memory_allocated() / 2**20
            return self
        try:
            CLEAR_REFS.write_text("5")  # the peak restarts from what is resident now
        except OSError:
            self._start = None
            return self
        self._start = _status_mb("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        if self._cuda:
            import torch

            self.mb = torch.cuda.max_memory_allocated() / 2**20 - self._start
        elif self._start is not None and (peak := _status_mb("VmHWM")) is not None:
            self.mb = max(peak - self._start, 0.0)
