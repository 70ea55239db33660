"""What a measurement ran on: the CPU's name and vector extensions, or the GPU's name.

Timings in this project differ by 2-3x between the CPU kinds a 2-core VM can land on (an AMD EPYC with AVX-512
and native bf16 against one with AVX2 only), so every benchmark and training log names its machine."""

from __future__ import annotations

import os
import platform

import torch


def _cpuinfo(key: str) -> str | None:
    """The value of the first ``key`` line of /proc/cpuinfo (Linux), else None."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` says."""
    return _cpuinfo("model name") or platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    """The CPU's feature flags (Linux; empty elsewhere)."""
    return set((_cpuinfo("flags") or "").split())


def describe(device: str = "cpu") -> str:
    """One line: e.g. "AMD EPYC, 2 cores, AVX2 (no AVX-512), torch 2.13.0+cpu" or "NVIDIA H100 80GB HBM3"."""
    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    flags = cpu_flags()
    if "avx512f" in flags:
        vec = "AVX-512" + (" with bf16" if "avx512_bf16" in flags else "")
    elif "avx2" in flags:
        vec = "AVX2 (no AVX-512)"
    else:
        vec = torch.backends.cpu.get_cpu_capability()
    return f"{cpu_name()}, {os.cpu_count()} cores, {vec}, torch {torch.__version__}"
