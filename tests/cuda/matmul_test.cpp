// CUDA dequantization, matmul and embed kernels against quant/'s CPU dequantization, called
// directly (kernels.h) on device memory the test allocates.
#include <algorithm>
#include <bit>
#include <cmath>
#include <deque>
#include <vector>

#include "backend/cuda/dequant.cuh"
#include "backend/cuda/kernels.h"
#include "kernel_test_util.h"

namespace wo::cuda::test {
namespace {

std::string tname(GgmlType t) { return std::string(type_name(t)); }

// ---- dequantization (through embed, which is a per-row dequantization)

// Random bytes for every field, scales included: f16 scales that are inf/NaN/subnormal, MXFP4
// exponents 0, 1 and 0xFF, F16/BF16 NaN payloads all occur (and some are forced).
std::vector<uint8_t> raw_random(GgmlType t, int64_t rows, int64_t n, std::mt19937& rng) {
    std::vector<uint8_t> w(row_bytes(t, uint64_t(n)) * size_t(rows));
    std::uniform_int_distribution<int> byte(0, 255);
    for (auto& b : w) b = uint8_t(byte(rng));
    if (t == GgmlType::MXFP4) {  // first blocks: the edge exponents
        const uint8_t edge[] = {0xFF, 0, 1, 254, 127};
        for (size_t i = 0; i < 5 && i * 17 < w.size(); ++i) w[i * 17] = edge[i];
    }
    return w;
}

TEST(CudaDequant, EveryTypeBitExactWithCpu) {
    REQUIRE_GPU();
    std::mt19937 rng(7);
    for (GgmlType t : all_types()) {
        SCOPED_TRACE(tname(t));
        const int64_t n = block_of(t) == 1 ? 1000 : block_of(t) * (block_of(t) == 32 ? 37 : 5);
        const int64_t rows = 64;
        auto w = raw_random(t, rows, n, rng);
        DevBuf dw(w.size()), dy(sizeof(float) * size_t(n * rows)), dids(sizeof(int32_t) * size_t(rows));
        dw.upload(w.data(), w.size());
        std::vector<int32_t> ids(static_cast<size_t>(rows));
        for (int64_t i = 0; i < rows; ++i) ids[size_t(i)] = int32_t(rows - 1 - i);  // reversed: ids matter
        dids.upload(ids.data(), ids.size() * 4);
        dy.fill(0xFF);
        Tensor table = make_tensor(dw.get(), t, n, rows);
        embed(make_tensor(dy.get(), GgmlType::F32, n, rows), table,
              make_tensor(dids.get(), GgmlType::I32, rows), false, nullptr);
        sync();
        auto y = download_vec<float>(dy, size_t(n * rows));
        int64_t bad = 0, nan = 0;
        for (int64_t i = 0; i < rows; ++i) {
            auto ref = cpu_row(t, w, n, ids[size_t(i)]);
            for (int64_t c = 0; c < n; ++c) {
                const float g = y[size_t(i * n + c)], r = ref[size_t(c)];
                nan += std::isnan(r);
                if (!same_value(g, r) && bad++ < 5) {
                    ADD_FAILURE() << "row " << ids[size_t(i)] << " col " << c << ": gpu " << g << " cpu "
                                  << r;
                }
            }
        }
        EXPECT_EQ(bad, 0);
        if (t == GgmlType::MXFP4) {
            EXPECT_GE(nan, 32) << "the e = 0xFF block decodes as NaN";
        }
    }
}

// ---- embed

TEST(CudaEmbed, LookupAndAddOnStridedRows) {
    REQUIRE_GPU();
    std::mt19937 rng(11);
    for (GgmlType t : all_types()) {
        SCOPED_TRACE(tname(t));
        const int64_t d = block_of(t) == 1 ? 37 : block_of(t) * 3, n_rows = 50, n = 9, ld = d + 5;
        auto w = random_weights(t, n_rows, d, rng);
        std::vector<int32_t> ids = {3, 3, 49, 0, 17, 8, 49, 1, 22};
        auto y0 = random_floats(size_t(ld * n), rng);
        DevBuf dw(w.size()), dy(y0.size() * 4), dids(ids.size() * 4);
        dw.upload(w.data(), w.size());
        dids.upload(ids.data(), ids.size() * 4);
        for (bool add : {false, true}) {
            SCOPED_TRACE(add ? "add" : "set");
            dy.upload(y0.data(), y0.size() * 4);
            Tensor y = make_tensor(dy.get(), GgmlType::F32, ld, n).col_range(2, d);  // strided, offset rows
            embed(y, make_tensor(dw.get(), t, d, n_rows), make_tensor(dids.get(), GgmlType::I32, n), add,
                  nullptr);
            sync();
            auto out = download_vec<float>(dy, y0.size());
            for (int64_t i = 0; i < n; ++i) {
                auto ref = cpu_row(t, w, d, ids[size_t(i)]);
                for (int64_t c = 0; c < ld; ++c) {
                    const size_t at = size_t(i * ld + c);
                    const bool inside = c >= 2 && c < 2 + d;
                    const float want = !inside ? y0[at]
                                       : add   ? y0[at] + ref[size_t(c - 2)]
                                               : ref[size_t(c - 2)];
                    ASSERT_TRUE(same_value(out[at], want)) << "token " << i << " col " << c;
                }
            }
        }
    }
}

TEST(CudaEmbed, IdOutOfRangeGivesNaN) {
    REQUIRE_GPU();
    std::mt19937 rng(12);
    const int64_t d = 64;
    auto w = random_weights(GgmlType::Q8_0, 4, d, rng);
    std::vector<int32_t> ids = {1, 4, -1};
    DevBuf dw(w.size()), dy(sizeof(float) * d * 3), dids(12);
    dw.upload(w.data(), w.size());
    dids.upload(ids.data(), 12);
    embed(make_tensor(dy.get(), GgmlType::F32, d, 3), make_tensor(dw.get(), GgmlType::Q8_0, d, 4),
          make_tensor(dids.get(), GgmlType::I32, 3), false, nullptr);
    sync();
    auto y = download_vec<float>(dy, size_t(d * 3));
    EXPECT_FALSE(std::isnan(y[0]));
    EXPECT_TRUE(std::isnan(y[size_t(d)]));
    EXPECT_TRUE(std::isnan(y[size_t(2 * d)]));
}

// ---- DEVICE layout (load-time repack of Q8_0 and MXFP4): the same values in the same unit order,
// so lookups and products are bit-identical to the GGUF layout's, whatever the token count.
TEST(CudaRepack, DeviceLayoutGivesTheGgufLayoutsBits) {
    REQUIRE_GPU();
    std::mt19937 rng(21);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        const int64_t n_in = 32 * 45, n_out = 37, n_tok = 13;  // 45 blocks: rows not 16-byte multiples
        auto w = raw_random(t, n_out, n_in, rng);
        Tensor gw;
        DevBuf dw(w.size());
        dw.upload(w.data(), w.size());
        gw = make_tensor(dw.get(), t, n_in, n_out);
        const size_t rb = repack_bytes(gw);
        ASSERT_GT(rb, 0u);
        DevBuf dp(rb);
        const Tensor pw = repack(gw, dp.get(), nullptr);
        ASSERT_EQ(pw.layout, WeightLayout::DEVICE);
        ASSERT_EQ(pw.nb1 % 16, 0u);
        // Every row through embed.
        std::vector<int32_t> ids(static_cast<size_t>(n_out));
        for (int64_t i = 0; i < n_out; ++i) ids[size_t(i)] = int32_t(n_out - 1 - i);
        DevBuf dids(ids.size() * 4), ya(sizeof(float) * size_t(n_in * n_out)),
            yb(sizeof(float) * size_t(n_in * n_out));
        dids.upload(ids.data(), ids.size() * 4);
        const Tensor tid = make_tensor(dids.get(), GgmlType::I32, n_out);
        embed(make_tensor(ya.get(), GgmlType::F32, n_in, n_out), gw, tid, false, nullptr);
        embed(make_tensor(yb.get(), GgmlType::F32, n_in, n_out), pw, tid, false, nullptr);
        sync();
        auto a = download_vec<float>(ya, size_t(n_in * n_out)),
             b = download_vec<float>(yb, size_t(n_in * n_out));
        for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(same_value(a[i], b[i])) << "element " << i;
        // And the products (finite weights only: random scales give inf/NaN rows, same in both).
        auto x = random_floats(size_t(n_in * n_tok), rng);
        DevBuf dx(x.size() * 4), ma(sizeof(float) * size_t(n_out * n_tok)),
            mb(sizeof(float) * size_t(n_out * n_tok));
        dx.upload(x.data(), x.size() * 4);
        const Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n_tok);
        matmul(make_tensor(ma.get(), GgmlType::F32, n_out, n_tok), tx, gw, nullptr, false, nullptr);
        matmul(make_tensor(mb.get(), GgmlType::F32, n_out, n_tok), tx, pw, nullptr, false, nullptr);
        sync();
        a = download_vec<float>(ma, size_t(n_out * n_tok)),
        b = download_vec<float>(mb, size_t(n_out * n_tok));
        for (size_t i = 0; i < a.size(); ++i) ASSERT_TRUE(same_value(a[i], b[i])) << "output " << i;
    }
}

