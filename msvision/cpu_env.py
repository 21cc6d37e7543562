"""CPU speed setting that must be in the environment before MindSpore creates oneDNN kernels."""
import os
import platform

ONEDNN_ISA_VAR = "ONEDNN_MAX_CPU_ISA"
FAST_ISA = "AVX2"


def apply_cpu_speed_setting():
    """Cap oneDNN at AVX2 on x86 unless the user chose a value.

    MindSpore 2.10's bundled oneDNN falls back to a reference Conv2D kernel on AVX-512 CPUs; capped at AVX2 it uses
    its jit GEMM kernels (the README's Performance section has the figures). Returns the value in force.
    """
    if platform.machine().lower() in ("x86_64", "amd64") and ONEDNN_ISA_VAR not in os.environ:
        os.environ[ONEDNN_ISA_VAR] = FAST_ISA
    return os.environ.get(ONEDNN_ISA_VAR)
