// CUDA backend: memory, transfers, fences, graph capture of steps, and the op entry points
// (the kernels live in one .cu file per family, kernels.h).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

#include "backend/cuda/check.h"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/device.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/profile.h"
#include "backend/cuda/register.h"
#include "util/error.h"

namespace wo::cuda {

CudaBackend::CudaBackend(int device) : device_(device) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        cudaGetLastError();
        throw Error(Code::CUDA_ERROR, "cudaGetDeviceCount: no CUDA device");
    }
    if (device < 0 || device >= n)
        throw Error(Code::INVALID_ARGUMENT, "CUDA device " + std::to_string(device) + " does not exist (" +
                                                std::to_string(n) + " present)");
    check(cudaSetDevice(device_), "cudaSetDevice");
    check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    for (auto& e : fence_ev_)
        check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    for (auto& e : stage_ev_)
        check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "cudaEventCreateWithFlags");
    if (const char* g = std::getenv("WO_CUDA_GRAPHS"); g && std::string(g) == "0") graphs_ = false;
    if (const char* p = std::getenv("WO_CUDA_PROFILE"); p && std::string(p) == "1") {
        prof_ = std::make_unique<OpProfile>(stream_);
        graphs_ = false;  // events around every op cannot be replayed meaningfully
    }
}

CudaBackend::~CudaBackend() {
    // Nothing here may throw; errors on the way out are moot.
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    prof_.reset();  // prints its table
    for (auto& [key, g] : graphs_by_key_)
        if (g.exec) cudaGraphExecDestroy(g.exec);
    for (void* p : stage_)
        if (p) cudaFreeHost(p);
    for (auto e : stage_ev_) cudaEventDestroy(e);
    for (auto e : fence_ev_) cudaEventDestroy(e);
    cudaStreamDestroy(stream_);
}

void CudaBackend::bind() const {
    thread_local int current = -1;
    if (current != device_) {
        check(cudaSetDevice(device_), "cudaSetDevice");
        current = device_;
    }
}

bool CudaBackend::healthy() const { return !sticky_error(); }

void* CudaBackend::device_alloc(size_t bytes, const char* what) {
    bind();
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, std::max<size_t>(bytes, 16));
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // recoverable: clear it
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        throw Error(Code::VRAM_OOM, std::string("out of GPU memory allocating ") + what + ": " +
                                        std::to_string(bytes) + " bytes needed, " + std::to_string(free_b) +
                                        " free of " + std::to_string(total_b));
    }
    check(e, "cudaMalloc");
    return p;
}

Buffer CudaBackend::alloc(size_t bytes, const char* what) {
    ++alloc_count_;
    void* p = device_alloc(bytes, what);
    counters_->alloc_bytes += bytes;
    Buffer b;
    // The deleter must not need the backend (a model may drop buffers after it).
    b.mem = std::shared_ptr<void>(p, [c = counters_, bytes](void* q) {
        cudaFree(q);
        c->alloc_bytes -= bytes;
    });
    b.bytes = bytes;
    return b;
}

std::string CudaBackend::device() const {
    try {
        return device_info(device_).name;
    } catch (const std::exception&) {
        return "cuda";
    }
}

uint64_t CudaBackend::buffer_bytes() const {
    return counters_->alloc_bytes > kv_bytes_ ? counters_->alloc_bytes - kv_bytes_ : 0;
}