// ---- matmul

struct MatmulCase {
    GgmlType type;
    int64_t n_in, n_out, n_tok;
    bool bias = false, accumulate = false, strided = false;
    std::vector<int64_t> check_tokens;  // empty: all
    int64_t check_rows_step = 1;        // check rows 0, step, 2*step, ... and the last
    bool mma = false;                   // the prompt path (matmul_mma, mma_error_bound)
};

// Runs one matmul on random data and checks every checked output against a double-precision
// dot of the CPU-dequantized weights. Error bound (dot_error_bound): the weights are bit-exact
// (CudaDequant), so the only error is the fp32 accumulation: one rounding per FMA of a lane's
// 8*ceil(units/32) terms, 5 butterfly adds, + bias + accumulate, times Σ|w·x| (+|b|, |y0|).
// Outputs start as NaN (0xFFFFFFFF) unless accumulating; bytes outside y's columns must survive.
std::vector<float> run_matmul(const MatmulCase& c, std::mt19937& rng, std::vector<float>* x_out = nullptr) {
    auto w = random_weights(c.type, c.n_out, c.n_in, rng, 0.5f);
    const int64_t x_ld = c.strided ? c.n_in + 3 : c.n_in, x_off = c.strided ? 1 : 0;
    const int64_t y_ld = c.strided ? c.n_out + 7 : c.n_out, y_off = c.strided ? 5 : 0;
    auto x = random_floats(size_t(x_ld * c.n_tok), rng);
    auto bias = random_floats(size_t(c.n_out), rng);
    std::vector<float> y0(size_t(y_ld * c.n_tok), poison());
    if (c.accumulate) y0 = random_floats(y0.size(), rng);
    if (c.strided)  // guard columns get a recognizable value
        for (int64_t t = 0; t < c.n_tok; ++t)
            for (int64_t j = 0; j < y_ld; ++j)
                if (j < y_off || j >= y_off + c.n_out) y0[size_t(t * y_ld + j)] = 1234.5f;
    DevBuf dw(w.size()), dx(x.size() * 4), dy(y0.size() * 4), db(bias.size() * 4);
    dw.upload(w.data(), w.size());
    dx.upload(x.data(), x.size() * 4);
    dy.upload(y0.data(), y0.size() * 4);
    db.upload(bias.data(), bias.size() * 4);
    Tensor tx = make_tensor(dx.get(), GgmlType::F32, x_ld, c.n_tok).col_range(x_off, c.n_in);
    Tensor ty = make_tensor(dy.get(), GgmlType::F32, y_ld, c.n_tok).col_range(y_off, c.n_out);
    (c.mma ? matmul_mma : matmul)(ty, tx, make_tensor(dw.get(), c.type, c.n_in, c.n_out),
                                  c.bias ? static_cast<float*>(db.get()) : nullptr, c.accumulate, nullptr);
    sync();
    auto y = download_vec<float>(dy, y0.size());

    std::vector<int64_t> toks = c.check_tokens;
    if (toks.empty())
        for (int64_t t = 0; t < c.n_tok; ++t) toks.push_back(t);
    std::vector<int64_t> rows;
    for (int64_t r = 0; r < c.n_out; r += c.check_rows_step) rows.push_back(r);
    if (rows.back() != c.n_out - 1) rows.push_back(c.n_out - 1);
    int64_t bad = 0;
    for (int64_t r : rows) {
        auto wr = cpu_row(c.type, w, c.n_in, r);
        for (int64_t t : toks) {
            const float* xr = x.data() + t * x_ld + x_off;
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < c.n_in; ++i) {
                ref += double(wr[size_t(i)]) * double(xr[i]);
                mag += std::fabs(double(wr[size_t(i)]) * double(xr[i]));
            }
            const size_t at = size_t(t * y_ld + y_off + r);
            if (c.bias) ref += bias[size_t(r)], mag += std::fabs(bias[size_t(r)]);
            if (c.accumulate) ref += y0[at], mag += std::fabs(y0[at]);
            const double bound =
                c.mma ? mma_error_bound(c.n_in, 2, mag, c.type) : dot_error_bound(c.n_in, 2, mag, c.type);
            const double err = std::fabs(double(y[at]) - ref);
            if (!(err <= bound) && bad++ < 5) {
                ADD_FAILURE() << tname(c.type) << " row " << r << " token " << t << ": gpu " << y[at]
                              << " ref " << ref << " err " << err << " bound " << bound;
            }
        }
    }
    EXPECT_EQ(bad, 0);
    if (c.strided)
        for (int64_t t = 0; t < c.n_tok; ++t)
            for (int64_t j = 0; j < y_ld; ++j)
                if ((j < y_off || j >= y_off + c.n_out) && y[size_t(t * y_ld + j)] != 1234.5f) {
                    ADD_FAILURE() << "wrote outside y: token " << t << " col " << j;
                    return y;
                }
    if (x_out) *x_out = x;
    return y;
}

