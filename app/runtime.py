"""Process-level tuning that the CLI and the service apply once at start-up.

glibc malloc returns every large free block (> 128 KiB at first) to the kernel and maps it again
on the next allocation, so each decoder step and each training step page-faults its vocabulary-
sized buffers in anew (measured: ~9,500 minor faults per training step, ~190,000 per 256 beam-5
sentences). Keeping up to 256 MiB of freed heap and serving blocks up to 32 MiB (glibc's maximum)
from it removes nearly all of them: +4-10% throughput on 2 cores (a 64-sentence int8 beam-5 batch:
~1,000 faults instead of ~34,000, and 40% less CPU than with blocks over 4 MiB mapped anew), at the
price of a resident size that stays at the high-water mark of the decode buffers.

That price is paid once per malloc arena, and glibc gives threads up to 8 arenas per core: each
decoding thread (one per model) and each pool thread then kept its own high-water mark. Two arenas
(M_ARENA_MAX) share the freed buffers between threads: the service with both en<->de models at int8
peaked 60-100 MB lower with both pairs under load, one after the other. The limit binds as long as it
is set before glibc has made 8 arenas: the CLI sets it first thing, and the app's lifespan again before
it loads models (for `uvicorn app.main:create_app` workers); MALLOC_ARENA_MAX=2 in the environment does
the same at process start.

`release_free_memory` hands the heap's free pages back to the kernel (malloc_trim): called once after the
models are loaded, it returns what loading left behind (fp16 -> fp32 staging, packed-away weights; ~30 MB).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from typing import Any

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -2, -3, -8
ARENAS = 2


def _libc() -> Any | None:
    """glibc's functions on Linux, else None (musl, as on Alpine, has no mallopt or malloc_trim)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - both must exist
    except (OSError, AttributeError):
        return None
    return libc


def tune_allocator() -> bool:
    """Apply the malloc settings above on glibc (Linux); a no-op elsewhere. True when applied."""
    libc = _libc()
    if libc is None:
        return False
    return all(libc.mallopt(option, value) == 1 for option, value in (
        (M_TRIM_THRESHOLD, 256 << 20), (M_TOP_PAD, 64 << 20), (M_MMAP_THRESHOLD, 32 << 20), (M_ARENA_MAX, ARENAS)))


def release_free_memory() -> bool:
    """Return the free pages of every malloc arena to the kernel (glibc's malloc_trim); True when some were.
    For after a one-off burst of allocation, such as loading models, not per request: the next allocations
    fault their pages in again."""
    libc = _libc()
    return libc is not None and libc.malloc_trim(0) == 1
