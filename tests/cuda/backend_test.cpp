// The CUDA backend's own machinery: VRAM accounting and VRAM_OOM, staged weight uploads, CUDA
// errors naming the call, stream-ordered uploads, fences, and graph replay equal to eager runs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "backend/cuda/check.h"
#include "backend/cuda/kernels.h"
#include "backend/cuda/register.h"
#include "cuda_test_util.h"
#include "util/error.h"

namespace wo::test {
namespace {

cuda::CudaBackend& as_cuda(Backend& b) { return dynamic_cast<cuda::CudaBackend&>(b); }

TEST(CudaBackend, VramOomFailsCleanlyAndTheBackendStaysUsable) {
    REQUIRE_GPU();
    auto be = cuda::make_backend(0);
    const size_t total = cuda::device_info(0).total_bytes;
    const uint64_t count = be->alloc_count();
    try {
        be->alloc(total * 2, "a buffer larger than the device");
        FAIL() << "no VRAM_OOM";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::VRAM_OOM);
        const std::string m = e.what();
        EXPECT_NE(m.find("a buffer larger than the device"), std::string::npos) << m;
        EXPECT_NE(m.find(std::to_string(total * 2) + " bytes needed"), std::string::npos) << m;
        EXPECT_NE(m.find(" free of "), std::string::npos) << m;
    }
    EXPECT_TRUE(be->healthy());
    EXPECT_EQ(be->alloc_count(), count + 1);
    Buffer b = be->alloc(4096, "after the failure");  // the failure did not poison the context
    std::vector<float> in(1024, 3.5f), out(1024);
    be->upload(b.view(GgmlType::F32, 1024), in.data(), 4096);
    be->download(out.data(), b.view(GgmlType::F32, 1024), 4096);
    EXPECT_EQ(out, in);
}

TEST(CudaBackend, MemoryPlanRefusesTheWholeBillBeforeAllocating) {
    REQUIRE_GPU();
    auto be = cuda::make_backend(0);
    const size_t total = cuda::device_info(0).total_bytes;
    const uint64_t count = be->alloc_count();
    EXPECT_NO_THROW(be->check_fits(uint64_t{1} << 20, "a small plan"));
    try {
        be->check_fits(uint64_t(total) * 3, "a plan larger than the device");
        FAIL() << "no VRAM_OOM";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::VRAM_OOM);
        const std::string m = e.what();
        EXPECT_NE(m.find("a plan larger than the device"), std::string::npos) << m;
        EXPECT_NE(m.find(std::to_string(uint64_t(total) * 3) + " bytes needed"), std::string::npos) << m;
        EXPECT_NE(m.find(" free of "), std::string::npos) << m;
    }
    EXPECT_EQ(be->alloc_count(), count) << "a plan allocates nothing";
    // The plan covers what reserve allocates: the KV bytes it predicts are the bytes it makes.
    KvCacheDesc d;
    d.n_slots = 3, d.n_ctx = 300, d.max_step_tokens = 16;
    d.kv_dim = {64, 128, 64};
    d.window = {0, 128, 0};
    const uint64_t planned = be->kv_cache_bytes(d);
    be->make_kv_cache(d);
    EXPECT_EQ(be->kv_bytes(), planned);
}

TEST(CudaBackend, AccountsBuffersKvAndWeightsSeparately) {
    REQUIRE_GPU();
    auto be = cuda::make_backend(0);
    auto& cb = as_cuda(*be);
    const uint64_t b0 = cb.buffer_bytes();
    {
        Buffer b = be->alloc(1 << 20, "one MiB");
        EXPECT_EQ(cb.buffer_bytes(), b0 + (1 << 20));
    }
    EXPECT_EQ(cb.buffer_bytes(), b0);  // freed buffers leave the count
    KvCacheDesc d;
    d.n_slots = 2, d.n_ctx = 100, d.max_step_tokens = 8, d.kv_dim = {64, 64}, d.window = {0, 16};
    auto kv = be->make_kv_cache(d);
    EXPECT_EQ(kv[0].k.type, GgmlType::F16);
    EXPECT_EQ(kv[1].n_rows, 24);
    EXPECT_EQ(be->kv_bytes(), 2u * 2 * 64 * (100 + 24) * 2);
    EXPECT_EQ(cb.buffer_bytes(), b0);  // the cache is not counted as a buffer
}