TEST(CudaMatmul, EveryTypeOddShapes) {
    REQUIRE_GPU();
    std::mt19937 rng(21);
    for (bool warp : {false, true})
        for (GgmlType t : all_types()) {
            SCOPED_TRACE(tname(t) + (warp ? " (warp-per-rows)" : ""));
            WarpKernels wk(warp);
            const int64_t b = block_of(t);
            // n_in: an odd number of blocks (F32/F16/BF16: not a multiple of 8 either, so the tail
            // unit runs); n_out: odd, not a multiple of the 8 rows of a CTA.
            const int64_t n_in = b == 1 ? 301 : b == 32 ? 32 * 23 : 256 * 3;
            for (int64_t n_tok : {1, 2, 3, 7, 9, 17}) {
                SCOPED_TRACE(n_tok);
                run_matmul({t, n_in, 13, n_tok, false, false, false, {}, 1}, rng);
            }
            run_matmul({t, b == 1 ? 7 : b, 1, 5, false, false, false, {}, 1},
                       rng);  // a single block, a single row
        }
}

TEST(CudaMatmul, BiasAccumulateAndStridedRows) {
    REQUIRE_GPU();
    std::mt19937 rng(22);
    for (GgmlType t : all_types()) {
        SCOPED_TRACE(tname(t));
        const int64_t n_in = block_of(t) == 256 ? 512 : 160;
        for (int mode = 0; mode < 4; ++mode) {
            MatmulCase c{t, n_in, 37, 11, false, false, false, {}, 1};
            c.bias = mode & 1;
            c.accumulate = mode & 2;
            c.strided = true;
            run_matmul(c, rng);
        }
    }
}

// gpt-oss-20b shapes: the 2880x2880 projection at 1, 7, 128 and 2048 tokens (2048 checked on a
// sample of tokens against the reference), in the preset's Q8_0 and the experts' MXFP4.
TEST(CudaMatmul, RealShapes2880) {
    REQUIRE_GPU();
    std::mt19937 rng(23);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::BF16}) {
        SCOPED_TRACE(tname(t));
        for (int64_t n_tok : {1, 7, 128}) run_matmul({t, 2880, 2880, n_tok, true, false, false, {}, 7}, rng);
        run_matmul({t, 2880, 2880, 2048, true, false, false, {0, 1, 7, 8, 100, 1023, 1024, 2046, 2047}, 1},
                   rng);
    }
}

// The vocabulary projection: 201,088 rows of 2880 (Q8_0, 615 MB), 1, 7 and 128 tokens; rows
// checked on a stride (every one is still computed and must not be NaN).
TEST(CudaMatmul, VocabShape) {
    REQUIRE_GPU();
    std::mt19937 rng(24);
    for (int64_t n_tok : {1, 7, 128}) {
        SCOPED_TRACE(n_tok);
        MatmulCase c{GgmlType::Q8_0, 2880, 201088, n_tok, false, false, false, {}, 997};
        if (n_tok == 128) c.check_tokens = {0, 5, 64, 127};
        auto y = run_matmul(c, rng);
        int64_t nan = 0;
        for (float v : y) nan += std::isnan(v);
        EXPECT_EQ(nan, 0) << "outputs left unwritten (poison) or NaN";
    }
}

// Batch invariance: every token's row of a batched matmul is bit-identical to the same token
// computed alone, and to the batch reversed (other neighbours, other pass of 8/4/2/1, other
// alignment of its x row). The tokens alone take the one-token kernels, once the CTA-per-rows
// one and once the warp-per-rows one; the batch of 37 the wide kernel.
TEST(CudaMatmul, BatchInvariantBitForBit) {
    REQUIRE_GPU();
    std::mt19937 rng(25);
    for (bool warp : {false, true})
        for (GgmlType t : all_types()) {
            SCOPED_TRACE(tname(t) + (warp ? " (warp-per-rows)" : ""));
            WarpKernels wk(warp);
            const int64_t n_in = block_of(t) == 1 ? 299 : block_of(t) == 32 ? 32 * 45 : 256 * 5;
            const int64_t n_out = 45, n = 37;
            auto w = random_weights(t, n_out, n_in, rng, 0.5f);
            auto x = random_floats(size_t(n_in * n), rng);
            std::vector<float> xr(x.size());
            for (int64_t i = 0; i < n; ++i)
                std::copy_n(x.begin() + i * n_in, n_in, xr.begin() + (n - 1 - i) * n_in);
            DevBuf dw(w.size()), dx(x.size() * 4), dxr(x.size() * 4), dy(sizeof(float) * size_t(n_out * n)),
                dy1(sizeof(float) * size_t(n_out * n)), dyr(sizeof(float) * size_t(n_out * n));
            dw.upload(w.data(), w.size());
            dx.upload(x.data(), x.size() * 4);
            dxr.upload(xr.data(), xr.size() * 4);
            dy.fill(0xFF), dy1.fill(0xFF), dyr.fill(0xFF);
            Tensor tw = make_tensor(dw.get(), t, n_in, n_out);
            Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n);
            Tensor ty1 = make_tensor(dy1.get(), GgmlType::F32, n_out, n);
            matmul(make_tensor(dy.get(), GgmlType::F32, n_out, n), tx, tw, nullptr, false, nullptr);
            matmul(make_tensor(dyr.get(), GgmlType::F32, n_out, n),
                   make_tensor(dxr.get(), GgmlType::F32, n_in, n), tw, nullptr, false, nullptr);
            for (int64_t i = 0; i < n; ++i)
                matmul(ty1.row_range(i, 1), tx.row_range(i, 1), tw, nullptr, false, nullptr);
            sync();
            auto y = download_vec<float>(dy, size_t(n_out * n));
            auto y1 = download_vec<float>(dy1, size_t(n_out * n));
            auto yr = download_vec<float>(dyr, size_t(n_out * n));
            std::vector<float> yc = y;  // the batch on the CTA kernels, for the warp kernels' passes
            if (warp) {
                WarpKernels off(false);
                matmul(make_tensor(dyr.get(), GgmlType::F32, n_out, n), tx, tw, nullptr, false, nullptr);
                sync();
                yc = download_vec<float>(dyr, size_t(n_out * n));
            }
            for (int64_t i = 0; i < n; ++i)
                for (int64_t r = 0; r < n_out; ++r) {
                    const float a = y[size_t(i * n_out + r)];
                    ASSERT_FALSE(std::isnan(a)) << "token " << i << " row " << r;
                    ASSERT_TRUE(same_value(a, yc[size_t(i * n_out + r)]))
                        << "warp passes against the CTA kernel, token " << i << " row " << r;
                    ASSERT_TRUE(same_value(a, y1[size_t(i * n_out + r)]))
                        << "alone, token " << i << " row " << r;
                    ASSERT_TRUE(same_value(a, yr[size_t((n - 1 - i) * n_out + r)]))
                        << "reversed, token " << i;
                }
        }
}

