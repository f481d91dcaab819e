"""Allocator tuning applies on glibc Linux (the platform of the image and of CI)."""

from __future__ import annotations

import platform
import sys

import pytest

from app.runtime import tune_allocator


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="mallopt is glibc's")
def test_tune_allocator_applies_on_glibc() -> None:
    assert tune_allocator() is True
