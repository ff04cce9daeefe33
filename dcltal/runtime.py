"""Process-wide CPU settings that the ``dcltal`` command (and the benchmarks) apply before torch loads.

- ``GOMP_SPINCOUNT`` (unless set): how long an idle OpenMP worker of torch busy-waits for more work
  before it sleeps. libgomp's default (300,000 spins: several milliseconds on this 2-core machine)
  keeps a core busy after every torch operation, and the region pooling's own threads
  (:mod:`dcltal.ops.native`), which run right after one, then share it: 24 THUMOS-sized videos' pooling
  took 0.84 s with the default and 0.48 s with 3,000 (benchmarks/bench_model.py). libgomp reads the
  variable when it loads, so this must run before ``import torch``; it does nothing under other
  OpenMP runtimes.
- glibc's malloc keeps freed blocks of up to 32 MiB for reuse (``M_MMAP_THRESHOLD``) and does not
  hand free memory back to the system (``M_TRIM_THRESHOLD``): the model's per-video tensors of a few MiB
  were otherwise mapped afresh, and page-faulted in, on every forward (x1.1 on the whole model). The
  process's peak memory is unchanged; its memory stays at that peak. Only on glibc; elsewhere nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

SPIN_COUNT = "3000"
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems
TRIM_THRESHOLD = 2**31 - 1  # the largest an int takes: in effect, never


def tune_process() -> None:
    """Apply the settings above (each only where it can apply). Safe to call more than once."""
    os.environ.setdefault("GOMP_SPINCOUNT", SPIN_COUNT)
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
