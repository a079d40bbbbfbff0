"""The CPU steps' frame-sized buffers come from the heap once an engine exists (rifestream.engine.heap).

Each check runs in a fresh interpreter: the setting is process-wide and the test process has
usually applied it already. glibc's ``mallinfo2`` counts the blocks served by their own mapping.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, numpy as np
libc = ctypes.CDLL(None)
FIELDS = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in FIELDS]
libc.mallinfo2.restype = Info
{setup}
before = libc.mallinfo2().hblks
frame = np.ones((3, 1080, 1920), np.float32)  # a 1920x1080 frame's planes, 25 MB
print(libc.mallinfo2().hblks - before)
"""


def _mapped_blocks(setup: str) -> int:
    """Blocks mapped for one frame-sized allocation after ``setup``, in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", SCRIPT.format(setup=setup)], capture_output=True, text=True, check=True)
    return int(out.stdout)


def _glibc() -> bool:
    try:
        ctypes.CDLL(None).mallinfo2  # noqa: B018
    except AttributeError:
        return False
    return True


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or not _glibc(), reason="glibc's malloc only")


def test_a_frame_sized_block_is_mapped_afresh_by_default() -> None:
    """What the setting is for: without it glibc maps a new block for a frame-sized allocation (and
    unmaps it on free, so its pages fault in again next time)."""
    assert _mapped_blocks("") == 1


@pytest.mark.parametrize(
    "engine",
    ["FrameEngine('cpu')", "Interpolator('rifestream-lite', device='cpu')"],
    ids=["model-free steps", "model"],
)
def test_an_engine_makes_frame_sized_blocks_come_from_the_heap(engine: str) -> None:
    """Building any engine applies the setting: the same allocation then maps nothing."""
    setup = f"from rifestream.engine.interpolator import FrameEngine, Interpolator; {engine}"
    assert _mapped_blocks(setup) == 0


def test_the_setting_says_whether_it_applied() -> None:
    from rifestream.engine.heap import keep_freed_memory

    assert keep_freed_memory() is True
