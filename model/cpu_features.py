"""What this CPU can compute natively, read at run time (never assumed from the build or the machine name).

Lower-precision decoding needs hardware support to be faster rather than slower:
- int8: PyTorch's x86 quantized engine (fbgemm, or oneDNN behind torch's "x86" engine) on any x86 CPU with
  AVX2; it uses AVX512-VNNI / AMX-INT8 where the CPU has them.
- bf16: native bf16 arithmetic (AVX512-BF16 or AMX-BF16). Elsewhere oneDNN emulates bf16 through fp32 and
  it is slower than fp32, so it is refused rather than run slowly.
The flags come from /proc/cpuinfo (Linux); torch's own dispatch level (`get_cpu_capability`) is kept
beside them as a cross-check and for reports.
"""

from __future__ import annotations

import functools
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
X86_QUANTIZED_ENGINES = ("x86", "fbgemm", "onednn")


@dataclass(frozen=True)
class CpuFeatures:
    machine: str  # platform.machine(), lower case
    capability: str  # torch.backends.cpu.get_cpu_capability(): DEFAULT, AVX2, AVX512, ...
    flags: frozenset[str]  # /proc/cpuinfo flags; empty where the file does not exist
    quantized_engine: str  # torch.backends.quantized.engine

    @property
    def x86(self) -> bool:
        return self.machine in X86_MACHINES

    @property
    def avx2(self) -> bool:
        return "avx2" in self.flags or self.capability in ("AVX2", "AVX512")

    @property
    def avx512(self) -> bool:
        return "avx512f" in self.flags or self.capability == "AVX512"

    @property
    def native_bf16(self) -> bool:
        return bool({"avx512_bf16", "amx_bf16"} & self.flags)

    @property
    def int8_dot_products(self) -> bool:
        """u8 x s8 dot products that accumulate in 32 bits (AVX-VNNI, AVX512-VNNI, AMX-INT8). Without them x86
        int8 kernels sum pairs of products in 16 bits (vpmaddubsw), which full 8-bit activations can saturate."""
        return bool({"avx512_vnni", "avx_vnni", "amx_int8"} & self.flags)

    @property
    def int8(self) -> bool:
        """PyTorch's x86 int8 engine can run here: an x86 CPU with AVX2 and an x86 quantized engine."""
        return self.x86 and self.avx2 and self.quantized_engine in X86_QUANTIZED_ENGINES

    def precisions(self) -> tuple[str, ...]:
        """The decoding precisions this CPU supports, fp32 first."""
        return ("fp32",) + (("int8",) if self.int8 else ()) + (("bf16",) if self.native_bf16 else ())

    def describe(self) -> str:
        extras = [f for f in ("avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if f in self.flags]
        return (f"{self.machine} {self.capability}{' ' + ' '.join(extras) if extras else ''}; "
                f"quantized engine {self.quantized_engine}; precisions {', '.join(self.precisions())}")


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The `flags` of the first processor in /proc/cpuinfo (every core of a machine reports the same)."""
    try:
        text = cpuinfo.read_text(encoding="ascii", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


@functools.cache
def cpu_features() -> CpuFeatures:
    return CpuFeatures(machine=platform.machine().lower(), capability=torch.backends.cpu.get_cpu_capability(),
                       flags=read_cpu_flags(), quantized_engine=torch.backends.quantized.engine)
