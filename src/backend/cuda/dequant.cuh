// Device dequantization of every weight type, 8 elements at a time, bit-exact with quant/'s CPU
// dequantize_row_* (same formulas, same rounding: every product and difference is written with
// an explicit _rn intrinsic so nvcc cannot contract it into an FMA the CPU does not do).
//
// A row is walked in "units" of 8 consecutive elements [8u, 8u+8): every block format's block
// (32 or 256 elements) is a whole number of units, and the 8 elements of a unit share one scale
// (and min) and sit at 8 consecutive bytes of the block's code arrays, so a unit is a few small
// loads and integer ops. Only the float types may have a row length that is not a multiple of 8;
// their last unit reads elements < n only and gives 0 beyond.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "gguf/types.h"
#include "quant/blocks.h"
#include "util/error.h"

// `#pragma unroll` for nvcc; nothing for a host compiler (tests build these decoders for the host).
#ifdef __CUDACC__
#define WO_UNROLL _Pragma("unroll")
#else
#define WO_UNROLL
#endif

namespace wo::cuda {

// Single roundings the compiler may not fuse (the host versions exist for host-side checks of
// the index arithmetic; nvcc's host compiler runs without FP contraction in ISO C++ mode).
__host__ __device__ __forceinline__ float mul_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}
__host__ __device__ __forceinline__ float sub_rn(float a, float b) {
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

// quant::e2m1_x2 without its table (a local array would live in slow local memory on the device):
// magnitudes 0,1,2,3 for codes 0..3, then 4,6,8,12 = (4 + 2*(m&1)) << ((m>>1)&1) for codes 4..7.
__host__ __device__ __forceinline__ int e2m1_x2(unsigned nibble) {
    const unsigned m = nibble & 7u;
    const int v = m < 4 ? int(m) : int((4u + 2u * (m & 1u)) << ((m >> 1) & 1u));
    return (nibble & 8u) ? -v : v;
}

template <GgmlType T>
struct Dequant;

template <>
struct Dequant<GgmlType::F32> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t n, float w[8]) {
        const float* p = reinterpret_cast<const float*>(row) + 8 * u;
        if (8 * u + 8 <= n) {
WO_UNROLL
            for (int i = 0; i < 8; ++i) w[i] = p[i];
        } else {
WO_UNROLL
            for (int i = 0; i < 8; ++i) w[i] = 8 * u + i < n ? p[i] : 0.0f;
        }
    }
};

template <>
struct Dequant<GgmlType::F16> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t n, float w[8]) {
        const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + 8 * u;
WO_UNROLL
        for (int i = 0; i < 8; ++i) w[i] = 8 * u + i < n ? quant::f16_to_f32(p[i]) : 0.0f;
    }
};

template <>
struct Dequant<GgmlType::BF16> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t n, float w[8]) {
        const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + 8 * u;
WO_UNROLL
        for (int i = 0; i < 8; ++i) w[i] = 8 * u + i < n ? quant::bf16_to_f32(p[i]) : 0.0f;
    }
};

// Q8_0: unit k of a block is qs[8k..8k+8) (2-byte aligned in the 34-byte block: 4 u16 loads).
template <>
struct Dequant<GgmlType::Q8_0> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row) + u / 4;
        const float d = quant::f16_to_f32(b->d);
        const uint16_t* q = reinterpret_cast<const uint16_t*>(b->qs + 8 * (u % 4));
WO_UNROLL
        for (int i = 0; i < 4; ++i) {
            const uint16_t v = q[i];
            w[2 * i] = mul_rn(float(int8_t(v & 0xFF)), d);
            w[2 * i + 1] = mul_rn(float(int8_t(v >> 8)), d);
        }
    }
};

// Q4_0: unit k holds elements 8k..8k+7: the low nibbles (k < 2) or high nibbles (k >= 2) of
// qs[8(k%2)..8(k%2)+8).
template <>
struct Dequant<GgmlType::Q4_0> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ4_0*>(row) + u / 4;
        const int k = int(u % 4);
        const float d = quant::f16_to_f32(b->d);
        const uint8_t* q = b->qs + 8 * (k % 2);
        const int shift = 4 * (k / 2);
WO_UNROLL
        for (int i = 0; i < 8; ++i) w[i] = mul_rn(float(((q[i] >> shift) & 0xF) - 8), d);
    }
};

// Q5_0: as Q4_0 plus the fifth bit of element j = bit j of qh (little-endian uint32).
template <>
struct Dequant<GgmlType::Q5_0> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ5_0*>(row) + u / 4;
        const int k = int(u % 4);
        const float d = quant::f16_to_f32(b->d);
        const uint16_t* h = reinterpret_cast<const uint16_t*>(b->qh);  // offset 2: 2-byte aligned
        const uint32_t qh = uint32_t(h[0]) | (uint32_t(h[1]) << 16);
        const uint8_t* q = b->qs + 8 * (k % 2);
        const int shift = 4 * (k / 2);
WO_UNROLL
        for (int i = 0; i < 8; ++i) {
            const int e = 8 * k + i;
            const int code = int((q[i] >> shift) & 0xF) | int(((qh >> e) & 1u) << 4);
            w[i] = mul_rn(float(code - 16), d);
        }
    }
};

