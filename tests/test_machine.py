"""The machine line every benchmark and training log starts with."""

import os

from physlm import machine


def test_describe_names_the_cpu_its_vector_extensions_and_torch():
    line = machine.describe()
    flags = machine.cpu_flags()
    assert line.startswith(machine.cpu_name()) and f"{os.cpu_count()} cores" in line and "torch " in line
    if "avx512f" in flags:
        assert "AVX-512" in line and ("with bf16" in line) == ("avx512_bf16" in flags)
    elif "avx2" in flags:
        assert "AVX2 (no AVX-512)" in line
