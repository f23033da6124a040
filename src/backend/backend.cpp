// The Backend interface's shared parts: KV cache layout and the default bodies of fused ops.
#include "backend/backend.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "util/error.h"

namespace wo {

namespace {
// Rows of layer il's cache: a ring of window + one step's tokens for sliding-window layers.
int kv_rows(const KvCacheDesc& d, size_t il) {
    return d.window[il] > 0 ? std::min(d.n_ctx, d.window[il] + std::max(d.max_step_tokens, 1)) : d.n_ctx;
}
}  // namespace

uint64_t Backend::kv_cache_bytes(const KvCacheDesc& d) const {
    uint64_t total = 0;
    for (size_t il = 0; il < d.kv_dim.size() && il < d.window.size(); ++il)
        total += 2 * tensor_bytes(kv_type(), d.kv_dim[il], kv_rows(d, il), d.n_slots);
    return total;
}

std::vector<KvLayer> Backend::make_kv_cache(const KvCacheDesc& d) {
    WO_CHECK(d.kv_dim.size() == d.window.size() && d.n_slots > 0 && d.n_ctx > 0, "kv cache description");
    const GgmlType t = kv_type();
    std::vector<KvLayer> layers;
    for (size_t il = 0; il < d.kv_dim.size(); ++il) {
        KvLayer L;
        L.n_rows = kv_rows(d, il);
        const size_t bytes = tensor_bytes(t, d.kv_dim[il], L.n_rows, d.n_slots);
        Buffer k = alloc(bytes, "kv cache"), v = alloc(bytes, "kv cache");
        L.k = k.view(t, d.kv_dim[il], L.n_rows, d.n_slots);
        L.v = v.view(t, d.kv_dim[il], L.n_rows, d.n_slots);
        kv_mem_.push_back(std::move(k));
        kv_mem_.push_back(std::move(v));
        kv_bytes_ += 2 * bytes;
        layers.push_back(L);
    }
    return layers;
}

void Backend::attn_in(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w, KvLayer kv,
                      const StepTensors& s, const RopeParams* rq, const RopeParams* rk) {
    qkv_projections(q, k, v, x, w);
    if (rq) rope(q, s.pos, *rq);
    if (rk) rope(k, s.pos, *rk);
    kv_store(kv, k, v, s.pos, s.slot);
}

void Backend::qkv_projections(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w) {
    if (w.qkv) {
        WO_CHECK(q.data && k.data && v.data, "attn_in: fused qkv needs q/k/v views of one buffer");
        // q, k and v are column ranges of one [q+k+v, n] buffer starting at q.
        Tensor all = q;
        all.ne[0] = w.qkv->rows();
        matmul(all, x, *w.qkv, nullptr);
    } else {
        matmul(q, x, *w.q, w.q_b);
        matmul(k, x, *w.k, w.k_b);
        matmul(v, x, *w.v, w.v_b);
    }
}

void Backend::router_topk(Tensor ids, Tensor weights, Tensor logits, Tensor x, Tensor w, const Tensor* b,
                          int k) {
    matmul(logits, x, w, b);
    topk_softmax(ids, weights, logits, k);
}

void Backend::rms_norm_matmul(Tensor out, Tensor y, Tensor x, Tensor w_norm, float eps, Tensor w,
                              const Tensor* b) {
    rms_norm(y, x, w_norm, eps);
    matmul(out, y, w, b);
}

void Backend::set_tap_dir(const std::string& dir) {
    tap_dir_ = dir;
    if (!dir.empty()) std::filesystem::create_directories(dir);
}

void Backend::write_tap(const char* name, int layer, const void* host, int64_t rows, int64_t cols,
                        bool i32) const {
    // NumPy .npy (v1.0): readable by the comparison scripts (tools/reference) as is.
    char file[512];
    std::snprintf(file, sizeof file, "%s/%04llu-%s-%d.npy", tap_dir_.c_str(),
                  static_cast<unsigned long long>(tap_step_), name, layer);
    std::FILE* f = std::fopen(file, "wb");
    if (!f) throw Error(Code::IO_ERROR, std::string("WO_TAP: cannot write ") + file);
    std::string header = std::string("{'descr': '") + (i32 ? "<i4" : "<f4") +
                         "', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                         std::to_string(cols) + "), }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    const uint16_t hl = static_cast<uint16_t>(header.size());
    std::fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    std::fwrite(&hl, 2, 1, f);
    std::fwrite(header.data(), 1, header.size(), f);
    std::fwrite(host, 4, static_cast<size_t>(rows * cols), f);
    std::fclose(f);
}

}  // namespace wo