// Batch invariance at the real size: 2048 tokens against a sample computed alone and in 7s.
TEST(CudaMatmul, BatchInvariant2048) {
    REQUIRE_GPU();
    std::mt19937 rng(26);
    const int64_t n_in = 2880, n_out = 2880, n = 2048;
    auto w = random_weights(GgmlType::Q8_0, n_out, n_in, rng, 0.5f);
    auto x = random_floats(size_t(n_in * n), rng);
    DevBuf dw(w.size()), dx(x.size() * 4), dy(sizeof(float) * size_t(n_out * n)),
        dy1(sizeof(float) * size_t(n_out * n));
    dw.upload(w.data(), w.size());
    dx.upload(x.data(), x.size() * 4);
    dy.fill(0xFF), dy1.fill(0xFF);
    Tensor tw = make_tensor(dw.get(), GgmlType::Q8_0, n_in, n_out);
    Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n);
    Tensor ty1 = make_tensor(dy1.get(), GgmlType::F32, n_out, n);
    matmul(make_tensor(dy.get(), GgmlType::F32, n_out, n), tx, tw, nullptr, false, nullptr);
    const std::vector<int64_t> alone = {0, 1, 2, 3, 4, 5, 6, 7, 8, 500, 1001, 2040, 2047};
    for (int64_t i : alone) matmul(ty1.row_range(i, 1), tx.row_range(i, 1), tw, nullptr, false, nullptr);
    const int64_t s7 = 1000;  // tokens 1000..1006 as a batch of 7
    matmul(ty1.row_range(s7, 7), tx.row_range(s7, 7), tw, nullptr, false, nullptr);
    sync();
    auto y = download_vec<float>(dy, size_t(n_out * n));
    auto y1 = download_vec<float>(dy1, size_t(n_out * n));
    std::vector<int64_t> check = alone;
    for (int64_t i = s7; i < s7 + 7; ++i) check.push_back(i);
    for (int64_t i : check)
        for (int64_t r = 0; r < n_out; ++r)
            ASSERT_TRUE(same_value(y[size_t(i * n_out + r)], y1[size_t(i * n_out + r)]) &&
                        !std::isnan(y1[size_t(i * n_out + r)]))
                << "token " << i << " row " << r;
}

// ---- the prompt path (matmul_mma): the same checks with tiles of 64 rows x 64 tokens, so the
// shapes cross tile edges in both directions.

TEST(CudaMatmulMma, EveryTypeOddShapes) {
    REQUIRE_GPU();
    std::mt19937 rng(121);
    for (GgmlType t : all_types()) {
        SCOPED_TRACE(tname(t));
        const int64_t b = block_of(t);
        const int64_t n_in = b == 1 ? 301 : b == 32 ? 32 * 23 : 256 * 3;
        for (int64_t n_tok : {1, 3, 64, 65, 130}) {
            SCOPED_TRACE(n_tok);
            MatmulCase c{t, n_in, n_tok == 65 ? 67 : 13, n_tok, false, false, false, {}, 1};
            c.mma = true;
            run_matmul(c, rng);
        }
        MatmulCase one{t, b == 1 ? 7 : b, 1, 5, false, false, false, {}, 1};
        one.mma = true;
        run_matmul(one, rng);
    }
}

TEST(CudaMatmulMma, BiasAccumulateAndStridedRows) {
    REQUIRE_GPU();
    std::mt19937 rng(122);
    for (GgmlType t : all_types()) {
        SCOPED_TRACE(tname(t));
        const int64_t n_in = block_of(t) == 256 ? 512 : 160;
        for (int mode = 0; mode < 4; ++mode) {
            MatmulCase c{t, n_in, 77, 70, false, false, false, {}, 1};
            c.bias = mode & 1;
            c.accumulate = mode & 2;
            c.strided = true;
            c.mma = true;
            run_matmul(c, rng);
        }
    }
}

TEST(CudaMatmulMma, RealShapes2880) {
    REQUIRE_GPU();
    std::mt19937 rng(123);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4, GgmlType::BF16}) {
        SCOPED_TRACE(tname(t));
        MatmulCase c{t, 2880, 2880, 128, true, false, false, {}, 7};
        c.mma = true;
        run_matmul(c, rng);
        MatmulCase big{t, 2880, 2880, 2048, true, false, false, {0, 1, 63, 64, 100, 1023, 1024, 2046, 2047},
                       1};
        big.mma = true;
        run_matmul(big, rng);
    }
}

// Batch invariance of the prompt path: every token's row bit-identical to the token alone, to the
// batch reversed, and to a batch starting at another offset (another tile and column).
TEST(CudaMatmulMma, BatchInvariantBitForBit) {
    REQUIRE_GPU();
    std::mt19937 rng(125);
    for (GgmlType t : all_types()) {
        SCOPED_TRACE(tname(t));
        const int64_t n_in = block_of(t) == 1 ? 299 : block_of(t) == 32 ? 32 * 45 : 256 * 5;
        const int64_t n_out = 77, n = 150;
        auto w = random_weights(t, n_out, n_in, rng, 0.5f);
        auto x = random_floats(size_t(n_in * n), rng);
        std::vector<float> xr(x.size());
        for (int64_t i = 0; i < n; ++i)
            std::copy_n(x.begin() + i * n_in, n_in, xr.begin() + (n - 1 - i) * n_in);
        const size_t ybytes = sizeof(float) * size_t(n_out * n);
        DevBuf dw(w.size()), dx(x.size() * 4), dxr(x.size() * 4), dy(ybytes), dy1(ybytes), dyr(ybytes),
            dyo(ybytes);
        dw.upload(w.data(), w.size());
        dx.upload(x.data(), x.size() * 4);
        dxr.upload(xr.data(), xr.size() * 4);
        dy.fill(0xFF), dy1.fill(0xFF), dyr.fill(0xFF), dyo.fill(0xFF);
        Tensor tw = make_tensor(dw.get(), t, n_in, n_out);
        Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n);
        Tensor ty1 = make_tensor(dy1.get(), GgmlType::F32, n_out, n);
        Tensor tyo = make_tensor(dyo.get(), GgmlType::F32, n_out, n);
        matmul_mma(make_tensor(dy.get(), GgmlType::F32, n_out, n), tx, tw, nullptr, false, nullptr);
        matmul_mma(make_tensor(dyr.get(), GgmlType::F32, n_out, n),
                   make_tensor(dxr.get(), GgmlType::F32, n_in, n), tw, nullptr, false, nullptr);
        for (int64_t i = 0; i < n; ++i)
            matmul_mma(ty1.row_range(i, 1), tx.row_range(i, 1), tw, nullptr, false, nullptr);
        matmul_mma(tyo.row_range(0, 11), tx.row_range(0, 11), tw, nullptr, false, nullptr);
        matmul_mma(tyo.row_range(11, n - 11), tx.row_range(11, n - 11), tw, nullptr, false, nullptr);
        sync();
        auto y = download_vec<float>(dy, size_t(n_out * n));
        auto y1 = download_vec<float>(dy1, size_t(n_out * n));
        auto yr = download_vec<float>(dyr, size_t(n_out * n));
        auto yo = download_vec<float>(dyo, size_t(n_out * n));
        for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < n_out; ++r) {
                const float a = y[size_t(i * n_out + r)];
                ASSERT_FALSE(std::isnan(a)) << "token " << i << " row " << r;
                ASSERT_TRUE(same_value(a, y1[size_t(i * n_out + r)])) << "alone, token " << i << " row " << r;
                ASSERT_TRUE(same_value(a, yr[size_t((n - 1 - i) * n_out + r)])) << "reversed, token " << i;
                ASSERT_TRUE(same_value(a, yo[size_t(i * n_out + r)])) << "offset 11, token " << i;
            }
    }
}