TEST(CudaBackend, WeightsUploadThroughStagingIntact) {
    REQUIRE_GPU();
    auto be = cuda::make_backend(0);
    // 157 MB with an odd tail: several 64 MiB staging chunks in flight, the last one partial.
    const int64_t ne0 = 4097, ne1 = 9601;
    std::vector<float> w(static_cast<size_t>(ne0 * ne1));
    std::mt19937 rng(fresh_seed());
    for (auto& x : w) x = static_cast<float>(rng());
    Tensor t = be->weight(w.data(), GgmlType::F32, ne0, ne1, 1, "blk.0.test");
    EXPECT_EQ(be->weight_bytes(), w.size() * 4);
    Tensor small = be->weight(w.data() + 5, GgmlType::F32, 3, 1, 1, "tiny");
    std::vector<float> back(w.size());
    be->download(back.data(), t, back.size() * 4);
    EXPECT_TRUE(back == w);
    std::vector<float> s3(3);
    be->download(s3.data(), small, 12);
    EXPECT_EQ(s3, std::vector<float>(w.begin() + 5, w.begin() + 8));
}

TEST(CudaBackend, CudaErrorsNameTheCall) {
    REQUIRE_GPU();
    auto be = cuda::make_backend(0);
    Buffer b = be->alloc(4096, "x");
    Tensor bad = b.view(GgmlType::F32, 16, 2);
    bad.nb1 = 4;  // a pitch smaller than the row: the runtime rejects it
    try {
        be->zero(bad);
        FAIL() << "no CUDA_ERROR";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::CUDA_ERROR);
        EXPECT_NE(std::string(e.what()).find("cudaMemset2DAsync: "), std::string::npos) << e.what();
    }
    EXPECT_TRUE(be->healthy());  // a rejected argument is recoverable
    be->zero(b.view(GgmlType::F32, 1024));
    be->sync();
}

TEST(CudaBackend, UploadsAreOrderedWithOpsAndFencesCoverAsyncDownloads) {
    REQUIRE_GPU();
    Pair P;
    std::mt19937 rng(fresh_seed());
    const int64_t d = 4096, n = 64;
    std::vector<float> x1 = randn(d * n, rng), x2 = randn(d * n, rng);
    Twin x = P.f32(x1, d, n), w = P.f32(randn(d, rng), d), y = P.nan(d, n);
    P.cpu->rms_norm(y.c, x.c, w.c, 1e-6f);
    P.gpu->rms_norm(y.g, x.g, w.g, 1e-6f);
    P.gpu->upload(x.g, x2.data(), x2.size() * 4);  // queued after the norm: it must read x1
    Buffer host = P.gpu->alloc_host(static_cast<size_t>(d * n) * 4, "pinned");
    P.gpu->download_async(host.data(), y.g, static_cast<size_t>(d * n) * 4);
    const uint64_t f = P.gpu->fence();
    P.gpu->wait_fence(f);
    std::vector<float> got(static_cast<float*>(host.data()), static_cast<float*>(host.data()) + d * n);
    expect_close(got, P.rows_cpu(y.c), 1e-6, 1e-30, "norm of the first upload");  // bound as in RmsNorm
    std::vector<float> x_now(x2.size());
    P.gpu->download(x_now.data(), x.g, x_now.size() * 4);
    EXPECT_EQ(x_now, x2);
    for (int i = 0; i < 40; ++i) P.gpu->wait_fence(P.gpu->fence());  // the ring wraps
    P.gpu->wait_fence(f);                                            // an old fence still returns
}

