// neuzip_kernels.cu: the one translation unit compiled into the embedded
// fatbin. The kernels are extern "C" so the host finds them by plain name
// (kernel_abi.h); the algorithms live in the .cuh building blocks.
#include "decode_kernel.cuh"
#include "encode.cuh"
#include "guard.cuh"
#include "hash.cuh"
#include "kernel_abi.h"

using namespace nz::kernels;

extern "C" __global__ void __launch_bounds__(kDecodeWarpsPerBlock * 32) nz_decode_kernel(DecodeArgs args) {
  decode_buffer(args);
}

extern "C" __global__ void __launch_bounds__(kDecodeWarpsPerBlock * 32) nz_decode_batch_kernel(DecodeBatchArgs args) {
  decode_batch(args);
}

extern "C" __global__ void __launch_bounds__(kHashThreads) nz_hash_kernel(HashArgs args) {
  hash_range(reinterpret_cast<const uint8_t*>(args.data), args.len, reinterpret_cast<uint64_t*>(args.out));
}

extern "C" __global__ void __launch_bounds__(kGuardThreads) nz_guard_batch_kernel(GuardBatchArgs args) {
  guard_batch(args);
}

extern "C" __global__ void __launch_bounds__(kEncodeWarpsPerBlock * 32) nz_encode_analyse_kernel(EncodeArgs args) {
  encode_analyse(args);
}

extern "C" __global__ void __launch_bounds__(kLayoutThreads) nz_encode_table_kernel(EncodeArgs args) {
  encode_table(args);
}

extern "C" __global__ void __launch_bounds__(kEncodeWarpsPerBlock * 32) nz_encode_rans_kernel(EncodeArgs args) {
  encode_rans(args);
}

extern "C" __global__ void __launch_bounds__(kLayoutThreads) nz_encode_layout_kernel(EncodeArgs args) {
  encode_layout(args);
}

extern "C" __global__ void __launch_bounds__(kEncodeWarpsPerBlock * 32) nz_encode_emit_kernel(EncodeArgs args) {
  encode_emit(args);
}