// ---- The decode path on tensor cores (matmul_tmv, tmv.cuh): Q8_0 / MXFP4 in the DEVICE layout.

struct TmvCase {
    GgmlType type;
    int64_t n_in, n_out, n_tok;
    bool bias = false, accumulate = false;
    std::vector<float> tok_scale;  // per token, times its random row (empty: 1)
};

// Scratch for matmul_tmv / matmul_tmm calls of n tokens of n_in over `rows` weight rows: the split,
// and the parts kernels' range sums when they are on.
size_t tmv_scratch(int64_t n, int64_t n_in, int64_t rows) {
    return (matmul_tmv_scratch_bytes(n, n_in) + 255) / 256 * 256 + matmul_tmv_parts_bytes(n, rows);
}

// Runs matmul_tmv (tmm: matmul_tmm, the prompt path) on a repacked random weight and checks every
// output against the double dot of the CPU-dequantized weights with tmv_error_bound
// (tmm_error_bound); returns y.
std::vector<float> run_tmv(const TmvCase& c, std::mt19937& rng, bool tmm = false) {
    auto w = random_weights(c.type, c.n_out, c.n_in, rng, 0.5f);
    auto x = random_floats(size_t(c.n_in * c.n_tok), rng);
    for (size_t t = 0; t < c.tok_scale.size(); ++t)
        for (int64_t i = 0; i < c.n_in; ++i) x[t * size_t(c.n_in) + size_t(i)] *= c.tok_scale[t];
    auto bias = random_floats(size_t(c.n_out), rng);
    auto y0 = c.accumulate ? random_floats(size_t(c.n_out * c.n_tok), rng)
                           : std::vector<float>(size_t(c.n_out * c.n_tok), poison());
    DevBuf dw(w.size()), dx(x.size() * 4), dy(y0.size() * 4), db(bias.size() * 4);
    dw.upload(w.data(), w.size());
    dx.upload(x.data(), x.size() * 4);
    dy.upload(y0.data(), y0.size() * 4);
    db.upload(bias.data(), bias.size() * 4);
    const Tensor gw = make_tensor(dw.get(), c.type, c.n_in, c.n_out);
    DevBuf dp(repack_bytes(gw));
    const Tensor pw = repack(gw, dp.get(), nullptr);
    EXPECT_EQ(pw.layout, WeightLayout::DEVICE);
    const size_t sb = tmv_scratch(c.n_tok, c.n_in, c.n_out);
    DevBuf scratch(sb);
    scratch.fill(0xFF);
    (tmm ? matmul_tmm : matmul_tmv)(make_tensor(dy.get(), GgmlType::F32, c.n_out, c.n_tok),
                                    make_tensor(dx.get(), GgmlType::F32, c.n_in, c.n_tok), pw,
                                    c.bias ? static_cast<float*>(db.get()) : nullptr, c.accumulate,
                                    scratch.get(), sb, nullptr);
    sync();
    auto y = download_vec<float>(dy, y0.size());
    int64_t bad = 0;
    for (int64_t r = 0; r < c.n_out; ++r) {
        auto wr = cpu_row(c.type, w, c.n_in, r);
        double w_abs = 0;
        for (float v : wr) w_abs += std::fabs(double(v));
        for (int64_t t = 0; t < c.n_tok; ++t) {
            const float* xr = x.data() + t * c.n_in;
            double ref = 0, mag = 0, x_max = 0;
            for (int64_t i = 0; i < c.n_in; ++i) {
                ref += double(wr[size_t(i)]) * double(xr[i]);
                mag += std::fabs(double(wr[size_t(i)]) * double(xr[i]));
                x_max = std::max(x_max, std::fabs(double(xr[i])));
            }
            const size_t at = size_t(t * c.n_out + r);
            if (c.bias) ref += bias[size_t(r)], mag += std::fabs(bias[size_t(r)]);
            if (c.accumulate) ref += y0[at], mag += std::fabs(y0[at]);
            const double bound =
                tmm ? tmm_error_bound(c.n_in, 2, mag, w_abs, x_max)
                    : tmv_error_bound(c.n_in, 2, mag, w_abs, x_max, matmul_tmv_ranges(c.n_out));
            const double err = std::fabs(double(y[at]) - ref);
            if (!(err <= bound) && bad++ < 5)
                ADD_FAILURE() << tname(c.type) << " row " << r << " token " << t << ": gpu " << y[at]
                              << " ref " << ref << " err " << err << " bound " << bound;
        }
    }
    EXPECT_EQ(bad, 0);
    return y;
}

// Tile edges in rows (45, 1030: not multiples of 16) and tokens (1..17: one tile, two, and
// groups of 8 with a remainder), an odd block count (23: 16 ranges of 2, the last ones empty),
// 2880 x 2880 and 16390 x 2880 (the 4-range order of large weights).
TEST(CudaMatmulTmv, MatchesReference) {
    REQUIRE_GPU();
    std::mt19937 rng(51);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        for (int64_t n_tok : {1, 3, 4, 5, 8, 9, 17}) {
            SCOPED_TRACE(n_tok);
            run_tmv({t, 32 * 23, 45, n_tok, n_tok % 2 == 1, n_tok % 3 == 0, {}}, rng);
        }
        run_tmv({t, 32 * 23, 1030, 6, true, false, {}}, rng);
        run_tmv({t, 2880, 2880, 2, true, false, {}}, rng);
        run_tmv({t, 2880, 16390, 5, true, false, {}}, rng);   // >= 16384 rows: 4 ranges,
        run_tmv({t, 2880, 16390, 19, true, false, {}}, rng);  // the wide kernel (kTmvWideMinTokens)
    }
}

// Tokens of very different magnitudes (the per-block exponents): 1e-30 .. 1e30 and a zero row.
TEST(CudaMatmulTmv, ActivationScales) {
    REQUIRE_GPU();
    std::mt19937 rng(52);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        run_tmv({t, 32 * 9, 37, 6, true, false, {1e-30f, 1.0f, 3e4f, 1e30f, 0.0f, 1e-3f}}, rng);
    }
}

