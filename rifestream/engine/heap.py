"""Frame-sized buffers from the heap instead of fresh memory mappings (glibc).

glibc's ``malloc`` serves a block over its mmap threshold (128 KiB at start, raised by itself as
mapped blocks are freed) with a new mapping, and gives it back to the system on ``free``. Every
640x360 plane, flow and frame a CPU step allocates is over that threshold, so each new one costs a
page fault per 4 KiB page on first touch: on the project's 2-core VM a luma sum of three 640x360
planes took 0.8 ms on freshly mapped memory and 0.06 ms on memory the heap already held, and whether
an allocation got one or the other changed with the history of earlier allocations.

:func:`keep_freed_memory` fixes the threshold (blocks up to 32 MiB come from the heap) and keeps up
to 256 MiB of freed memory in the process instead of trimming it, so the buffers of one frame are
reused for the next. Memory stays bounded by the job's peak use, which it already reaches on its
first frames; larger blocks (a 4K float frame) are still mapped and unmapped. Elsewhere than glibc
it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

# mallopt parameters (glibc's malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Blocks under this come from the heap (glibc's ceiling for the threshold on 64-bit systems).
MMAP_THRESHOLD = 32 * 1024 * 1024
#: Freed memory at the top of the heap kept for reuse before any is given back.
TRIM_THRESHOLD = 256 * 1024 * 1024


@functools.cache
def keep_freed_memory() -> bool:
    """Set glibc's malloc to reuse freed frame-sized blocks (see the module); once per process.
    True where it was applied, False where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has it
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("glibc malloc keeps freed blocks up to %d MiB: %s", MMAP_THRESHOLD >> 20, applied)
    return applied
