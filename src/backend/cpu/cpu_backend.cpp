// CPU backend: memory, lookups, norms, element-wise activations, taps and the factory.
// Matmul/MoE live in ops_matmul.cpp, RoPE/attention in ops_attention.cpp.
#include "backend/cpu/cpu_backend.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <new>

#include "backend/cpu/row.h"
#include "backend/cpu/sample.h"
#include "util/error.h"

namespace wo::cpu {

CpuBackend::CpuBackend(int n_threads) : pool_(n_threads), scratch_(static_cast<size_t>(pool_.size())) {}

Buffer CpuBackend::alloc(size_t bytes, const char* what) {
    ++alloc_count_;
    alloc_bytes_ += bytes;
    void* p = ::operator new (std::max<size_t>(bytes, 1), std::align_val_t{64}, std::nothrow);
    if (!p)
        throw Error(Code::INTERNAL, std::string("out of host memory allocating ") + what + " (" +
                                        std::to_string(bytes) + " bytes)");
    Buffer b;
    b.mem = std::shared_ptr<void>(p, [](void* q) { ::operator delete (q, std::align_val_t{64}); });
    b.bytes = bytes;
    return b;
}

Tensor CpuBackend::weight(const void* host, GgmlType type, int64_t ne0, int64_t ne1, int64_t ne2,
                          const std::string&) {
    // Used in place: the GGUF mapping is the weight memory (no copy, no f32 expansion).
    Tensor t = make_tensor(const_cast<void*>(host), type, ne0, ne1, ne2);
    weight_bytes_ += tensor_bytes(type, ne0, ne1, ne2);
    return t;
}

void CpuBackend::upload(Tensor dst, const void* src, size_t bytes) { std::memcpy(dst.data, src, bytes); }
void CpuBackend::download(void* dst, Tensor src, size_t bytes) { std::memcpy(dst, src.data, bytes); }

void CpuBackend::zero(Tensor t) {
    for (int64_t m = 0; m < t.mats(); ++m)
        for (int64_t r = 0; r < t.rows(); ++r) std::memset(t.row_ptr(r, m), 0, row_bytes(t.type, t.cols()));
}

float* CpuBackend::scratch(int thread, size_t n_floats) {
    auto& v = scratch_[static_cast<size_t>(thread)];
    if (v.size() < n_floats) v.resize(n_floats);
    return v.data();
}

void CpuBackend::resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st) {
    for (int64_t i = 0; i < in.cols(); ++i) {
        const int32_t sl = slot.i32()[i], ps = pos.i32()[i];
        WO_CHECK(sl >= 0 && sl < st.history.rows() && ps >= 0 && ps < st.history.cols(), "resolve_tokens slot/pos");
        const int32_t t = in.i32()[i] >= 0 ? in.i32()[i] : st.last_id.i32()[sl];
        tokens.i32()[i] = t;
        st.history.i32(sl)[ps] = t;
    }
}

void CpuBackend::sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st) {
    const int64_t n = logits.rows(), V = logits.cols();
    WO_CHECK(ids.cols() >= n && slot.cols() >= n && pos.cols() >= n, "sample shapes");
    pool_.parallel_for(n, 1, [&](int64_t b, int64_t e, int) {
        for (int64_t r = b; r < e; ++r) {
            const int32_t sl = slot.i32()[r], ps = pos.i32()[r];
            WO_CHECK(sl >= 0 && sl < st.history.rows() && ps >= 0 && ps < st.history.cols(), "sample slot/pos");
            SamplingParams p;
            std::memcpy(&p, st.params.row_ptr(sl), sizeof p);
            const int32_t id = sample_row({logits.f32(r), static_cast<size_t>(V)},
                                          {st.history.i32(sl), static_cast<size_t>(ps) + 1}, p,
                                          static_cast<uint32_t>(ps) + 1);
            ids.i32()[r] = id;
            st.last_id.i32()[sl] = id;
        }
    });
}

void CpuBackend::embed(Tensor y, Tensor table, Tensor ids) {
    const int64_t n = y.rows(), d = y.cols();
    WO_CHECK(table.cols() == d && ids.cols() >= n, "embed shapes");
    pool_.parallel_for(n, 8, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
            const int32_t id = ids.i32()[i];
            WO_CHECK(id >= 0 && id < table.rows(), "embed id out of range");
            dequant_row(table, id, 0, y.f32(i));
        }
    });
}

void CpuBackend::embed_add(Tensor y, Tensor table, Tensor ids) {
    const int64_t n = y.rows(), d = y.cols();
    WO_CHECK(table.cols() == d && ids.cols() >= n, "embed_add shapes");
    pool_.parallel_for(n, 8, [&](int64_t b, int64_t e, int t) {
        float* buf = scratch(t, static_cast<size_t>(d));
        for (int64_t i = b; i < e; ++i) {
            const int32_t id = ids.i32()[i];
            WO_CHECK(id >= 0 && id < table.rows(), "embed_add id out of range");
            const float* r = row_f32(table, id, 0, buf);
            float* yr = y.f32(i);
            for (int64_t j = 0; j < d; ++j) yr[j] += r[j];
        }
    });
}