// Batch invariance of matmul_tmv or matmul_tmm (same signature): n tokens against each alone,
// the reversed batch and sub-batches of 3 and 9 at `firsts`.
using TmvFn = void (*)(Tensor, Tensor, Tensor, const float*, bool, void*, size_t, cudaStream_t);
void check_tmv_batch_invariance(TmvFn mmfn, int64_t n_out, int64_t n, std::vector<int64_t> firsts,
                                std::mt19937& rng, int64_t n_in = 32 * 45) {
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        auto w = random_weights(t, n_out, n_in, rng, 0.5f);
        auto x = random_floats(size_t(n_in * n), rng);
        std::vector<float> xr(x.size());
        for (int64_t i = 0; i < n; ++i)
            std::copy_n(x.begin() + i * n_in, n_in, xr.begin() + (n - 1 - i) * n_in);
        DevBuf dw(w.size()), dx(x.size() * 4), dxr(x.size() * 4), dy(sizeof(float) * size_t(n_out * n)),
            dy1(sizeof(float) * size_t(n_out * n)), dyr(sizeof(float) * size_t(n_out * n));
        dw.upload(w.data(), w.size());
        dx.upload(x.data(), x.size() * 4);
        dxr.upload(xr.data(), xr.size() * 4);
        dy.fill(0xFF), dy1.fill(0xFF), dyr.fill(0xFF);
        const Tensor gw = make_tensor(dw.get(), t, n_in, n_out);
        DevBuf dp(repack_bytes(gw));
        const Tensor pw = repack(gw, dp.get(), nullptr);
        const size_t sb = tmv_scratch(n, n_in, n_out);
        DevBuf scratch(sb);
        const Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n);
        const Tensor ty1 = make_tensor(dy1.get(), GgmlType::F32, n_out, n);
        auto mm = [&](Tensor y, Tensor xx) { mmfn(y, xx, pw, nullptr, false, scratch.get(), sb, nullptr); };
        mm(make_tensor(dy.get(), GgmlType::F32, n_out, n), tx);
        mm(make_tensor(dyr.get(), GgmlType::F32, n_out, n), make_tensor(dxr.get(), GgmlType::F32, n_in, n));
        sync();
        auto y = download_vec<float>(dy, size_t(n_out * n));
        auto yr = download_vec<float>(dyr, size_t(n_out * n));
        for (int64_t i = 0; i < n; ++i) mm(ty1.row_range(i, 1), tx.row_range(i, 1)), sync();
        auto y1 = download_vec<float>(dy1, size_t(n_out * n));
        for (int64_t first : firsts)
            for (int64_t len : {int64_t(3), int64_t(9)}) {
                dy1.fill(0xFF);
                mm(ty1.row_range(first, len), tx.row_range(first, len));
                sync();
                auto yb = download_vec<float>(dy1, size_t(n_out * n));
                for (int64_t i = first; i < first + len; ++i)
                    for (int64_t r = 0; r < n_out; ++r)
                        ASSERT_TRUE(same_value(y[size_t(i * n_out + r)], yb[size_t(i * n_out + r)]))
                            << "batch of " << len << " at " << first << ", token " << i << " row " << r;
            }
        for (int64_t i = 0; i < n; ++i)
            for (int64_t r = 0; r < n_out; ++r) {
                const float a = y[size_t(i * n_out + r)];
                ASSERT_FALSE(std::isnan(a)) << "token " << i << " row " << r;
                ASSERT_TRUE(same_value(a, y1[size_t(i * n_out + r)])) << "alone, token " << i << " row " << r;
                ASSERT_TRUE(same_value(a, yr[size_t((n - 1 - i) * n_out + r)])) << "reversed, token " << i;
            }
    }
}

TEST(CudaMatmulTmv, BatchInvariantBitForBit) {
    REQUIRE_GPU();
    std::mt19937 rng(53);
    check_tmv_batch_invariance(matmul_tmv, 45, 37, {0, 20}, rng);
    check_tmv_batch_invariance(matmul_tmv, 16390, 37, {0, 20}, rng);  // 4 ranges: wide, groups of 8
}

// matmul_tmv's wide kernel (tmm.cuh's tiles in tmv.cuh's order; weights of 4 ranges) against its
// warps, bit for bit: with the wide kernel from 2 tokens on, every batch and sub-batch runs it and
// each token alone the warps. 45 blocks: ranges of 12, 12, 12, 9; 9 blocks: 3, 3, 3 (ranges end
// inside a stage of 2 blocks) and an empty one; 70 tokens: a full and a partial token tile.
TEST(CudaMatmulTmv, WideKernelGivesTheWarpsBits) {
    REQUIRE_GPU();
    std::mt19937 rng(58);
    const int64_t old = set_tmv_wide_min_tokens(2);
    check_tmv_batch_invariance(matmul_tmv, 16390, 70, {0, 60}, rng);
    check_tmv_batch_invariance(matmul_tmv, 16390, 37, {20}, rng, 32 * 9);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {  // and against the reference
        SCOPED_TRACE(tname(t));
        run_tmv({t, 32 * 9, 16390, 6, true, true, {1e-30f, 1.0f, 3e4f, 1e30f, 0.0f, 1e-3f}}, rng);
    }
    set_tmv_wide_min_tokens(old);
}

// ---- The prompt path from split activations (matmul_tmm, tmm.cuh): Q8_0 / MXFP4, DEVICE layout.

// Tile edges in rows (45, 130: one tile, a full and a partial one) and tokens (1, 63-65, 130),
// odd block counts (23, 45: a last stage of one block), 2880 x 2880 with 200 tokens.
TEST(CudaMatmulTmm, MatchesReference) {
    REQUIRE_GPU();
    std::mt19937 rng(54);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        for (int64_t n_tok : {1, 63, 64, 65, 130}) {
            SCOPED_TRACE(n_tok);
            run_tmv({t, 32 * 23, 45, n_tok, n_tok % 2 == 1, n_tok % 3 == 0, {}}, rng, true);
        }
        run_tmv({t, 32 * 45, 130, 70, true, true, {}}, rng, true);
        run_tmv({t, 2880, 2880, 200, true, false, {}}, rng, true);
    }
}

// Tokens of very different magnitudes (the per-block exponents): 1e-30 .. 1e30 and a zero row.
TEST(CudaMatmulTmm, ActivationScales) {
    REQUIRE_GPU();
    std::mt19937 rng(55);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        run_tmv({t, 32 * 9, 37, 6, true, false, {1e-30f, 1.0f, 3e4f, 1e30f, 0.0f, 1e-3f}}, rng, true);
    }
}

// 150 tokens (three token tiles) against each alone, reversed, and sub-batches across tile edges.
TEST(CudaMatmulTmm, BatchInvariantBitForBit) {
    REQUIRE_GPU();
    std::mt19937 rng(56);
    check_tmv_batch_invariance(matmul_tmm, 130, 150, {0, 60, 120}, rng);
}