Tensor CudaBackend::weight(const void* host, GgmlType type, int64_t ne0, int64_t ne1, int64_t ne2,
                           const std::string& name) {
    bind();
    const size_t bytes = tensor_bytes(type, ne0, ne1, ne2);
    void* dev = device_alloc(bytes, ("weight " + name).c_str());
    Buffer b;
    b.mem = std::shared_ptr<void>(dev, [](void* q) { cudaFree(q); });
    b.bytes = bytes;
    // Staged through pinned buffers: a chunk is copied on the host into a free staging buffer
    // while the previous ones are still on their way to the device.
    for (int i = 0; i < kStages; ++i)
        if (!stage_[static_cast<size_t>(i)])
            check(cudaMallocHost(&stage_[static_cast<size_t>(i)], kStageBytes), "cudaMallocHost");
    for (size_t off = 0; off < bytes; off += kStageBytes) {
        const size_t n = std::min(kStageBytes, bytes - off);
        const size_t k = n_chunks_++ % kStages;
        check(cudaEventSynchronize(stage_ev_[k]), "cudaEventSynchronize");
        std::memcpy(stage_[k], static_cast<const uint8_t*>(host) + off, n);
        check(
            cudaMemcpyAsync(static_cast<uint8_t*>(dev) + off, stage_[k], n, cudaMemcpyHostToDevice, stream_),
            "cudaMemcpyAsync");
        check(cudaEventRecord(stage_ev_[k], stream_), "cudaEventRecord");
    }
    Tensor t = make_tensor(dev, type, ne0, ne1, ne2);
    const size_t rb = repack_bytes(t);
    if (rb > 0) {
        void* dst = device_alloc(rb, ("repacked weight " + name).c_str());
        Tensor r = repack(t, dst, stream_);
        if (r.data == dst) {
            check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");  // before freeing the source
            b.mem = std::shared_ptr<void>(dst, [](void* q) { cudaFree(q); });
            b.bytes = rb;
            t = r;
        } else {
            cudaFree(dst);
        }
    }
    weight_bytes_ += b.bytes;
    weights_.push_back(std::move(b));
    return t;
}

void CudaBackend::upload(Tensor dst, const void* src, size_t bytes) {
    bind();
    // On the stream, so it is ordered with the steps around it (set_sampling between steps).
    // From pageable memory the runtime stages the source before returning.
    forget_split(dst.data, bytes);
    check(cudaMemcpyAsync(dst.data, src, bytes, cudaMemcpyHostToDevice, stream_), "cudaMemcpyAsync");
}

