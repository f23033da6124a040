// CPU matmul (any stored weight type), router top-k and the MoE expert FFN.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/row.h"
#include "util/error.h"

namespace wo::cpu {

float dot(const float* a, const float* b, int64_t n) {
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; ++j) acc[j] += a[i + j] * b[i + j];
    float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

void CpuBackend::matmul_rows(Tensor y, const int32_t* y_rows, Tensor x, const int32_t* x_rows, int64_t n,
                             Tensor w, const float* bias, bool accumulate) {
    const int64_t n_in = w.cols(), n_out = w.rows();
    WO_CHECK(x.cols() == n_in && y.cols() >= n_out && x.type == GgmlType::F32 && y.type == GgmlType::F32,
             "matmul shapes");
    if (n == 0) return;
    // Weight rows go in groups of R: a group is dequantized once into this thread's buffer and
    // then used for every token of the call, so each activation row is read once per group.
    constexpr int64_t R = 8;
    const int64_t n_groups = (n_out + R - 1) / R;
    pool_.parallel_for(n_groups, 1, [&](int64_t gb, int64_t ge, int t) {
        float* buf = scratch(t, static_cast<size_t>(R * n_in));
        const float* rows[R];
        for (int64_t g = gb; g < ge; ++g) {
            const int64_t r0 = g * R, nr = std::min(R, n_out - r0);
            for (int64_t k = 0; k < nr; ++k) rows[k] = row_f32(w, r0 + k, 0, buf + k * n_in);
            for (int64_t i = 0; i < n; ++i) {
                const float* xr = x.f32(x_rows ? x_rows[i] : i);
                float* yr = y.f32(y_rows ? y_rows[i] : i);
                for (int64_t k = 0; k < nr; ++k) {
                    const float s = dot(rows[k], xr, n_in) + (bias ? bias[r0 + k] : 0.0f);
                    yr[r0 + k] = accumulate ? yr[r0 + k] + s : s;
                }
            }
        }
    });
}

void CpuBackend::matmul(Tensor y, Tensor x, Tensor w, const Tensor* bias) {
    WO_CHECK(w.mats() == 1 && y.rows() == x.rows() && y.cols() == w.rows(), "matmul shapes");
    WO_CHECK(!bias || (bias->type == GgmlType::F32 && bias->cols() == w.rows()), "matmul bias");
    matmul_rows(y, nullptr, x, nullptr, x.rows(), w, bias ? bias->f32(0) : nullptr, false);
}

void CpuBackend::matmul_add(Tensor y, Tensor x, Tensor w, const Tensor* bias) {
    WO_CHECK(w.mats() == 1 && y.rows() == x.rows() && y.cols() == w.rows(), "matmul_add shapes");
    WO_CHECK(!bias || (bias->type == GgmlType::F32 && bias->cols() == w.rows()), "matmul_add bias");
    matmul_rows(y, nullptr, x, nullptr, x.rows(), w, bias ? bias->f32(0) : nullptr, true);
}

void CpuBackend::topk_softmax(Tensor ids, Tensor weights, Tensor logits, int k) {
    const int64_t n_exp = logits.cols();
    WO_CHECK(k >= 1 && k <= n_exp && ids.cols() == k && weights.cols() == k, "topk_softmax shapes");
    std::vector<int32_t> order(static_cast<size_t>(n_exp));
    for (int64_t i = 0; i < logits.rows(); ++i) {
        const float* l = logits.f32(i);
        std::iota(order.begin(), order.end(), 0);
        // NaN ranks last so the comparison stays a strict weak order (a broken model must not
        // make the sort undefined behaviour).
        auto key = [&](int32_t e) { return std::isnan(l[e]) ? -INFINITY : l[e]; };
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int32_t a, int32_t b) { return key(a) > key(b) || (key(a) == key(b) && a < b); });
        const float m = l[order[0]];
        float sum = 0;
        for (int j = 0; j < k; ++j) sum += std::exp(l[order[static_cast<size_t>(j)]] - m);
        for (int j = 0; j < k; ++j) {
            ids.i32(i)[j] = order[static_cast<size_t>(j)];
            weights.f32(i)[j] = std::exp(l[order[static_cast<size_t>(j)]] - m) / sum;
        }
    }
}

