"""Faults made on purpose, shared by the tests and the reliability suite (benchmarks/robustness/)."""
from __future__ import annotations

import resource
import signal
import zipfile
from pathlib import Path


def file_size_limit(limit: int):
    """A ``preexec_fn`` for a disk that is full after ``limit`` bytes a file: RLIMIT_FSIZE, with SIGXFSZ
    ignored so a write past it fails with EFBIG, as on a full disk (no root needed for a tmpfs)."""
    def preexec():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


def flip_tensor_bit(src: Path, dst: Path) -> Path:
    """A copy of the checkpoint ``src`` at ``dst`` (may be ``src``) with one bit flipped in the middle
    of its largest tensor."""
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    head = raw[info.header_offset: info.header_offset + 30]  # the local file header: name and extra lengths
    start = info.header_offset + 30 + int.from_bytes(head[26:28], "little") + int.from_bytes(head[28:30], "little")
    raw[start + info.file_size // 2] ^= 0x10
    dst.write_bytes(bytes(raw))
    return dst
