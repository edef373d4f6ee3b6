// nccl_absent.cpp: a process without NCCL that looks an NCCL call up anyway
// (dlsym(RTLD_DEFAULT)). Without neuzip there is none. Under libneuzip.so,
// which exports the calls it hooks, it finds neuzip's, which must fail
// cleanly: ncclSystemError and one `neuzip:` line, never a crash.
// usage: nccl_absent expect-none | expect-neuzip
#include <dlfcn.h>

#include <cstdio>
#include <cstring>

#include "nccl_abi.h"

int main(int argc, char** argv) {
  if (argc != 2) return 99;
  using AllReduce = ncclResult_t (*)(const void*, void*, size_t, ncclDataType_t, ncclRedOp_t, ncclComm_t, CUstream);
  auto fn = reinterpret_cast<AllReduce>(dlsym(RTLD_DEFAULT, "ncclAllReduce"));
  if (std::strcmp(argv[1], "expect-none") == 0) {
    if (fn != nullptr) {
      std::fprintf(stderr, "ncclAllReduce found in a process without NCCL\n");
      return 1;
    }
    std::printf("no ncclAllReduce, as expected\n");
    return 0;
  }
  if (fn == nullptr) {
    std::fprintf(stderr, "neuzip's ncclAllReduce not found: is libneuzip.so preloaded?\n");
    return 1;
  }
  const ncclResult_t r = fn(nullptr, nullptr, 0, ncclFloat32, ncclSum, nullptr, nullptr);
  if (r != ncclSystemError) {
    std::fprintf(stderr, "ncclAllReduce without NCCL returned %d, not ncclSystemError\n", static_cast<int>(r));
    return 1;
  }
  if (dlsym(RTLD_DEFAULT, "ncclGetVersion") != nullptr) {
    std::fprintf(stderr, "ncclGetVersion found: a probe for NCCL would be fooled\n");
    return 1;
  }
  std::printf("ncclSystemError, as expected\n");
  return 0;
}
