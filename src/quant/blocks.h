// Byte layouts of the quantized ggml blocks, as llama.cpp writes them into GGUF files.
// POD structs shared by the CPU reference (src/quant/*.cpp) and the CUDA kernels; every field
// is a byte array or a uint16_t at an even offset, so the structs have no padding and alias the
// file bytes directly. Ids, names and sizes of the types are in gguf/types.h; the sizes asserted
// here are the same numbers (tests/quant checks them against that table).
// Scales stored as uint16_t are IEEE binary16 bits (decode with quant/fp16.h).
#pragma once
#include <cstdint>

#include "quant/fp16.h"
#include "quant/hd.h"  // WO_HD: __host__ __device__ under nvcc, empty otherwise

namespace wo::quant {

inline constexpr int kQK = 32;    // elements per block of the 32-wide formats
inline constexpr int kQK_K = 256; // elements per super-block of the K-quants

// Q8_0: y[j] = qs[j] * d.  8.5 bits per weight.
struct BlockQ8_0 {
    uint16_t d;
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_0) == 34);

// Q4_0: 4-bit codes q in 0..15, y = (q - 8) * d. Byte j holds element j in its low nibble and
// element j+16 in its high nibble (not pairwise). 4.5 bits per weight.
struct BlockQ4_0 {
    uint16_t d;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// Q5_0: 5-bit codes, y = (q - 16) * d. Low 4 bits as Q4_0; the fifth bit of element j is bit j
// of qh read as a little-endian uint32 (so elements 16..31 use bits 16..31). 5.5 bits per weight.
struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// Q4_K: 256 elements in 8 sub-blocks of 32, each with a 6-bit scale sc and 6-bit min m packed in
// `scales` (see scale_min_k4); y = (d*sc) * q - (dmin*m) with q in 0..15. Within each 64-element
// pair of sub-blocks, qs[32*p + l] holds element 64p+l (low nibble) and 64p+32+l (high nibble).
// 4.5 bits per weight.
struct BlockQ4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit: element 64p+l takes bit 2p of qh[l], element 64p+32+l bit 2p+1.
// 5.5 bits per weight.
struct BlockQ5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[kQK_K / 8];
    uint8_t qs[kQK_K / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 sub-blocks of 16 with int8 scales, y = (d*sc) * (q - 32), q in 0..63. In each half
// h (128 elements), for l in 0..31: element 128h+l     = ql[64h+l]    low  | qh[32h+l] bits 0-1,
//                                      128h+32+l  = ql[64h+32+l] low  | qh bits 2-3,
//                                      128h+64+l  = ql[64h+l]    high | qh bits 4-5,
//                                      128h+96+l  = ql[64h+32+l] high | qh bits 6-7;
// element i uses scales[i / 16]. 6.5625 bits per weight.
struct BlockQ6_K {
    uint8_t ql[kQK_K / 2];
    uint8_t qh[kQK_K / 4];
    int8_t scales[kQK_K / 16];
    uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// MXFP4 (OCP MX v1.0): 32 E2M1 elements sharing an E8M0 scale X = 2^(e-127), e = 0xFF is NaN.
// Byte j of qs holds element j in its low nibble and element j+16 in its high nibble.
// Nibble = sign bit (8) | magnitude code 0..7 -> {0, 0.5, 1, 1.5, 2, 3, 4, 6}. 4.25 bits per weight.
struct BlockMxfp4 {
    uint8_t e;
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockMxfp4) == 17);

// Twice the E2M1 value of a nibble, as an integer (ggml's convention): with the scale halved to
// 2^(e-128) every product below is exact, so value = e2m1_x2(q) * e8m0_half(e) is the true
// E2M1 * 2^(e-127), rounded only where it leaves the float range (e = 254 with |value| >= 4).
// The sign bit of a zero is dropped, so nibble 8 (-0) decodes as +0.0f, as llama.cpp does.
WO_HD inline int e2m1_x2(uint8_t nibble) {
    const int mag[8] = {0, 1, 2, 3, 4, 6, 8, 12};
    const int v = mag[nibble & 7];
    return (nibble & 8) ? -v : v;
}

// 2^(e-128) as a float; e = 0 and 1 are float subnormals (exact). e = 0xFF is the OCP NaN
// scale; llama.cpp ignores it (it would read 2^127), worker-orcd follows the spec.
WO_HD inline float e8m0_half(uint8_t e) {
    if (e == 0xFF) return f32_from_bits(0x7FC00000u);
    if (e < 2) return f32_from_bits(0x00200000u << e);
    return f32_from_bits(uint32_t(e - 1) << 23);
}

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K/Q5_K block: sub-blocks 0..3 use the
// low 6 bits of bytes j and j+4; sub-blocks 4..7 take their low 4 bits from byte j+4 and their
// top 2 bits from the top bits of bytes j-4 (scale) and j (min).
WO_HD inline void scale_min_k4(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

}  // namespace wo::quant
