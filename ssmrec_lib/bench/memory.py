"""Measuring CPU memory of torch code: torch's allocator is invisible to tracemalloc, so the benchmarks sample the
process's resident set size (RSS) from /proc/self/statm in a background thread. glibc keeps freed blocks
resident for re-use, which hides growth; `malloc_trim` hands freed heap pages back once, `pin_malloc_thresholds`
makes every block of 64 KiB or more go back to the OS when freed. Both are no-ops where glibc is absent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
import time


def rss_bytes() -> int:
    """Resident memory of this process (bytes), from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_available() -> bool:
    return os.path.exists("/proc/self/statm")


def _libc():
    return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")


def malloc_trim() -> None:
    """Return freed heap pages to the OS once (glibc malloc_trim(0))."""
    try:
        _libc().malloc_trim(0)
    except (OSError, AttributeError):
        pass


def pin_malloc_thresholds(threshold: int = 64 * 1024) -> None:
    """Make RSS track live memory: glibc otherwise raises its mmap threshold after large frees (up to 32 MB) and
    keeps freed blocks resident, so later peaks would read as zero. Fixing M_MMAP_THRESHOLD (and the trim
    threshold) returns every block of `threshold` bytes or more to the OS when freed."""
    try:
        libc = _libc()
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, threshold)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class PeakRSS:
    """Context manager: peak resident memory (bytes) above the level at entry, sampled every `interval` s.

    A lower bound: a peak shorter than the interval can be missed.
    """

    def __init__(self, interval: float = 0.001) -> None:
        self.interval = interval
        self.peak = 0

    def __enter__(self) -> "PeakRSS":
        self.base = rss_bytes()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_bytes() - self.base)
            time.sleep(self.interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, rss_bytes() - self.base)
