#!/usr/bin/env python3
"""A small program on the CUDA driver API through ctypes, for the tests of
nztrace and of the `neuzip` module on the simulated driver
(LD_LIBRARY_PATH=<build>/tests/sim): it allocates a buffer, fills it from
the host with fp32 weights, optionally tags it through `neuzip` and flushes
(compresses) it, reads it back and checks every byte, then exits, aborts or
kills itself.

usage: sim_ctypes_app.py [--mib N] [--neuzip] [--end exit|abort|kill]
stdout: "roundtrip ok" and, with --neuzip, "stats: <json of neuzip.stats()>".
"""
import argparse
import array
import ctypes
import json
import math
import os
import signal
import sys


def check(rc, what):
    if rc != 0:
        sys.exit(f"sim_ctypes_app: {what} failed: CUresult {rc}")


class DeviceTensor:
    """What neuzip.tag() needs of a tensor, as torch.Tensor has it."""

    def __init__(self, ptr, nbytes):
        self.ptr, self.nbytes = ptr, nbytes
        self.dtype = "float32"

    def data_ptr(self):
        return self.ptr

    def numel(self):
        return self.nbytes // 4

    def element_size(self):
        return 4


def allocate(cuda, nbytes):
    # A Python frame of its own: the allocation site must name this line.
    ptr = ctypes.c_uint64()
    check(cuda.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(nbytes)), "cuMemAlloc_v2")
    return ptr.value


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--mib", type=int, default=4)
    p.add_argument("--neuzip", action="store_true")
    p.add_argument("--end", choices=["exit", "abort", "kill"], default="exit")
    args = p.parse_args()

    # PyDLL, not CDLL: calls keep the GIL, as framework allocators do, so the
    # runtime can read this thread's Python frames.
    cuda = ctypes.PyDLL("libcuda.so.1")
    check(cuda.cuInit(0), "cuInit")
    dev = ctypes.c_int()
    check(cuda.cuDeviceGet(ctypes.byref(dev), 0), "cuDeviceGet")
    ctx = ctypes.c_void_p()
    check(cuda.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev), "cuDevicePrimaryCtxRetain")
    check(cuda.cuCtxSetCurrent(ctx), "cuCtxSetCurrent")

    nbytes = args.mib << 20
    ptr = allocate(cuda, nbytes)
    # Weight-like values: small, with few distinct exponents (compressible).
    host = array.array("f", (0.02 * math.sin(i * 0.001) for i in range(nbytes // 4))).tobytes()
    check(cuda.cuMemcpyHtoD_v2(ctypes.c_uint64(ptr), host, ctypes.c_size_t(nbytes)), "cuMemcpyHtoD_v2")

    if args.neuzip:
        import neuzip

        weight = DeviceTensor(ptr, nbytes)
        print("tag:", neuzip.tag(weight))

        class Halves:  # a module of two parameters, as torch.nn.Module has them
            def parameters(self):
                return iter([DeviceTensor(ptr, nbytes // 2), DeviceTensor(ptr + nbytes // 2, nbytes // 2)])

        print("tag_parameters:", neuzip.tag_parameters(Halves()))
        print("flush:", neuzip.flush())
        print("stats:", json.dumps(neuzip.stats()))
        sys.stdout.flush()

    back = ctypes.create_string_buffer(nbytes)
    check(cuda.cuMemcpyDtoH_v2(back, ctypes.c_uint64(ptr), ctypes.c_size_t(nbytes)), "cuMemcpyDtoH_v2")
    if back.raw != host:
        sys.exit("sim_ctypes_app: the data read back differs")
    print("roundtrip ok")
    sys.stdout.flush()

    if args.end == "abort":
        os.abort()
    if args.end == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    check(cuda.cuMemFree_v2(ctypes.c_uint64(ptr)), "cuMemFree_v2")
    return 0


if __name__ == "__main__":
    sys.exit(main())
