// simd_avx2.h: what every AVX2 translation unit of the codec shares: the
// target attribute (no global -march: each AVX2 function carries it, and
// runs only where cpu_level() allows AVX2) and the intrinsics header.
//
// Include only from a translation unit that has already checked for an
// x86-64 GCC/Clang build.
#pragma once

#if !defined(__x86_64__) || !(defined(__GNUC__) || defined(__clang__))
#error "simd_avx2.h is for x86-64 GCC/Clang builds only"
#endif

#include <immintrin.h>

#define NZ_TARGET_AVX2 __attribute__((target("avx2,popcnt")))
