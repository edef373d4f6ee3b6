// nccl_abi.h: the part of NCCL's public ABI (nccl.h, NCCL 2.x) that neuzip's
// hooks and the test NCCL (tests/nccl) need: the same type names, enum values
// and signatures, written out so that nothing here needs NCCL's headers.
// Enum values must never change: they are what the real libnccl.so.2 expects.
#pragma once

#include <cuda.h>

#include <cstddef>

extern "C" {

typedef struct ncclComm* ncclComm_t;

#define NCCL_UNIQUE_ID_BYTES 128
typedef struct {
  char internal[NCCL_UNIQUE_ID_BYTES];
} ncclUniqueId;

typedef enum {
  ncclSuccess = 0,
  ncclUnhandledCudaError = 1,
  ncclSystemError = 2,
  ncclInternalError = 3,
  ncclInvalidArgument = 4,
  ncclInvalidUsage = 5,
  ncclRemoteError = 6,
  ncclInProgress = 7,
  ncclNumResults = 8
} ncclResult_t;

typedef enum {
  ncclInt8 = 0, ncclChar = 0,
  ncclUint8 = 1,
  ncclInt32 = 2, ncclInt = 2,
  ncclUint32 = 3,
  ncclInt64 = 4,
  ncclUint64 = 5,
  ncclFloat16 = 6, ncclHalf = 6,
  ncclFloat32 = 7, ncclFloat = 7,
  ncclFloat64 = 8, ncclDouble = 8,
  ncclBfloat16 = 9,
  ncclFloat8e4m3 = 10,
  ncclFloat8e5m2 = 11,
} ncclDataType_t;

typedef enum {
  ncclSum = 0,
  ncclProd = 1,
  ncclMax = 2,
  ncclMin = 3,
  ncclAvg = 4,
  ncclNumOps = 5,
  ncclMaxRedOp = 0x7fffffff
} ncclRedOp_t;

// cudaStream_t is CUstream (the runtime and the driver share the handle).
typedef CUstream ncclStream_t;

// A registered memory window (NCCL 2.27 and later: symmetric memory, one-sided puts).
typedef struct ncclWindow_vidmem* ncclWindow_t;
// The per-call configuration of the nccl*Config collectives of newer NCCLs
// (opaque here: passed through untouched).
typedef struct ncclCollConfig_v23100 ncclCollConfig_t;
// How many signals ncclWaitSignal (newer NCCLs, one-sided) waits for, from whom.
typedef struct {
  int opCnt;
  int peer;
  int sigIdx;
  int ctx;
} ncclWaitSignalDesc_t;
// What ncclGroupSimulateEnd (NCCL 2.22 and later) fills in: the group's estimated time.
typedef struct {
  size_t size;  // sizeof, set by the caller (NCCL_SIM_INFO_INITIALIZER)
  unsigned int magic;
  unsigned int version;
  float estimatedTime;
} ncclSimInfo_t;

}  // extern "C"

namespace nz::nccl {

// Bytes per element of an NCCL data type; 0 for a type this header does not
// know (a newer NCCL).
constexpr size_t type_size(ncclDataType_t t) noexcept {
  switch (t) {
    case ncclInt8: case ncclUint8: case ncclFloat8e4m3: case ncclFloat8e5m2: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    case ncclInt64: case ncclUint64: case ncclFloat64: return 8;
  }
  return 0;
}

}  // namespace nz::nccl
