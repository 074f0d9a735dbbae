"""A process-wide allocator setting for the training and evaluation commands only (never the library or the app)."""

from __future__ import annotations

import ctypes


def keep_freed_memory() -> bool:
    """Ask glibc to keep freed memory for reuse instead of returning it to the OS (Linux only; else a no-op).

    Training and evaluation run float passes over big batches whose tensors are larger than glibc's mmap threshold:
    by default each is mapped fresh and unmapped afterwards, and zero-filling those pages costs a large share of the
    time (`python -m bench` measures it). The price: the process keeps its peak memory. Returns whether it took."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 2**31 - 1) and libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc
        return False
