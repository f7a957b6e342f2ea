"""What this CPU can do natively: the instruction sets that decide which precisions pay.

bfloat16 is only fast where the CPU computes it natively (AVX512-BF16 or AMX); elsewhere
every runtime emulates it, slower than float32, so the product offers bf16 only where it
is native. INT8 is native everywhere x86-64 has AVX2, fastest with VNNI.
"""
from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuKind", "cpu_flags", "cpu_summary", "has_native_bf16", "has_vnni"]


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where there is none, e.g. macOS)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def has_native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (AVX512-BF16 or AMX-BF16)."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())


def has_vnni() -> bool:
    """Whether the CPU has int8 dot-product instructions (AVX512-VNNI or AVX-VNNI)."""
    return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & cpu_flags())


def cpu_summary() -> str:
    """One line naming the CPU's vector width and native low-precision support."""
    flags = cpu_flags()
    width = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else platform.machine() or "unknown"
    bf16 = "native bf16" if has_native_bf16() else "no native bf16"
    vnni = "VNNI" if has_vnni() else "no VNNI"
    return f"{width}, {bf16}, {vnni}"


@dataclass(frozen=True)
class CpuKind:
    """The kind of CPU an int8 plan is measured for: with VNNI or without (AVX2). The int8
    kernels and the quantiser's overflow fix differ between the two, so a plan measured on
    one kind is not taken automatically on the other.

    Attributes:
        vnni: int8 dot-product instructions (:func:`has_vnni`).
    """

    vnni: bool

    @classmethod
    def here(cls) -> "CpuKind":
        """This machine's kind."""
        return cls(has_vnni())

    def __str__(self) -> str:
        # The wording manifests and reasons have always used (release/manifest.json).
        return "x86-64 with VNNI" if self.vnni else "x86-64 without VNNI (AVX2)"