void CpuBackend::moe_ffn(Tensor y, Tensor x, Tensor ids, Tensor weights, const MoeFfn& w) {
    const int64_t n = x.rows(), d = x.cols(), k = ids.cols();
    const int64_t n_ff = w.gate.rows(), n_exp = w.gate.mats();
    WO_CHECK(w.gate.cols() == d && w.up.cols() == d && w.up.rows() == n_ff && w.down.cols() == n_ff &&
                 w.down.rows() == d && w.up.mats() == n_exp && w.down.mats() == n_exp && y.cols() == d,
             "moe_ffn shapes");
    const int64_t n_pairs = n * k;  // (token, choice) pairs; pair p = i*k + j
    moe_gate_.resize(static_cast<size_t>(n_pairs * n_ff));
    moe_up_.resize(static_cast<size_t>(n_pairs * n_ff));
    moe_out_.resize(static_cast<size_t>(n_pairs * d));
    Tensor G = make_tensor(moe_gate_.data(), GgmlType::F32, n_ff, n_pairs);
    Tensor U = make_tensor(moe_up_.data(), GgmlType::F32, n_ff, n_pairs);
    Tensor O = make_tensor(moe_out_.data(), GgmlType::F32, d, n_pairs);

    // Group pairs by expert so each expert's rows are dequantized once per step.
    std::vector<std::vector<int32_t>> pairs(static_cast<size_t>(n_exp)), toks(static_cast<size_t>(n_exp));
    for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < k; ++j) {
            const int32_t e = ids.i32(i)[j];
            WO_CHECK(e >= 0 && e < n_exp, "moe expert id out of range");
            pairs[static_cast<size_t>(e)].push_back(static_cast<int32_t>(i * k + j));
            toks[static_cast<size_t>(e)].push_back(static_cast<int32_t>(i));
        }
    auto bias_of = [](const Tensor* b, int64_t e) { return b ? b->f32(e) : nullptr; };
    for (int64_t e = 0; e < n_exp; ++e) {
        const auto& pe = pairs[static_cast<size_t>(e)];
        if (pe.empty()) continue;
        const auto& te = toks[static_cast<size_t>(e)];
        const int64_t c = static_cast<int64_t>(pe.size());
        matmul_rows(G, pe.data(), x, te.data(), c, w.gate.mat(e), bias_of(w.gate_b, e), false);
        matmul_rows(U, pe.data(), x, te.data(), c, w.up.mat(e), bias_of(w.up_b, e), false);
    }
    pool_.parallel_for(n_pairs, 4, [&](int64_t b, int64_t e, int) {
        for (int64_t p = b; p < e; ++p) {
            float* g = G.f32(p);
            const float* u = U.f32(p);
            for (int64_t j = 0; j < n_ff; ++j)
                g[j] = w.act == MoeAct::SWIGLU_OAI ? swiglu_oai_1(g[j], u[j], w.alpha, w.limit)
                                                   : g[j] / (1.0f + std::exp(-g[j])) * u[j];
        }
    });
    for (int64_t e = 0; e < n_exp; ++e) {
        const auto& pe = pairs[static_cast<size_t>(e)];
        if (pe.empty()) continue;
        matmul_rows(O, pe.data(), G, pe.data(), static_cast<int64_t>(pe.size()), w.down.mat(e),
                    bias_of(w.down_b, e), false);
    }
    for (int64_t i = 0; i < n; ++i) {
        float* yr = y.f32(i);
        for (int64_t j = 0; j < k; ++j) {
            const float wt = weights.f32(i)[j];
            const float* o = O.f32(i * k + j);
            for (int64_t c = 0; c < d; ++c) yr[c] += wt * o[c];
        }
    }
}

}  // namespace wo::cpu
