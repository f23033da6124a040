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
#ifdef __CUDACC__
#include <cuda_fp16.h>
#endif

#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

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
// the magnitudes 0,1,2,3,4,6,8,12 of codes 0..7 are the nibbles of one 32-bit constant.
__host__ __device__ __forceinline__ int e2m1_x2(unsigned nibble) {
    const int v = int((0xC8643210u >> (4u * (nibble & 7u))) & 0xFu);
    return (nibble & 8u) ? -v : v;
}

template <GgmlType T>
struct Dequant;

// Scaled<D>::codes exists for the decoders D with one scale per unit (see "Scaled units" below);
// kScaled<D> says whether it does.
template <class D>
struct Scaled {
    static constexpr bool kNone = true;
};
template <class D, class = void>
constexpr bool kScaled = true;
template <class D>
constexpr bool kScaled<D, std::void_t<decltype(Scaled<D>::kNone)>> = false;

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

// ---- DEVICE layout (repacked at load, matmul.cu's repack): the types decode reads most, rows
// made of one array of codes and one of scales, so the 8 elements of unit u are one aligned load
// at a fixed stride and a warp's 32 consecutive units are one coalesced transaction. Values and
// the unit order are those of the GGUF layout, bit for bit: only where the bytes sit changes.
//   MXFP4 row: codes[n/2] (byte j of block b = elements 32b+2j (low nibble), 32b+2j+1 (high)),
//              then e[n/32]; unit u = the u32 at codes + 4u, element 8(u%4)+i = nibble i.
//   Q8_0 row:  qs[n] (block b's 32 int8 at 32b), then d[n/32] (f16); unit u = the u64 at qs + 8u.
// The row stride is padded to 16 bytes (packed_row_bytes).
inline size_t packed_row_bytes(GgmlType t, int64_t n) {
    const size_t raw = t == GgmlType::MXFP4 ? size_t(n) / 2 + size_t(n) / 32 : size_t(n) + size_t(n) / 16;
    return (raw + 15) / 16 * 16;
}

template <GgmlType T>
struct Packed;

template <>
struct Packed<GgmlType::MXFP4> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t n, float w[8]) {
        const uint32_t q = reinterpret_cast<const uint32_t*>(row)[u];
        const float d = quant::e8m0_half(row[n / 2 + u / 4]);
WO_UNROLL
        for (int i = 0; i < 8; ++i) w[i] = mul_rn(float(e2m1_x2((q >> (4 * i)) & 0xFu)), d);
    }
};

template <>
struct Packed<GgmlType::Q8_0> {
    static __host__ __device__ __forceinline__ void unit(const uint8_t* row, int64_t u, int64_t n, float w[8]) {
        const uint2 q = reinterpret_cast<const uint2*>(row)[u];
        const float d = quant::f16_to_f32(reinterpret_cast<const uint16_t*>(row + n)[u / 4]);
WO_UNROLL
        for (int i = 0; i < 4; ++i) {
            w[i] = mul_rn(float(int8_t((q.x >> (8 * i)) & 0xFF)), d);
            w[4 + i] = mul_rn(float(int8_t((q.y >> (8 * i)) & 0xFF)), d);
        }
    }
};

// ---- Scaled units: the decode matvec's fast path for Q8_0 and MXFP4 (both layouts). codes()
// writes a unit's 8 codes as small exact floats c_i and returns the unit's scale s, with
//   value_i == c_i * kPre * s   exactly (kPre a power of two; the value as unit() gives it),
// so a dot can sum c_i * x_i and apply kPre and s once per unit: 8 elements cost 8 FMAs and a
// few integer ops instead of a conversion and a multiply each (bench/NOTES.md, fourth session).
//   Q8_0:  c_i = the int8 code, built as 2^23 + (code + 128) from its bits and then 2^23 + 128
//          subtracted (exact); s = d.
//   MXFP4: c_i = E2M1 * 2^-14, built as an f16 whose exponent's low two bits and mantissa's top
//          bit are the code's three magnitude bits (the f16 subnormal at exponent 0 is E2M1's
//          0 and 0.5), then converted exactly; kPre = 2^14, s = 2^(e-127) (e8m0, NaN at 255).
// Both need no table and no int-to-float conversion. The device and host builds give the same
// bits (the host converts the f16 in software; tests check both against unit()).
__host__ __device__ __forceinline__ float e8m0(uint8_t e) {
    if (e == 0xFF) return quant::f32_from_bits(0x7FC00000u);
    return quant::f32_from_bits(e == 0 ? 0x00400000u : uint32_t(e) << 23);
}

// Two f16 (low half, high half) as floats.
__host__ __device__ __forceinline__ void f16x2_to_f32(uint32_t h, float& lo, float& hi) {
#ifdef __CUDA_ARCH__
    __half2 v;
    static_assert(sizeof(v) == 4, "half2");
    memcpy(&v, &h, 4);
    const float2 f = __half22float2(v);
    lo = f.x, hi = f.y;
#else
    lo = quant::f16_to_f32(uint16_t(h & 0xFFFFu));
    hi = quant::f16_to_f32(uint16_t(h >> 16));
#endif
}