// A step body of several ops over fixed views, like the model's decode step.
struct StepFixture {
    Pair P;
    int64_t d = 2880, n = 8, V = 201088;
    Twin x, w, h, logits, ids, slot, pos, hist, params, last;
    std::mt19937 rng{fresh_seed()};
    StepFixture() {
        x = P.f32(randn(d * n, rng), d, n), w = P.f32(randn(d, rng), d), h = P.nan(d, n);
        logits = P.nan(V, n);
        std::vector<int32_t> sl(n), ps(n);
        for (int i = 0; i < n; ++i) sl[i] = i, ps[i] = 10 + i;
        slot = P.i32(sl, n), pos = P.i32(ps, n);
        hist = P.i32(std::vector<int32_t>(static_cast<size_t>(64 * n), 3), 64, n);
        std::vector<SamplingParams> sp(static_cast<size_t>(n));
        for (int i = 0; i < n; ++i) sp[i].temperature = 0.8f, sp[i].top_p = 0.9f, sp[i].seed = 1000 + i;
        params = P.make(GgmlType::I32, sp.data(), 8, n);
        last = P.i32(std::vector<int32_t>(n, 0), n), ids = P.i32(std::vector<int32_t>(n, -1), n);
        StepLimits lim;
        lim.max_out_rows = n, lim.n_vocab = V;
        P.gpu->reserve_scratch(lim);
    }
    void body() {
        Backend& g = *P.gpu;
        g.rms_norm(h.g, x.g, w.g, 1e-5f);
        g.add(h.g, x.g);
        g.swiglu(logits.g.col_range(0, d), h.g, x.g);  // part of the logits comes from the step's data
        g.sample(ids.g, logits.g, slot.g, pos.g, SlotState{last.g, hist.g, params.g});
    }
    void new_inputs() {
        std::vector<float> xv = randn(d * n, rng), lv = randn(V * n, rng, 2.0f);
        P.gpu->upload(x.g, xv.data(), xv.size() * 4);
        P.gpu->upload(logits.g, lv.data(), lv.size() * 4);
    }
    std::pair<std::vector<float>, std::vector<int32_t>> result() {
        return {P.rows_gpu(h.g), P.get_gpu<int32_t>(ids.g, static_cast<size_t>(n))};
    }
};

TEST(CudaBackend, GraphReplayEqualsEagerExecution) {
    REQUIRE_GPU();
    if (const char* g = std::getenv("WO_CUDA_GRAPHS"); g && std::string(g) == "0")
        GTEST_SKIP() << "graphs off";
    StepFixture F;
    auto& cb = as_cuda(*F.P.gpu);
    for (int call = 0; call < 4; ++call) {  // warm-up, capture + launch, launch, launch
        F.new_inputs();
        std::vector<float> lv(static_cast<size_t>(F.V * F.n));
        F.P.gpu->download(lv.data(), F.logits.g, lv.size() * 4);  // the inputs of this call
        F.P.gpu->run_step(0, [&] { F.body(); });                  // eager reference
        const auto eager = F.result();
        F.P.gpu->upload(F.logits.g, lv.data(), lv.size() * 4);
        F.P.gpu->run_step(42, [&] { F.body(); });
        const auto replay = F.result();
        EXPECT_EQ(replay.first, eager.first) << "call " << call;  // same kernels, same order: bit-identical
        EXPECT_EQ(replay.second, eager.second) << "call " << call;
        EXPECT_EQ(cb.graphs_captured(), call == 0 ? 0 : 1) << "call " << call;
    }
}