// The q / k / v groups (matmul_tmv_group, matmul_tmm_group): three weights of 130, 45 and 45
// rows (tile edges) with biases in one launch give every output the bits of its weight alone,
// for decode-sized (1, 5, 17) and prompt-sized (1, 70, 130) token counts.
void check_group_equals_alone(GgmlType t, bool prompt, int64_t n, std::mt19937& rng) {
    SCOPED_TRACE(std::string(tname(t)) + (prompt ? " tmm" : " tmv") + " tokens " +
                 std::to_string(n));
    const int64_t n_in = 32 * 23, rows[3] = {130, 45, 45};
    auto x = random_floats(size_t(n_in * n), rng);
    DevBuf dx(x.size() * 4);
    dx.upload(x.data(), x.size() * 4);
    const Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n);
    const size_t sb = tmv_scratch(n, n_in, rows[0] + rows[1] + rows[2]);
    DevBuf scratch(sb);
    std::deque<DevBuf> dw, dp, db, dy, dy1;  // DevBuf does not move
    MatmulSet set;
    set.n = 3;
    for (int i = 0; i < 3; ++i) {
        auto w = random_weights(t, rows[i], n_in, rng, 0.5f);
        auto b = random_floats(size_t(rows[i]), rng);
        dw.emplace_back(w.size()), db.emplace_back(b.size() * 4);
        dw.back().upload(w.data(), w.size()), db.back().upload(b.data(), b.size() * 4);
        const Tensor gw = make_tensor(dw.back().get(), t, n_in, rows[i]);
        dp.emplace_back(repack_bytes(gw));
        set.w[i] = repack(gw, dp.back().get(), nullptr);
        set.bias[i] = static_cast<const float*>(db.back().get());
        dy.emplace_back(sizeof(float) * size_t(rows[i] * n)),
            dy1.emplace_back(sizeof(float) * size_t(rows[i] * n));
        dy.back().fill(0xFF), dy1.back().fill(0xFF);
        set.y[i] = make_tensor(dy.back().get(), GgmlType::F32, rows[i], n);
    }
    (prompt ? matmul_tmm_group : matmul_tmv_group)(set, tx, scratch.get(), sb, nullptr);
    for (int i = 0; i < 3; ++i)
        (prompt ? matmul_tmm : matmul_tmv)(
            make_tensor(dy1[size_t(i)].get(), GgmlType::F32, rows[i], n), tx, set.w[i],
            set.bias[i], false, scratch.get(), sb, nullptr);
    sync();
    for (int i = 0; i < 3; ++i) {
        auto y = download_vec<float>(dy[size_t(i)], size_t(rows[i] * n));
        auto y1 = download_vec<float>(dy1[size_t(i)], size_t(rows[i] * n));
        for (size_t e = 0; e < y.size(); ++e)
            ASSERT_TRUE(same_value(y[e], y1[e]) && !std::isnan(y[e]))
                << "weight " << i << " element " << e;
    }
}

TEST(CudaMatmulTmv, GroupEqualsEachWeightAlone) {
    REQUIRE_GPU();
    std::mt19937 rng(57);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4})
        for (bool prompt : {false, true})
            for (int64_t n : prompt ? std::vector<int64_t>{1, 70, 130} : std::vector<int64_t>{1, 5, 17, 70})
                check_group_equals_alone(t, prompt, n, rng);
}

// matmul_tmv's parts kernels (16-range weights: the wide tiles split along K, the ranges added by
// a second kernel) against its warps, bit for bit, with the kernels on from 2 tokens: 23 blocks =
// 11 ranges of 2, one of 1 and 4 empty (a CTA's whole group of ranges without blocks); 90 blocks
// = 15 ranges of 6 and an empty one; 37 and 70 tokens (a partial token tile); the q / k / v group
// against each weight alone; the reference, with extreme activations. The default 2 ranges per
// CTA (WO_CUDA_TMV_PARTS_RPC=1 or 4 runs it with 1 or 4).
TEST(CudaMatmulTmv, PartsKernelsGiveTheWarpsBits) {
    REQUIRE_GPU();
    std::mt19937 rng(59);
    const int64_t old = set_tmv_parts_min_tokens(2);
    check_tmv_batch_invariance(matmul_tmv, 130, 70, {0, 60}, rng, 32 * 23);
    check_tmv_batch_invariance(matmul_tmv, 45, 37, {20}, rng, 2880);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        run_tmv({t, 1024, 37, 6, true, true, {1e-30f, 1.0f, 3e4f, 1e30f, 0.0f, 1e-3f}}, rng);
        run_tmv({t, 32 * 23, 130, 70, true, false, {}}, rng);
        check_group_equals_alone(t, false, 70, rng);
    }
    set_tmv_parts_min_tokens(old);
}

// The 16-range products with two ranges per warp (8 warps per tile, each walking ranges 2w and
// 2w + 1 as one stream of chunks) give the 16 warps' bits: ranges of 6 blocks (2880) and of 3
// (a chunk of 2 then straddles two ranges), ranges of 2 and 1 block and empty ones (32 x 23: a
// warp with one block in its second range, warps with none), 1-13 tokens, Q8_0 and MXFP4; then
// against the reference, and a q / k / v group against each weight alone, with two per warp.
TEST(CudaMatmulTmv, TwoRangesPerWarpGiveTheWarpsBits) {
    REQUIRE_GPU();
    std::mt19937 rng(67);
    ASSERT_EQ(matmul_tmv_ranges(1030), 16);
    const int old = set_tmv_rpw(1);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4})
        for (const int64_t n_in : {int64_t(2880), int64_t(32 * 45), int64_t(32 * 23)}) {
            SCOPED_TRACE(std::string(tname(t)) + " n_in " + std::to_string(n_in));
            const int64_t n_out = 1030, n = 13;
            auto w = random_weights(t, n_out, n_in, rng, 0.5f);
            auto x = random_floats(size_t(n_in * n), rng);
            DevBuf dw(w.size()), dx(x.size() * 4), d1(size_t(n_out * n) * 4), d2(size_t(n_out * n) * 4);
            dw.upload(w.data(), w.size());
            dx.upload(x.data(), x.size() * 4);
            const Tensor gw = make_tensor(dw.get(), t, n_in, n_out);
            DevBuf dp(repack_bytes(gw));
            const Tensor pw = repack(gw, dp.get(), nullptr);
            const size_t sb = tmv_scratch(n, n_in, n_out);
            DevBuf scratch(sb);
            const Tensor tx = make_tensor(dx.get(), GgmlType::F32, n_in, n);
            for (const int64_t k : {int64_t(1), int64_t(3), int64_t(8), int64_t(13)}) {
                d1.fill(0xFF), d2.fill(0xFF);
                const Tensor y1 = make_tensor(d1.get(), GgmlType::F32, n_out, k),
                             y2 = make_tensor(d2.get(), GgmlType::F32, n_out, k);
                set_tmv_rpw(1);
                matmul_tmv(y1, tx.row_range(0, k), pw, nullptr, false, scratch.get(), sb, nullptr);
                set_tmv_rpw(2);
                matmul_tmv(y2, tx.row_range(0, k), pw, nullptr, false, scratch.get(), sb, nullptr);
                sync();
                const auto a = download_vec<uint32_t>(d1, size_t(n_out * k));
                const auto b = download_vec<uint32_t>(d2, size_t(n_out * k));
                ASSERT_EQ(a, b) << k << " tokens";
                size_t nan = 0;
                for (uint32_t v : a) nan += std::isnan(std::bit_cast<float>(v)) ? 1 : 0;
                ASSERT_EQ(nan, 0u) << k << " tokens";
            }
        }
    set_tmv_rpw(2);
    for (GgmlType t : {GgmlType::Q8_0, GgmlType::MXFP4}) {
        SCOPED_TRACE(tname(t));
        run_tmv({t, 32 * 45, 1030, 5, true, true, {1e-30f, 1.0f, 3e4f, 1e30f, 0.0f}}, rng);
        check_group_equals_alone(t, false, 9, rng);
    }
    set_tmv_rpw(old);
}