// MXFP4: nibble layout as Q4_0; value = e2m1_x2(nibble) * 2^(e-128) (exact; e = 0xFF is NaN).
template <>
struct Dequant<GgmlType::MXFP4> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockMxfp4*>(row) + u / 4;
        const int k = int(u % 4);
        const float d = quant::e8m0_half(b->e);
        const uint8_t* q = b->qs + 8 * (k % 2);
        const int shift = 4 * (k / 2);
WO_UNROLL
        for (int i = 0; i < 8; ++i) w[i] = mul_rn(float(e2m1_x2((q[i] >> shift) & 0xFu)), d);
    }
};

// Q4_K: unit v of a super-block lies in sub-block j = v/4 (pair p = j/2, nibble j%2), bytes
// qs[32p + 8(v%4) ..+8); y = (d*sc)*q - (dmin*m), each step rounded as on the CPU.
template <>
struct Dequant<GgmlType::Q4_K> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ4_K*>(row) + u / 32;
        const int v = int(u % 32), j = v / 4;
        uint8_t sc, m;
        quant::scale_min_k4(j, b->scales, sc, m);
        const float d1 = mul_rn(quant::f16_to_f32(b->d), float(sc));
        const float m1 = mul_rn(quant::f16_to_f32(b->dmin), float(m));
        const uint8_t* q = b->qs + 32 * (j / 2) + 8 * (v % 4);
        const int shift = 4 * (j % 2);
WO_UNROLL
        for (int i = 0; i < 8; ++i) w[i] = sub_rn(mul_rn(d1, float((q[i] >> shift) & 0xF)), m1);
    }
};

// Q5_K: Q4_K plus the fifth bit of sub-block j's element l (0..31) = bit j of qh[l].
template <>
struct Dequant<GgmlType::Q5_K> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ5_K*>(row) + u / 32;
        const int v = int(u % 32), j = v / 4;
        uint8_t sc, m;
        quant::scale_min_k4(j, b->scales, sc, m);
        const float d1 = mul_rn(quant::f16_to_f32(b->d), float(sc));
        const float m1 = mul_rn(quant::f16_to_f32(b->dmin), float(m));
        const uint8_t* q = b->qs + 32 * (j / 2) + 8 * (v % 4);
        const uint8_t* h = b->qh + 8 * (v % 4);
        const int shift = 4 * (j % 2);
WO_UNROLL
        for (int i = 0; i < 8; ++i) {
            const int code = int((q[i] >> shift) & 0xF) + (((h[i] >> j) & 1) ? 16 : 0);
            w[i] = sub_rn(mul_rn(d1, float(code)), m1);
        }
    }
};

// Q6_K: element E = 8v of the super-block: half h = E/128, quarter k = (E%128)/32, l = E%32;
// ql[64h + 32(k%2) + l] nibble k/2, qh[32h + l] bits 2k..2k+1, scale scales[8h + 2k + l/16].
template <>
struct Dequant<GgmlType::Q6_K> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t, float w[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ6_K*>(row) + u / 32;
        const int e = 8 * int(u % 32);
        const int h = e / 128, k = (e % 128) / 32, l = e % 32;
        const float ds = mul_rn(quant::f16_to_f32(b->d), float(b->scales[8 * h + 2 * k + l / 16]));
        const uint8_t* ql = b->ql + 64 * h + 32 * (k % 2) + l;
        const uint8_t* qh = b->qh + 32 * h + l;
        const int shift = 4 * (k / 2);
WO_UNROLL
        for (int i = 0; i < 8; ++i) {
            const int code = int((ql[i] >> shift) & 0xF) | (((qh[i] >> (2 * k)) & 3) << 4);
            w[i] = mul_rn(ds, float(code - 32));
        }
    }
};

// Runs CALL with the constexpr GgmlType kT set to the weight type t (one case per type with a
// device decoder); any other type throws DTYPE_UNSUPPORTED naming `what`.
#define WO_CUDA_FOR_TYPE(t, what, CALL)                                                         \
    switch (t) {                                                                                \
    case GgmlType::F32: { constexpr GgmlType kT = GgmlType::F32; CALL; } break;                \
    case GgmlType::F16: { constexpr GgmlType kT = GgmlType::F16; CALL; } break;                \
    case GgmlType::BF16: { constexpr GgmlType kT = GgmlType::BF16; CALL; } break;              \
    case GgmlType::Q8_0: { constexpr GgmlType kT = GgmlType::Q8_0; CALL; } break;              \
    case GgmlType::Q4_0: { constexpr GgmlType kT = GgmlType::Q4_0; CALL; } break;              \
    case GgmlType::Q5_0: { constexpr GgmlType kT = GgmlType::Q5_0; CALL; } break;              \
    case GgmlType::Q4_K: { constexpr GgmlType kT = GgmlType::Q4_K; CALL; } break;              \
    case GgmlType::Q5_K: { constexpr GgmlType kT = GgmlType::Q5_K; CALL; } break;              \
    case GgmlType::Q6_K: { constexpr GgmlType kT = GgmlType::Q6_K; CALL; } break;              \
    case GgmlType::MXFP4: { constexpr GgmlType kT = GgmlType::MXFP4; CALL; } break;            \
    default:                                                                                    \
        throw ::wo::Error(::wo::Code::DTYPE_UNSUPPORTED,                                        \
                          std::string(what) + ": no CUDA kernel for type " + std::string(type_name(t))); \
    }

}  // namespace wo::cuda
