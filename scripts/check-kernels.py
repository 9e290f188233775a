#!/usr/bin/env python3
"""Compiles the GPU kernels (Sources/HPSCUDA/Kernels/Lookup.cu) with
NVRTC for sm_90, for the vec sizes and key types the tests and the demo use,
on a machine without a GPU: NVRTC needs none. A kernel that does not compile
fails here instead of on the GPU machine.

Needs libnvrtc: the CUDA toolkit's, or the `nvidia-cuda-nvrtc-cu12` wheel's
(found through the Python package). Usage: python3 scripts/check-kernels.py
"""
import ctypes
import glob
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = os.path.join(ROOT, "Sources/HPSCUDA/Kernels/Lookup.cu")


def find_nvrtc():
    candidates = []
    try:
        import nvidia.cuda_nvrtc as package  # the pip wheel
        candidates += glob.glob(os.path.join(list(package.__path__)[0], "lib", "libnvrtc.so*"))
    except ImportError:
        pass
    for root in ("/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu"):
        candidates += glob.glob(os.path.join(root, "libnvrtc.so*"))
    for path in candidates:
        if "builtins" not in path:
            return path
    sys.exit("check-kernels: no libnvrtc found; pip install nvidia-cuda-nvrtc-cu12")


def kernel_body():
    return open(SOURCE).read()


def lanes(dim, storage="fp32"):
    # As KernelSource.lanes: a float4 per lane, or 8 codes per lane for a quantized table.
    if storage == "fp32":
        units = dim // 4 if dim % 4 == 0 else dim
    else:
        units = dim // 8 if dim % 8 == 0 else dim
    n = 1
    while n < units and n < 32:
        n *= 2
    return n


# VectorStorage: (kernel code, float parameters per row, bytes per element).
STORAGES = {"fp32": (0, 0, 4), "fp16": (1, 0, 2), "bf16": (2, 0, 2), "int8": (3, 2, 1), "fp8": (4, 1, 1)}


def row_bytes(storage, dim):
    # As VectorStorage.rowBytes: fp32's floats alone; else parameters in 8 bytes, codes, padding to 8.
    _, parameters, code_bytes = STORAGES[storage]
    if storage == "fp32":
        return dim * 4
    return ((8 if parameters else 0) + dim * code_bytes + 7) & ~7


def specializations():
    # Every storage at the vec sizes of the tests and the benchmarks, both key types at fp32.
    for dim in (1, 3, 4, 8, 10, 16, 32, 64, 128, 256):
        for storage in STORAGES:
            for int64 in ((True, False) if storage == "fp32" else (True,)):
                yield dim, int64, storage, False
            # The lookups with a float16 output (OUT_FP16), int64 keys.
            yield dim, True, storage, True


def main():
    nvrtc = ctypes.CDLL(find_nvrtc())
    body = kernel_body()
    failures = 0
    compiled = 0
    for dim, int64, storage, half in specializations():
        source = (f"#define DIM {dim}\n#define LANES {lanes(dim, storage)}\n#define KEY_T {'long long' if int64 else 'unsigned int'}\n"
                  + f"#define STORAGE {STORAGES[storage][0]}\n#define ROW_BYTES {row_bytes(storage, dim)}\n"
                  + ("#define OUT_FP16 1\n" if half else "") + body)
        program = ctypes.c_void_p()
        rc = nvrtc.nvrtcCreateProgram(ctypes.byref(program), source.encode(), b"hps.cu", 0, None, None)
        if rc != 0:
            sys.exit(f"check-kernels: nvrtcCreateProgram failed ({rc})")
        options = (ctypes.c_char_p * 1)(b"--gpu-architecture=sm_90")
        rc = nvrtc.nvrtcCompileProgram(program, 1, options)
        size = ctypes.c_size_t()
        nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        nvrtc.nvrtcGetProgramLog(program, log)
        nvrtc.nvrtcDestroyProgram(ctypes.byref(program))
        if rc != 0:
            failures += 1
            print(f"DIM {dim}, {'int64' if int64 else 'uint32'} keys, {storage}{', fp16 output' if half else ''}: does not compile\n{log.value.decode()}")
        else:
            compiled += 1
    print(f"check-kernels: {compiled} of {compiled + failures} specializations compile for sm_90")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