// rms_norm_split: the norm's output bit for bit, and its first rows' split byte for byte the one
// matmul_tmv makes of that output in its scratch, so a product reading it (matmul_tmv_presplit)
// has the bits of one that splits, and splits nothing itself (its scratch stays untouched). Rows
// of 1e-30 and 1e20, a block the norm's weight zeroes; 2880 (gpt-oss) and 64 wide.
TEST(CudaMatmulTmv, NormSplitIsTheProductsSplit) {
    REQUIRE_GPU();
    std::mt19937 rng(61);
    for (const int64_t d : {int64_t(2880), int64_t(64)}) {
        SCOPED_TRACE(d);
        ASSERT_TRUE(rms_norm_splits(d));
        const int64_t n = 5, rows = 3, n_out = 1030;
        auto x = random_floats(size_t(d * n), rng);
        for (int64_t i = 0; i < d; ++i) x[size_t(d + i)] *= 1e-30f, x[size_t(2 * d + i)] *= 1e20f;
        auto g = random_floats(size_t(d), rng);
        for (int i = 32; i < 64; ++i) g[size_t(i)] = 0.0f;
        DevBuf dx(x.size() * 4), dg(g.size() * 4), y1(x.size() * 4), y2(x.size() * 4);
        dx.upload(x.data(), x.size() * 4);
        dg.upload(g.data(), g.size() * 4);
        y1.fill(0xFF), y2.fill(0xFF);
        const size_t split = size_t(rows * d) * 4, at_m = (split + 255) / 256 * 256, mult = size_t(rows * d / 32) * 4;
        ASSERT_EQ(at_m + mult, matmul_tmv_scratch_bytes(rows, d));
        DevBuf pre(at_m + mult);
        pre.fill(0xFF);
        auto T = [&](const DevBuf& b, int64_t ne0, int64_t ne1) { return make_tensor(b.get(), GgmlType::F32, ne0, ne1); };
        rms_norm_split(T(y1, d, n), T(dx, d, n), T(dg, d, 1), 1e-5f, static_cast<uint4*>(pre.get()),
                       reinterpret_cast<float*>(pre.bytes() + at_m), rows, nullptr);
        rms_norm(T(y2, d, n), T(dx, d, n), T(dg, d, 1), 1e-5f, nullptr);
        sync();
        EXPECT_EQ(download_vec<uint32_t>(y1, x.size()), download_vec<uint32_t>(y2, x.size()));

        auto w = random_weights(GgmlType::Q8_0, n_out, d, rng, 0.5f);
        DevBuf dw(w.size());
        dw.upload(w.data(), w.size());
        const Tensor gw = make_tensor(dw.get(), GgmlType::Q8_0, d, n_out);
        DevBuf dp(repack_bytes(gw));
        const Tensor pw = repack(gw, dp.get(), nullptr);
        const size_t sb = tmv_scratch(rows, d, n_out);
        DevBuf s1(sb), s2(sb), o1(size_t(n_out * rows) * 4), o2(size_t(n_out * rows) * 4);
        s1.fill(0xFF), s2.fill(0xFF);
        matmul_tmv(T(o1, n_out, rows), T(y2, d, rows), pw, nullptr, false, s1.get(), sb, nullptr);
        matmul_tmv_presplit(T(o2, n_out, rows), T(y1, d, rows), pw, nullptr, false, s2.get(), sb, nullptr,
                            PreSplit{static_cast<const uint4*>(pre.get()),
                                     reinterpret_cast<const float*>(pre.bytes() + at_m)});
        sync();
        EXPECT_EQ(download_vec<uint8_t>(s1, split), download_vec<uint8_t>(pre, split)) << "the split";
        EXPECT_EQ(download_vec<uint8_t>(s1, mult, at_m), download_vec<uint8_t>(pre, mult, at_m)) << "multipliers";
        EXPECT_EQ(download_vec<uint32_t>(o1, size_t(n_out * rows)), download_vec<uint32_t>(o2, size_t(n_out * rows)));
        const auto untouched = download_vec<uint8_t>(s2, split);
        EXPECT_TRUE(std::all_of(untouched.begin(), untouched.end(), [](uint8_t b) { return b == 0xFF; }));
    }
}

TEST(CudaMatmul, UnsupportedTypeIsDtypeError) {
    REQUIRE_GPU();
    DevBuf d(1024);
    Tensor w = make_tensor(d.get(), GgmlType::Q4_1, 32, 2);
    Tensor x = make_tensor(d.get(), GgmlType::F32, 32, 1);
    Tensor y = make_tensor(d.get(), GgmlType::F32, 2, 1);
    try {
        matmul(y, x, w, nullptr, false, nullptr);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_EQ(e.code(), Code::DTYPE_UNSUPPORTED);
    }
}

TEST(CudaMatmul, RepackLeavesOtherTypesAndShapesAlone) {
    // Only Q8_0 and MXFP4 rows of whole blocks have a DEVICE layout; the rest stay as they are.
    int dummy = 0;  // never dereferenced: no device needed
    for (const Tensor& w :
         {make_tensor(&dummy, GgmlType::Q4_K, 256, 1), make_tensor(&dummy, GgmlType::F16, 32, 1)}) {
        EXPECT_EQ(repack_bytes(w), 0u);
        Tensor r = repack(w, nullptr, nullptr);
        EXPECT_EQ(r.data, w.data);
        EXPECT_EQ(r.layout, WeightLayout::GGUF);
    }
    EXPECT_EQ(repack_bytes(make_tensor(&dummy, GgmlType::Q8_0, 32, 3)),
              3 * packed_row_bytes(GgmlType::Q8_0, 32));
}

}  // namespace
}  // namespace wo::cuda::test