// Which kernel a row takes: decode rows the CUDA-core path, prompt rows the tensor-core path, but
// every row the CUDA-core path for weights under kMmaMinRows rows (the router); checked against
// the two paths run directly, bit for bit.
TEST(CudaBackend, DecodeRowsAndPromptRowsTakeTheirPaths) {
    REQUIRE_GPU();
    if (std::getenv("WO_CUDA_MMA") || std::getenv("WO_CUDA_DECODE")) GTEST_SKIP() << "paths overridden";
    Pair P;
    auto& cb = as_cuda(*P.gpu);
    std::mt19937 rng(77);
    const int64_t n_in = 256, n = 11;
    static_assert(cuda::kMmaMinRows > 40 && cuda::kMmaMinRows <= 130, "one weight on each side");
    for (const int64_t n_out : {int64_t(130), int64_t(40)}) {
        SCOPED_TRACE(n_out);
        Twin w = P.f32(randn(size_t(n_in * n_out), rng), n_in, n_out);
        Twin x = P.f32(randn(size_t(n_in * n), rng), n_in, n);
        Twin vec = P.nan(n_out, n), mma = P.nan(n_out, n), y = P.nan(n_out, n);
        cuda::matmul(vec.g, x.g, w.g, nullptr, false, cb.stream());
        cuda::matmul_mma(mma.g, x.g, w.g, nullptr, false, cb.stream());
        const auto v = P.rows_gpu(vec.g), m = P.rows_gpu(mma.g);
        ASSERT_NE(v, m) << "the two paths should differ in some low bits on random data";
        for (const int64_t n_dec : {int64_t(3), n, int64_t(0)}) {
            P.gpu->set_decode_rows(n_dec);
            P.gpu->matmul(y.g, x.g, w.g, nullptr);
            const auto got = P.rows_gpu(y.g);
            for (int64_t t = 0; t < n; ++t) {
                const auto& want = t < n_dec || n_out < cuda::kMmaMinRows ? v : m;
                for (int64_t r = 0; r < n_out; ++r)
                    ASSERT_EQ(std::memcmp(&got[size_t(t * n_out + r)], &want[size_t(t * n_out + r)], 4), 0)
                        << n_dec << " decode rows: token " << t << " row " << r;
            }
        }
    }
    P.gpu->set_decode_rows(INT64_MAX);
}

// rms_norm's split of its decode rows feeds the tensor-core products over its output (the
// bits of a product that splits for itself, with tmv_split's launches dropped); once add()
// writes the norm's output the split is forgotten and the product sees the new rows.
TEST(CudaBackend, NormSplitFeedsTheProductsUntilTheRowsChange) {
    REQUIRE_GPU();
    if (std::getenv("WO_CUDA_NORM_SPLIT") || std::getenv("WO_CUDA_MMA") || std::getenv("WO_CUDA_DECODE") ||
        std::getenv("WO_CUDA_TMV"))
        GTEST_SKIP() << "paths overridden";
    Pair P;
    std::mt19937 rng(83);
    const int64_t d = 2880, n = 4;
    StepLimits l;
    l.max_tokens = n, l.n_embd = d, l.max_width = d;
    P.gpu->reserve_scratch(l);
    Twin x = P.f32(randn(size_t(d * n), rng), d, n), g = P.f32(randn(size_t(d), rng), d),
         z = P.f32(randn(size_t(d * n), rng), d, n), h = P.nan(d, n);
    P.gpu->set_decode_rows(n);
    P.gpu->rms_norm(h.g, x.g, g.g, 1e-5f);
    expect_product_reads_the_split(P, h.g, d, n, rng, "after rms_norm");
    P.gpu->add(h.g, z.g);
    // No split of the new rows anywhere: the product must split them itself (launches on).
    const Tensor w = P.gpu->weight(std::vector<uint8_t>(size_t(1024 * d / 32) * 34, 0x11).data(), GgmlType::Q8_0,
                                   d, 1024, 1, "w");
    Twin y = P.nan(1024, n), ref = P.nan(1024, n);
    Buffer sb = P.gpu->alloc(cuda::matmul_tmv_scratch_bytes(n, d), "test scratch");
    cuda::matmul_tmv(ref.g, h.g, w, nullptr, false, sb.data(), sb.bytes, as_cuda(*P.gpu).stream());
    P.gpu->matmul(y.g, h.g, w, nullptr);
    const auto a = P.rows_gpu(y.g), b = P.rows_gpu(ref.g);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * 4), 0) << "after add";
    P.gpu->set_decode_rows(INT64_MAX);
}

TEST(CudaBackend, RegistersAsCuda) {
    REQUIRE_GPU();
    cuda::register_backend();
    auto it = backend_factories().find("cuda");
    ASSERT_NE(it, backend_factories().end());
    auto be = it->second(BackendOptions{});
    EXPECT_EQ(be->name(), "cuda");
}

}  // namespace
}  // namespace wo::test