void CpuBackend::get_rows(Tensor y, Tensor x, Tensor idx) {
    WO_CHECK(y.cols() == x.cols(), "get_rows shapes");
    for (int64_t i = 0; i < y.rows(); ++i) {
        const int32_t r = idx.i32()[i];
        WO_CHECK(r >= 0 && r < x.rows(), "get_rows index out of range");
        std::memcpy(y.f32(i), x.f32(r), static_cast<size_t>(x.cols()) * sizeof(float));
    }
}

void CpuBackend::add(Tensor y, Tensor x) {
    WO_CHECK(y.cols() == x.cols() && y.rows() == x.rows(), "add shapes");
    for (int64_t i = 0; i < y.rows(); ++i) {
        float* yr = y.f32(i);
        const float* xr = x.f32(i);
        for (int64_t j = 0; j < y.cols(); ++j) yr[j] += xr[j];
    }
}

void CpuBackend::rms_norm(Tensor y, Tensor x, Tensor w, float eps) {
    const int64_t d = x.cols();
    WO_CHECK(w.type == GgmlType::F32 && w.cols() == d && y.cols() == d, "rms_norm shapes");
    pool_.parallel_for(x.rows(), 8, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
            const float* xr = x.f32(i);
            double ss = 0;  // a wide sum: the norm is the reference every backend is checked against
            for (int64_t j = 0; j < d; ++j) ss += static_cast<double>(xr[j]) * xr[j];
            const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(d) + eps));
            float* yr = y.f32(i);
            const float* wr = w.f32(0);
            for (int64_t j = 0; j < d; ++j) yr[j] = xr[j] * inv * wr[j];
        }
    });
}

void CpuBackend::layer_norm(Tensor y, Tensor x, Tensor w, Tensor bias, float eps) {
    const int64_t d = x.cols();
    WO_CHECK(w.type == GgmlType::F32 && bias.type == GgmlType::F32 && w.cols() == d && bias.cols() == d,
             "layer_norm shapes");
    pool_.parallel_for(x.rows(), 8, [&](int64_t b, int64_t e, int) {
        for (int64_t i = b; i < e; ++i) {
            const float* xr = x.f32(i);
            double s = 0;
            for (int64_t j = 0; j < d; ++j) s += xr[j];
            const double mean = s / static_cast<double>(d);
            double v = 0;
            for (int64_t j = 0; j < d; ++j) v += (xr[j] - mean) * (xr[j] - mean);
            const double inv = 1.0 / std::sqrt(v / static_cast<double>(d) + eps);
            float* yr = y.f32(i);
            for (int64_t j = 0; j < d; ++j)
                yr[j] = static_cast<float>((xr[j] - mean) * inv) * w.f32(0)[j] + bias.f32(0)[j];
        }
    });
}

void CpuBackend::gelu(Tensor x) {
    const float c = std::sqrt(2.0f / static_cast<float>(M_PI));
    for (int64_t i = 0; i < x.rows(); ++i) {
        float* r = x.f32(i);
        for (int64_t j = 0; j < x.cols(); ++j) {
            const float v = r[j];
            r[j] = 0.5f * v * (1.0f + std::tanh(c * (v + 0.044715f * v * v * v)));
        }
    }
}

void CpuBackend::swiglu(Tensor y, Tensor gate, Tensor up) {
    WO_CHECK(gate.cols() == y.cols() && up.cols() == y.cols(), "swiglu shapes");
    for (int64_t i = 0; i < y.rows(); ++i) {
        const float* g = gate.f32(i);
        const float* u = up.f32(i);
        float* o = y.f32(i);
        for (int64_t j = 0; j < y.cols(); ++j) o[j] = g[j] / (1.0f + std::exp(-g[j])) * u[j];
    }
}

void CpuBackend::swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit) {
    WO_CHECK(gate.cols() == y.cols() && up.cols() == y.cols(), "swiglu_oai shapes");
    for (int64_t i = 0; i < y.rows(); ++i) {
        const float* g = gate.f32(i);
        const float* u = up.f32(i);
        float* o = y.f32(i);
        for (int64_t j = 0; j < y.cols(); ++j) o[j] = swiglu_oai_1(g[j], u[j], alpha, limit);
    }
}

void CpuBackend::tap(const char* name, int layer, Tensor t) {
    if (!tapping()) return;
    std::vector<int32_t> host(static_cast<size_t>(t.rows() * t.cols()));
    for (int64_t r = 0; r < t.rows(); ++r)
        std::memcpy(host.data() + r * t.cols(), t.row_ptr(r), static_cast<size_t>(t.cols()) * 4);
    write_tap(name, layer, host.data(), t.rows(), t.cols(), t.type == GgmlType::I32);
}

}  // namespace wo::cpu

namespace wo {
std::unique_ptr<Backend> make_cpu_backend(int n_threads) {
    return std::make_unique<cpu::CpuBackend>(n_threads);
}
}  // namespace wo
