"""neuzip for Python programs: where libneuzip.so is, and its C API.

neuzip keeps GPU weight buffers compressed in device memory; it works by
being preloaded into the process (``LD_PRELOAD``), not by being imported.
This module only helps a program that runs under it::

    LD_PRELOAD=$(python -c 'import neuzip; print(neuzip.lib_path())') python train.py
    nztrace -- python train.py          # the same, then a report (console script)

and, inside the program::

    import neuzip
    neuzip.tag(weight, "bf16")   # declare a weight (e.g. for a lossy mode)
    neuzip.tag_parameters(model) # every parameter, each with its dtype
    neuzip.flush()               # compress what is tagged now
    print(neuzip.stats())

Tensors are duck-typed (``data_ptr()``, ``numel()``, ``element_size()``, and
``dtype`` when no dtype is given): torch is not needed to import this module.
When libneuzip.so is not preloaded every call is a no-op that warns once.
"""

import ctypes
import os
import warnings

__all__ = ["lib_path", "is_loaded", "tag", "tag_parameters", "untag", "flush", "stats", "TAG_DTYPES"]

# NZ_TAG_* of include/neuzip/runtime.h, by the names people use for them.
TAG_DTYPES = {
    "bytes": 0, "uint8": 0, "int8": 0,
    "bf16": 1, "bfloat16": 1,
    "fp16": 2, "float16": 2, "half": 2,
    "fp32": 3, "float32": 3, "float": 3,
}

# nz_runtime_stats, in order (include/neuzip/runtime.h).
_STATS_FIELDS = (
    "bytes_tagged", "bytes_compressible", "bytes_original_compressed", "bytes_compressed",
    "staging_bytes", "staging_bytes_peak", "staging_budget", "device_bytes_saved",
    "device_bytes_saved_peak", "faults", "decompressions", "recompressions", "drops",
    "prefetches", "launches_seen", "checksum_failures",
    "vmm_calls", "decode_launches", "bytes_decompressed", "hook_host_ns",
    "hook_wait_ns", "stagings_ahead", "stagings_on_launch",
    "unserved_bytes_peak",
    "stalled_waits",
)


class _Stats(ctypes.Structure):
    _fields_ = [(name, ctypes.c_uint64) for name in _STATS_FIELDS]


_NZ_RT_OK, _NZ_RT_INACTIVE = 0, -1
_api = None
_warned = False


def lib_path():
    """The libneuzip.so to preload: $NEUZIP_LIB if set, else the one installed with this package."""
    env = os.environ.get("NEUZIP_LIB")
    if env:
        return env
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib", "libneuzip.so")


def _runtime():
    """The process's own symbols when libneuzip.so is preloaded, else None (warned once)."""
    global _api, _warned
    if _api is None:
        process = ctypes.CDLL(None)
        if hasattr(process, "nz_tag") and hasattr(process, "nz_stats"):
            process.nz_tag.argtypes = [ctypes.c_uint64, ctypes.c_size_t, ctypes.c_int]
            process.nz_untag.argtypes = [ctypes.c_uint64, ctypes.c_size_t]
            process.nz_stats.argtypes = [ctypes.POINTER(_Stats), ctypes.c_size_t]
            process.nz_flush.argtypes = []
            for fn in (process.nz_tag, process.nz_untag, process.nz_stats, process.nz_flush):
                fn.restype = ctypes.c_int
            _api = process
        else:
            _api = False
    if _api is False:
        if not _warned:
            _warned = True
            warnings.warn("neuzip: libneuzip.so is not preloaded (LD_PRELOAD=neuzip.lib_path()); "
                          "neuzip calls do nothing", RuntimeWarning, stacklevel=3)
        return None
    return _api


def is_loaded():
    """Whether libneuzip.so is preloaded into this process (no warning)."""
    return bool(hasattr(ctypes.CDLL(None), "nz_tag"))


def _dtype_code(tensor, dtype):
    if dtype is None:
        dtype = getattr(tensor, "dtype", "bytes")
    if isinstance(dtype, int) and dtype in TAG_DTYPES.values():
        return dtype
    name = str(dtype).rsplit(".", 1)[-1].lower()  # "torch.bfloat16" -> "bfloat16"
    if name not in TAG_DTYPES:
        raise ValueError(f"neuzip: unknown dtype {dtype!r} (one of {sorted(TAG_DTYPES)})")
    return TAG_DTYPES[name]


def _extent(tensor):
    return int(tensor.data_ptr()), int(tensor.numel()) * int(tensor.element_size())


def tag(tensor, dtype=None):
    """Declare `tensor`'s device memory a weight of `dtype` ("bf16", "fp16", "fp32", "bytes", or a
    torch dtype; default: tensor.dtype). Returns True when the runtime took it. With
    NEUZIP_TAG_EXTENTS=1 a declared tensor is staged alone (kernels must read it within itself)."""
    code = _dtype_code(tensor, dtype)
    api = _runtime()
    if api is None:
        return False
    ptr, size = _extent(tensor)
    return size > 0 and api.nz_tag(ptr, size, code) == _NZ_RT_OK


def tag_parameters(module):
    """Declare every parameter of `module` (a torch.nn.Module, or anything with ``parameters()``)
    with its own dtype, as tag() does for one tensor: what to call after ``model.to('cuda')``.
    With NEUZIP_TAG_EXTENTS=1 each parameter is then staged alone, not with the parameters after
    it in its allocator segment (kernels must read each parameter within itself). Parameters
    not on the GPU, empty ones and those of an element type neuzip has no name for (declared as
    "bytes") are handled; returns how many the runtime took."""
    taken = 0
    for p in module.parameters():
        if getattr(p, "is_cuda", True) is False:
            continue
        try:
            ok = tag(p)
        except ValueError:
            ok = tag(p, "bytes")
        taken += bool(ok)
    return taken


def untag(tensor):
    """Undo tag(): the range becomes ordinary resident memory again. Returns True when it was managed."""
    api = _runtime()
    if api is None:
        return False
    ptr, size = _extent(tensor)
    return size > 0 and api.nz_untag(ptr, size) == _NZ_RT_OK


def flush():
    """Compress now everything tagged (e.g. right after loading a model). Returns True when active."""
    api = _runtime()
    return api is not None and api.nz_flush() == _NZ_RT_OK


def stats():
    """The runtime's counters (nz_stats) as a dict, plus "active": whether the runtime runs (it
    starts with the CUDA driver). All zero, and active False, when it does not."""
    out = {name: 0 for name in _STATS_FIELDS}
    out["active"] = False
    api = _runtime()
    if api is None:
        return out
    s = _Stats()
    if api.nz_stats(ctypes.byref(s), ctypes.sizeof(s)) == _NZ_RT_OK:
        out.update({name: int(getattr(s, name)) for name in _STATS_FIELDS})
        out["active"] = True
    return out