// q holds 8 E2M1 codes, element i in bits [4i, 4i+4). h[j] = the f16 pair (low half, high half)
// (E2M1_j, E2M1_{j+4}) * 2^-14, exactly: elements j and j+4 sit at the same bit offset of each
// 16-bit half, so one shift places both: magnitude bits -> f16 bits 9..11, sign -> 15. (An 11-op
// form that first copies each sign beside its magnitude measured slower on the H200, decode -1%
// and prefill -3%: its shifts and selects are a longer chain on the integer pipe; bench/NOTES.md,
// tenth session.)
__host__ __device__ __forceinline__ void e2m1x8_halves(uint32_t q, uint32_t h[4]) {
    h[0] = ((q << 9) & 0x0E000E00u) | ((q << 12) & 0x80008000u);
    h[1] = ((q << 5) & 0x0E000E00u) | ((q << 8) & 0x80008000u);
    h[2] = ((q << 1) & 0x0E000E00u) | ((q << 4) & 0x80008000u);
    h[3] = ((q >> 3) & 0x0E000E00u) | (q & 0x80008000u);
}

// The same codes as floats: c_i = E2M1_i * 2^-14.
__host__ __device__ __forceinline__ void e2m1x8_codes(uint32_t q, float c[8]) {
    uint32_t h[4];
    e2m1x8_halves(q, h);
WO_UNROLL
    for (int j = 0; j < 4; ++j) f16x2_to_f32(h[j], c[j], c[j + 4]);
}

// 4 int8 codes (bytes of q) as floats, exactly.
__host__ __device__ __forceinline__ void i8x4_codes(uint32_t q, float c[4]) {
#ifdef __CUDA_ARCH__
    const uint32_t b = q ^ 0x80808080u;  // code + 128, unsigned
WO_UNROLL
    for (int i = 0; i < 4; ++i)
        c[i] = __fsub_rn(__uint_as_float(__byte_perm(b, 0x4B000000u, 0x7650u | unsigned(i))), 8388736.0f);
#else
    for (int i = 0; i < 4; ++i) c[i] = float(int8_t((q >> (8 * i)) & 0xFFu));
#endif
}

template <>
struct Scaled<Dequant<GgmlType::Q8_0>> {
    static constexpr float kPre = 1.0f;
    static __host__ __device__ __forceinline__ float codes(const uint8_t* row, int64_t u, int64_t, float c[8]) {
        const auto* b = reinterpret_cast<const quant::BlockQ8_0*>(row) + u / 4;
        const uint16_t* q = reinterpret_cast<const uint16_t*>(b->qs + 8 * (u % 4));
        i8x4_codes(uint32_t(q[0]) | (uint32_t(q[1]) << 16), c);
        i8x4_codes(uint32_t(q[2]) | (uint32_t(q[3]) << 16), c + 4);
        return quant::f16_to_f32(b->d);
    }
};

template <>
struct Scaled<Packed<GgmlType::Q8_0>> {
    static constexpr float kPre = 1.0f;
    static __host__ __device__ __forceinline__ float codes(const uint8_t* row, int64_t u, int64_t n, float c[8]) {
        const uint2 q = reinterpret_cast<const uint2*>(row)[u];
        i8x4_codes(q.x, c);
        i8x4_codes(q.y, c + 4);
        return quant::f16_to_f32(reinterpret_cast<const uint16_t*>(row + n)[u / 4]);
    }
};

template <>
struct Scaled<Dequant<GgmlType::MXFP4>> {
    static constexpr float kPre = 16384.0f;
    static __host__ __device__ __forceinline__ float codes(const uint8_t* row, int64_t u, int64_t, float c[8]) {
        const auto* b = reinterpret_cast<const quant::BlockMxfp4*>(row) + u / 4;
        const int k = int(u % 4);
        const uint8_t* q = b->qs + 8 * (k % 2);
        const int shift = 4 * (k / 2);
        uint32_t w = 0;
WO_UNROLL
        for (int i = 0; i < 8; ++i) w |= uint32_t((q[i] >> shift) & 0xF) << (4 * i);
        e2m1x8_codes(w, c);
        return e8m0(b->e);
    }
};

template <>
struct Scaled<Packed<GgmlType::MXFP4>> {
    static constexpr float kPre = 16384.0f;
    static __host__ __device__ __forceinline__ float codes(const uint8_t* row, int64_t u, int64_t n, float c[8]) {
        e2m1x8_codes(reinterpret_cast<const uint32_t*>(row)[u], c);
        return e8m0(row[n / 2 + u / 4]);
    }
};

// The decoder of (type, layout): Dq<T, packed>::type::unit.
template <GgmlType T, bool P>
struct Dq {
    using type = Dequant<T>;
};
template <GgmlType T>
struct Dq<T, true> {
    using type = Packed<T>;
};

// Runs CALL with constexpr kT = the weight's type and kP = whether it is in the DEVICE layout
// (only Q8_0 and MXFP4 have one); any other pair throws DTYPE_UNSUPPORTED naming `what`.
#define WO_CUDA_FOR_WEIGHT(w, what, CALL)                                                           \
    if ((w).layout == WeightLayout::DEVICE) {                                                       \
        switch ((w).type) {                                                                         \
        case GgmlType::Q8_0: { constexpr GgmlType kT = GgmlType::Q8_0; constexpr bool kP = true; CALL; } break; \
        case GgmlType::MXFP4: { constexpr GgmlType kT = GgmlType::MXFP4; constexpr bool kP = true; CALL; } break; \
        default:                                                                                    \
            throw ::wo::Error(::wo::Code::DTYPE_UNSUPPORTED, std::string(what) +                    \
                                  ": no CUDA kernel for repacked type " + std::string(type_name((w).type))); \
        }                                                                                           \
    } else {                                                                                        \
        constexpr bool kP = false;                                                                  \
        WO_CUDA_FOR_TYPE((w).type, what, CALL);                                                     \
    }

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
