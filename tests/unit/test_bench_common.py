"""What every benchmark records about the machine, and the ratios they report."""

from __future__ import annotations

from benchmarks.common import cpu_info, machine_label, ratio

# Two processors, as /proc/cpuinfo lists them; only the first is read.
EPYC = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 9R14
flags\t\t: fpu sse4_2 avx avx2 fma f16c avx512f avx512bw avx512vl avx512_vnni avx512_bf16

processor\t: 1
model name\t: something else
flags\t\t: fpu
"""
XEON_AVX2 = """processor\t: 0
model name\t: Intel(R) Xeon(R) CPU E5-2686 v4 @ 2.30GHz
flags\t\t: fpu sse4_2 avx avx2 fma f16c
"""


def test_cpu_info_reads_the_model_and_the_flags_that_move_the_figures() -> None:
    info = cpu_info(EPYC)
    assert info["model"] == "AMD EPYC 9R14"
    assert info["flags"]["avx512_vnni"] is True
    assert info["flags"]["avx2"] is True
    assert info["flags"]["amx_int8"] is False
    assert info["int8_vnni"] is True

    old = cpu_info(XEON_AVX2)
    assert old["model"].startswith("Intel(R) Xeon(R) CPU E5-2686")
    assert old["flags"]["avx512f"] is False
    assert old["int8_vnni"] is False


def test_machine_label_names_the_int8_kernels() -> None:
    assert machine_label(cpu_info(EPYC)).endswith("AVX-512 VNNI")
    assert machine_label(cpu_info(XEON_AVX2)).endswith("AVX2")


def test_ratio_is_value_over_reference_and_none_without_a_reference() -> None:
    assert ratio(1.39, 2.78) == 0.5
    assert ratio(38.0, 92.0, 3) == 0.413
    assert ratio(5.0, 0.0) is None
    assert ratio(None, 3.0) is None
