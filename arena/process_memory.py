"""How this process's C allocator treats large blocks: from the heap, kept for reuse.

Why: every tick allocates buffers of a board's size (a 64 x 64 board is 316 KiB in its canonical
encoding): the encoding itself, its LZ4 frame, the decompressed board. glibc serves blocks of
128 KiB or more with a fresh `mmap` each, until its adaptive threshold happens to rise, and
returns freed heap tops to the system early; each new block then page-faults in on first
touch. Measured here, that made decompressing a board's LZ4 frame about 5x slower (0.41 against
0.08 ms) and cost a tick's board work about a third more CPU than with the blocks reused. So
blocks below MMAP_THRESHOLD_BYTES come from the heap, and the heap keeps up to
TRIM_THRESHOLD_BYTES of free memory at its top instead of handing it back.

Invariant: a no-op where the C library is not glibc (`mallopt` missing); nothing else depends
on it but speed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # glibc's <malloc.h>
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 32 * 1024 * 1024  # glibc's ceiling; a 512 x 512 board is 20 MiB
TRIM_THRESHOLD_BYTES = 64 * 1024 * 1024


def reuse_large_blocks() -> bool:
    """Tune the allocator as above; True if it took the settings."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    took = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )
    if not took:
        log.warning("the C library refused the allocator settings; boards will cost more CPU")
    return took