void CudaBackend::download(void* dst, Tensor src, size_t bytes) {
    bind();
    check(cudaMemcpyAsync(dst, src.data, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

void CudaBackend::zero(Tensor t) {
    bind();
    wrote(t);
    const size_t row = row_bytes(t.type, static_cast<uint64_t>(t.cols()));
    for (int64_t m = 0; m < t.mats(); ++m)
        check(cudaMemset2DAsync(t.row_ptr(0, m), t.nb1 ? t.nb1 : row, 0, row, static_cast<size_t>(t.rows()),
                                stream_),
              "cudaMemset2DAsync");
}

void CudaBackend::sync() {
    bind();
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
}

Buffer CudaBackend::alloc_host(size_t bytes, const char* what) {
    bind();
    void* p = nullptr;
    const cudaError_t e = cudaMallocHost(&p, std::max<size_t>(bytes, 16));
    if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();
        throw Error(Code::INTERNAL, std::string("out of pinned host memory allocating ") + what + " (" +
                                        std::to_string(bytes) + " bytes)");
    }
    check(e, "cudaMallocHost");
    Buffer b;
    b.mem = std::shared_ptr<void>(p, [](void* q) { cudaFreeHost(q); });
    b.bytes = bytes;
    return b;
}

void CudaBackend::download_async(void* dst, Tensor src, size_t bytes) {
    bind();
    check(cudaMemcpyAsync(dst, src.data, bytes, cudaMemcpyDeviceToHost, stream_), "cudaMemcpyAsync");
}

uint64_t CudaBackend::fence() {
    bind();
    const uint64_t id = n_fences_++;
    check(cudaEventRecord(fence_ev_[id % kFences], stream_), "cudaEventRecord");
    return id;
}

void CudaBackend::wait_fence(uint64_t f) {
    bind();
    if (f >= n_fences_) return;  // never handed out: nothing to wait for
    // A fence older than the ring was re-recorded later on the same stream: waiting for the
    // later point also covers it.
    check(cudaEventSynchronize(fence_ev_[f % kFences]), "cudaEventSynchronize");
}

uint64_t CudaBackend::scratch_bytes(const StepLimits& l) const {
    return moe_scratch_bytes(l) + sample_scratch_bytes(l) + tmv_scratch_bytes(l) + attention_scratch_bytes(l);
}

// The activations' split for matmul_tmv / matmul_tmm: every row of a step, as wide as the widest
// row a matmul reads.
size_t CudaBackend::tmv_scratch_bytes(const StepLimits& l) {
    const int64_t cols = std::max({l.max_width, l.n_embd, l.n_ff});
    if (l.max_tokens <= 0 || cols <= 0) return 0;
    // + the parts kernels' range sums (when on): a call's rows, at most 3 weights of `cols` rows.
    return (cuda::matmul_tmv_scratch_bytes(l.max_tokens, (cols + 31) / 32 * 32) + 255) / 256 * 256 +
           cuda::matmul_tmv_parts_bytes(l.max_tokens, 3 * cols);
}

void CudaBackend::check_fits(uint64_t bytes, const std::string& what) {
    bind();
    size_t free_b = 0, total_b = 0;
    check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    // cudaMalloc rounds each allocation up (2 MiB granules for large ones): keep 1% + 64 MiB aside.
    const uint64_t need = bytes + bytes / 100 + (uint64_t{64} << 20);
    if (need > free_b)
        throw Error(Code::VRAM_OOM, "not enough GPU memory for " + what + ": " + std::to_string(bytes) +
                                        " bytes needed, " + std::to_string(free_b) + " free of " +
                                        std::to_string(total_b));
}

void CudaBackend::reserve_scratch(const StepLimits& l) {
    const size_t ms = moe_scratch_bytes(l);
    if (ms > 0 && ms > moe_scratch_.bytes) {
        moe_scratch_ = alloc(ms, "moe scratch");
        check(cudaMemsetAsync(moe_scratch_.data(), 0, moe_scratch_zero_bytes(l.n_embd), stream_),
              "cudaMemsetAsync");
    }
    const size_t ss = sample_scratch_bytes(l);
    if (ss > 0 && ss > sample_scratch_.bytes) sample_scratch_ = alloc(ss, "sampling scratch");
    const size_t ts = tmv_scratch_bytes(l);
    if (ts > 0 && ts > tmv_scratch_.bytes) tmv_scratch_ = alloc(ts, "tensor-core split scratch");
    const size_t as = attention_scratch_bytes(l);
    if (as > 0 && as > attn_scratch_.bytes) attn_scratch_ = alloc(as, "attention split-KV scratch");
    static const bool norm_split = [] {
        const char* e = std::getenv("WO_CUDA_NORM_SPLIT");
        return !(e && std::string(e) == "0");
    }();
    const int64_t ns_rows = std::min(l.max_tokens, kNormSplitRows), ns_cols = std::max(l.n_embd, l.max_width);
    if (norm_split && ts > 0 && ns_rows > 0 && ns_cols > 0 && ns_cols % 32 == 0) {
        const size_t nb = cuda::matmul_tmv_scratch_bytes(ns_rows, ns_cols);
        if (nb > norm_split_.bytes) {
            norm_split_ = alloc(nb, "op split"), norm_split_at_ = {};
            norm_split_rows_ = ns_rows, norm_split_cols_ = ns_cols;
            norm_split_xm_ = (size_t(ns_rows) * size_t(ns_cols) * 4 + 255) / 256 * 256;
        }
    }
}

// The norm's split for a product over x's decode rows [0, nd), or none.
cuda::PreSplit CudaBackend::presplit_for(const Tensor& x, int64_t nd) const {
    const NormSplit& a = norm_split_at_;
    if (!a.src || nd <= 0 || nd > a.rows || static_cast<const uint8_t*>(x.data) != a.src || x.nb1 != a.nb1 ||
        x.cols() != a.cols || x.type != GgmlType::F32)
        return {};
    auto* base = static_cast<uint8_t*>(norm_split_.data());
    return {reinterpret_cast<const uint4*>(base), reinterpret_cast<const float*>(base + norm_split_xm_)};
}

void CudaBackend::forget_split(const void* data, size_t bytes) {
    const auto* p = static_cast<const uint8_t*>(data);
    if (p < norm_split_at_.end && p + bytes > norm_split_at_.src) norm_split_at_ = {};
}

void CudaBackend::wrote(const Tensor& y) {
    if (!norm_split_at_.src || y.rows() <= 0 || y.mats() <= 0 || y.cols() <= 0) return;
    forget_split(y.data, size_t(y.mats() - 1) * y.nb2 + size_t(y.rows() - 1) * y.nb1 +
                             row_bytes(y.type, static_cast<uint64_t>(y.cols())));
}

void CudaBackend::made_split(const Tensor& y, int64_t rows, int64_t nd) {
    const auto* p = static_cast<const uint8_t*>(y.data);
    norm_split_at_ = {p, p + size_t(rows - 1) * y.nb1 + size_t(y.cols()) * 4, y.nb1, nd, y.cols()};
}

void CudaBackend::run_step(uint64_t key, const std::function<void()>& body) {
    bind();
    norm_split_at_ = {};  // a step never reads a split made before it
    if (key == 0 || !graphs_ || tapping()) {
        body();
        return;
    }
    Graph& g = graphs_by_key_[key];
    if (g.seen++ == 0) {  // warm-up: first use of a key runs eagerly (lazy module loads, attributes)
        body();
        return;
    }
    if (!g.exec) {
        // Thread-local mode: another thread's unrelated CUDA calls do not break the capture, and
        // a forbidden call of ours (an allocation, a sync) fails the capture instead of hiding.
        check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
        cudaGraph_t graph = nullptr;
        try {
            body();
        } catch (...) {
            cudaStreamEndCapture(stream_, &graph);
            if (graph) cudaGraphDestroy(graph);
            cudaGetLastError();
            throw;
        }
        check(cudaStreamEndCapture(stream_, &graph), "cudaStreamEndCapture");
        const cudaError_t e = cudaGraphInstantiate(&g.exec, graph, 0);
        cudaGraphDestroy(graph);
        check(e, "cudaGraphInstantiate");
        ++n_captured_;
    }
    check(cudaGraphLaunch(g.exec, stream_), "cudaGraphLaunch");
}

// ---- ops: thin wrappers over kernels.h
namespace {
std::string op_name(const char* op, const Tensor& w, int64_t n_tok) {
    return std::string(op) + " " + std::string(type_name(w.type)) + " " + std::to_string(w.rows()) + "x" +
           std::to_string(w.cols()) + (w.mats() > 1 ? "x" + std::to_string(w.mats()) : "") +
           " n=" + std::to_string(n_tok);
}
}  // namespace

void CudaBackend::resolve_tokens(Tensor tokens, Tensor in, Tensor pos, Tensor slot, SlotState st) {
    OpScope op_(prof_.get(), "resolve_tokens");
    wrote(tokens), wrote(pos), wrote(slot);
    cuda::resolve_tokens(tokens, in, pos, slot, st, stream_);
}
void CudaBackend::embed(Tensor y, Tensor table, Tensor ids) {
    OpScope op_(prof_.get(), "embed");
    wrote(y);
    cuda::embed(y, table, ids, false, stream_);
}
void CudaBackend::embed_add(Tensor y, Tensor table, Tensor ids) {
    OpScope op_(prof_.get(), "embed_add");
    wrote(y);
    cuda::embed(y, table, ids, true, stream_);
}
void CudaBackend::get_rows(Tensor y, Tensor x, Tensor idx) {
    OpScope op_(prof_.get(), "get_rows");
    wrote(y);
    cuda::get_rows(y, x, idx, stream_);
}
void CudaBackend::add(Tensor y, Tensor x) {
    OpScope op_(prof_.get(), "add");
    wrote(y);
    cuda::add(y, x, stream_);
}
void CudaBackend::rms_norm(Tensor y, Tensor x, Tensor w, float eps) {
    OpScope op_(prof_.get(), "rms_norm");
    wrote(y);
    // The decode rows' split too, when the products after it can read it (presplit_for).
    const int64_t nd = decode_split(x.rows());
    if (norm_split_room(nd, x.cols()) && cuda::rms_norm_splits(x.cols()) && y.type == GgmlType::F32) {
        auto* base = static_cast<uint8_t*>(norm_split_.data());
        cuda::rms_norm_split(y, x, w, eps, reinterpret_cast<uint4*>(base),
                             reinterpret_cast<float*>(base + norm_split_xm_), nd, stream_);
        made_split(y, x.rows(), nd);
        return;
    }
    cuda::rms_norm(y, x, w, eps, stream_);
}
void CudaBackend::layer_norm(Tensor y, Tensor x, Tensor w, Tensor b, float eps) {
    OpScope op_(prof_.get(), "layer_norm");
    wrote(y);
    cuda::layer_norm(y, x, w, b, eps, stream_);
}
// WO_CUDA_DECODE=mma (an experiment, bench/NOTES.md) sends decode rows to the tensor-core path
// too (still batch invariant); WO_CUDA_MMA=0 sends every row, prompt ones too, to the CUDA cores.
int64_t CudaBackend::decode_split(int64_t n) const {
    static const int mode = [] {
        const char* m = std::getenv("WO_CUDA_MMA");
        if (m && std::string(m) == "0") return 0;
        const char* d = std::getenv("WO_CUDA_DECODE");
        return d && std::string(d) == "mma" ? 2 : 1;
    }();
    return mode == 0 ? n : mode == 2 ? 0 : std::min(decode_rows(), n);
}
// Decode rows on the decode path (tensor cores for matmul_tmv_weight(w), else CUDA cores),
// prompt rows on the prompt path (matmul_tmm for tmm_weight(w), else matmul_mma; kernels.h).
// Weights of fewer than kMmaMinRows rows: every row on the CUDA cores (a property of the weight,
// so a token's path, and its bits, never depend on its step).
void CudaBackend::matmul_rows(Tensor y, Tensor x, Tensor w, const Tensor* bias, bool accumulate) {
    const int64_t n = x.rows(), nd = w.rows() < cuda::kMmaMinRows ? n : decode_split(n);
    const float* b = bias ? static_cast<const float*>(bias->data) : nullptr;
    const cuda::PreSplit pre = presplit_for(x, nd);
    wrote(y);
    // Tensor cores once reserve_scratch gave them room (for every step within its limits, so a
    // weight's decode rows all take one path); a backend used without it stays on the CUDA cores.
    if (nd > 0 && cuda::matmul_tmv_weight(w) && tmv_scratch_.bytes > 0)
        cuda::matmul_tmv_presplit(y.row_range(0, nd), x.row_range(0, nd), w, b, accumulate, tmv_scratch_.data(),
                                  tmv_scratch_.bytes, stream_, pre);
    else if (nd > 0)
        cuda::matmul(y.row_range(0, nd), x.row_range(0, nd), w, b, accumulate, stream_);
    if (nd == n) return;
    if (cuda::tmm_weight(w) && tmv_scratch_.bytes > 0)
        cuda::matmul_tmm(y.row_range(nd, n - nd), x.row_range(nd, n - nd), w, b, accumulate,
                         tmv_scratch_.data(), tmv_scratch_.bytes, stream_);
    else
        cuda::matmul_mma(y.row_range(nd, n - nd), x.row_range(nd, n - nd), w, b, accumulate, stream_);
}
// Separate q / k / v weights of one tensor-core type and width in one split and one launch per
// role (matmul_tmv_group, matmul_tmm_group: each output's bits those of its weight alone), so
// the 512-row k / v matrices ride on q's tiles instead of filling few SMs on their own. A
// property of the layer's weights, so every step takes the same path. WO_CUDA_QKV_GROUP=0: off.
bool CudaBackend::qkv_group(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w) {
    static const bool on = [] {
        const char* e = std::getenv("WO_CUDA_QKV_GROUP");
        return !(e && std::string(e) == "0");
    }();
    if (!on || w.qkv || !w.q || !w.k || !w.v || tmv_scratch_.bytes == 0) return false;
    const Tensor* ws[3] = {w.q, w.k, w.v};
    for (const Tensor* t : ws)
        if (!cuda::tmm_weight(*t) || t->type != w.q->type || t->cols() != w.q->cols() ||
            cuda::matmul_tmv_ranges(t->rows()) != cuda::matmul_tmv_ranges(w.q->rows()))
            return false;
    OpScope op_(prof_.get(), prof_ ? op_name("qkv", *w.q, x.rows()) : std::string());
    const int64_t n = x.rows(), nd = decode_split(n);
    auto set = [&](int64_t r0, int64_t rows) {
        cuda::MatmulSet m;
        const Tensor* ys[3] = {&q, &k, &v};
        const Tensor* bs[3] = {w.q_b, w.k_b, w.v_b};
        for (int i = 0; i < 3; ++i) {
            m.y[i] = ys[i]->row_range(r0, rows), m.w[i] = *ws[i];
            m.bias[i] = bs[i] ? static_cast<const float*>(bs[i]->data) : nullptr;
        }
        m.n = 3;
        return m;
    };
    const cuda::PreSplit pre = presplit_for(x, nd);
    wrote(q), wrote(k), wrote(v);
    if (nd > 0)
        cuda::matmul_tmv_group_presplit(set(0, nd), x.row_range(0, nd), tmv_scratch_.data(), tmv_scratch_.bytes,
                                        stream_, pre);
    if (nd < n)
        cuda::matmul_tmm_group(set(nd, n - nd), x.row_range(nd, n - nd), tmv_scratch_.data(),
                               tmv_scratch_.bytes, stream_);
    return true;
}
void CudaBackend::matmul(Tensor y, Tensor x, Tensor w, const Tensor* bias) {
    OpScope op_(prof_.get(), prof_ ? op_name("matmul", w, x.rows()) : std::string());
    matmul_rows(y, x, w, bias, false);
}
void CudaBackend::matmul_add(Tensor y, Tensor x, Tensor w, const Tensor* bias) {
    OpScope op_(prof_.get(), prof_ ? op_name("matmul_add", w, x.rows()) : std::string());
    matmul_rows(y, x, w, bias, true);
}
void CudaBackend::rope(Tensor x, Tensor pos, const RopeParams& p) {
    OpScope op_(prof_.get(), "rope");
    wrote(x);
    cuda::rope(x, pos, p, stream_);
}
void CudaBackend::kv_store(KvLayer kv, Tensor k, Tensor v, Tensor pos, Tensor slot) {
    OpScope op_(prof_.get(), "kv_store");
    cuda::kv_store(kv, k, v, pos, slot, stream_);
}
void CudaBackend::attention(Tensor out, Tensor q, KvLayer kv, const StepTensors& s, const AttnParams& p) {
    OpScope op_(prof_.get(),
                prof_ ? "attention n=" + std::to_string(q.rows()) + (p.window ? " swa" : "") : std::string());
    wrote(out);
    // The decode rows' split too where the tensor-core merge makes it (attention's result says).
    const int64_t nd = decode_split(q.rows());
    const bool room = norm_split_room(nd, out.cols()) && out.type == GgmlType::F32;
    auto* base = static_cast<uint8_t*>(norm_split_.data());
    if (room) norm_split_at_ = {};  // the buffer may be rewritten
    const bool split = cuda::attention(out, q, kv, s, p, nd, attn_scratch_.data(), attn_scratch_.bytes, stream_,
                                       room ? reinterpret_cast<uint4*>(base) : nullptr,
                                       room ? reinterpret_cast<float*>(base + norm_split_xm_) : nullptr);
    if (split) made_split(out, q.rows(), nd);
}
void CudaBackend::gelu(Tensor x) {
    OpScope op_(prof_.get(), "gelu");
    wrote(x);
    cuda::gelu(x, stream_);
}
void CudaBackend::swiglu(Tensor y, Tensor gate, Tensor up) {
    OpScope op_(prof_.get(), "swiglu");
    wrote(y);
    cuda::swiglu(y, gate, up, stream_);
}
void CudaBackend::swiglu_oai(Tensor y, Tensor gate, Tensor up, float alpha, float limit) {
    OpScope op_(prof_.get(), "swiglu_oai");
    wrote(y);
    cuda::swiglu_oai(y, gate, up, alpha, limit, stream_);
}
void CudaBackend::topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k) {
    OpScope op_(prof_.get(), "topk_softmax");
    wrote(ids), wrote(weights);
    cuda::topk_softmax(ids, weights, logits, k, stream_);
}
void CudaBackend::attn_in(Tensor q, Tensor k, Tensor v, Tensor x, const QkvWeights& w, KvLayer kv,
                          const StepTensors& s, const RopeParams* rq, const RopeParams* rk) {
    if (!qkv_group(q, k, v, x, w)) qkv_projections(q, k, v, x, w);  // as Backend::attn_in
    OpScope op_(prof_.get(), "rope_kv_store");
    wrote(q), wrote(k);
    cuda::rope_kv_store(q, k, v, kv, s.pos, s.slot, rq, rk, stream_);
}
void CudaBackend::moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w) {
    OpScope op_(prof_.get(), prof_ ? op_name("moe_ffn", w.gate, x.rows()) : std::string());
    WO_CHECK(moe_scratch_.data(), "moe_ffn before reserve_scratch");
    const int64_t nd = decode_split(x.rows());
    const cuda::PreSplit pre = presplit_for(x, nd);
    wrote(y);
    cuda::moe_ffn(y, x, ids, weights, w, moe_scratch_.data(), moe_scratch_.bytes, nd, stream_, pre);
}
void CudaBackend::sample(Tensor ids, Tensor logits, Tensor slot, Tensor pos, SlotState st) {
    OpScope op_(prof_.get(), "sample");
    WO_CHECK(sample_scratch_.data(), "sample before reserve_scratch");
    wrote(ids), wrote(pos);
    cuda::sample(ids, logits, slot, pos, st, sample_scratch_.data(), sample_scratch_.bytes, stream_);
}

void CudaBackend::tap(const char* name, int layer, Tensor t) {
    if (!tapping()) return;
    bind();
    std::vector<int32_t> host(static_cast<size_t>(t.rows() * t.cols()));
    const size_t row = static_cast<size_t>(t.cols()) * 4;
    check(cudaMemcpy2DAsync(host.data(), row, t.data, t.nb1 ? t.nb1 : row, row, static_cast<size_t>(t.rows()),
                            cudaMemcpyDeviceToHost, stream_),
          "cudaMemcpy2DAsync");
    check(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
    write_tap(name, layer, host.data(), t.rows(), t.cols(), t.type == GgmlType::I32);
}

std::unique_ptr<Backend> make_backend(int device, bool kv_f32) {
    auto b = std::make_unique<CudaBackend>(device);
    b->set_kv_f32(kv_f32);
    return b;
}

void register_backend() {
    wo::register_backend("cuda", [](const BackendOptions& o) { return make_backend(o.device, o.kv_f32); });
}

}  // namespace wo::cuda
