// CPU RoPE and attention over the per-slot KV cache (sliding window, attention sinks).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "backend/cpu/cpu_backend.h"
#include "util/error.h"

namespace wo::cpu {

void CpuBackend::rope(Tensor x, Tensor pos, const RopeParams& p) {
    WO_CHECK(p.n_dims % 2 == 0 && p.n_dims <= p.head_dim &&
                 x.cols() >= static_cast<int64_t>(p.n_head) * p.head_dim && p.inv_freq.cols() == p.n_dims / 2,
             "rope shapes");
    const float* inv = p.inv_freq.f32(0);
    const float mscale = rope_attn_factor(p);
    const int half = p.n_dims / 2;
    pool_.parallel_for(x.rows(), 4, [&](int64_t b, int64_t e, int t) {
        float* cs = scratch(t, static_cast<size_t>(2 * half));
        for (int64_t i = b; i < e; ++i) {
            const float fp = static_cast<float>(pos.i32()[i]);
            for (int j = 0; j < half; ++j) {
                const float theta = fp * inv[j];  // f32 like the HF reference
                cs[2 * j] = std::cos(theta) * mscale;
                cs[2 * j + 1] = std::sin(theta) * mscale;
            }
            for (int h = 0; h < p.n_head; ++h) {
                float* v = x.f32(i) + static_cast<int64_t>(h) * p.head_dim;
                for (int j = 0; j < half; ++j) {
                    const int ia = p.mode == RopeMode::NORM ? 2 * j : j;
                    const int ib = p.mode == RopeMode::NORM ? 2 * j + 1 : j + half;
                    const float a = v[ia], c = v[ib], co = cs[2 * j], si = cs[2 * j + 1];
                    v[ia] = a * co - c * si;
                    v[ib] = c * co + a * si;
                }
            }
        }
    });
}

void CpuBackend::kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot) {
    const int64_t kv_dim = kv.k.cols();
    WO_CHECK(k.cols() == kv_dim && v.cols() == kv_dim && kv.k.type == GgmlType::F32 && kv.n_rows == kv.k.rows(),
             "kv_store shapes");
    for (int64_t i = 0; i < k.rows(); ++i) {
        const int32_t ps = pos.i32()[i], sl = slot.i32()[i];
        WO_CHECK(ps >= 0 && sl >= 0 && sl < kv.k.mats(), "kv_store position/slot out of range");
        const int64_t row = ps % kv.n_rows;
        std::memcpy(kv.k.f32(row, sl), k.f32(i), static_cast<size_t>(kv_dim) * sizeof(float));
        std::memcpy(kv.v.f32(row, sl), v.f32(i), static_cast<size_t>(kv_dim) * sizeof(float));
    }
}

void CpuBackend::attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& s, const AttnParams& p) {
    const int64_t n = q.rows(), hd = p.head_dim, kv_dim = static_cast<int64_t>(p.n_head_kv) * hd;
    WO_CHECK(p.n_head % p.n_head_kv == 0 && q.cols() == p.n_head * hd && kv.k.cols() == kv_dim &&
                 kv.k.type == GgmlType::F32 && out.cols() == p.n_head * hd && n == s.n,
             "attention shapes");
    const int group = p.n_head / p.n_head_kv;
    pool_.parallel_for(n * p.n_head, 1, [&](int64_t b, int64_t e, int t) {
        for (int64_t idx = b; idx < e; ++idx) {
            const int64_t i = idx / p.n_head;
            const int h = static_cast<int>(idx % p.n_head);
            const int64_t off = static_cast<int64_t>(h / group) * hd;
            const int32_t ps = s.pos.i32()[i], sl = s.slot.i32()[i];
            const int32_t j0 = p.window > 0 ? std::max(0, ps - p.window + 1) : 0;
            const int64_t len = ps - j0 + 1;
            WO_CHECK(len <= kv.n_rows, "attention span exceeds the cache rows");
            float* sc = scratch(t, static_cast<size_t>(len));
            const float* qh = q.f32(i) + static_cast<int64_t>(h) * hd;
            float m = -std::numeric_limits<float>::infinity();
            for (int64_t j = 0; j < len; ++j) {
                sc[j] = dot(qh, kv.k.f32((j0 + j) % kv.n_rows, sl) + off, hd) * p.scale;
                m = std::max(m, sc[j]);
            }
            // The sink joins the softmax denominator only (it has no value vector).
            const float sink = p.sinks ? p.sinks->f32(0)[h] : 0.0f;
            if (p.sinks) m = std::max(m, sink);
            float sum = p.sinks ? std::exp(sink - m) : 0.0f;
            for (int64_t j = 0; j < len; ++j) {
                sc[j] = std::exp(sc[j] - m);
                sum += sc[j];
            }
            float* o = out.f32(i) + static_cast<int64_t>(h) * hd;
            std::fill(o, o + hd, 0.0f);
            for (int64_t j = 0; j < len; ++j) {
                const float wj = sc[j] / sum;
                const float* vr = kv.v.f32((j0 + j) % kv.n_rows, sl) + off;
                for (int64_t c = 0; c < hd; ++c) o[c] += wj * vr[c];
            }
        }
    });
}

}  // namespace wo::cpu
