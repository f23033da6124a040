// A real-shape model on another backend against the CPU, token by token (scripts/gpu-check runs
// it with WO_TEST_BACKEND=cuda and WO_TEST_MODEL=<synth --preset 20b file>; skipped otherwise).
// Both backends are fed the CPU's greedy tokens (teacher forcing), so one near-tie cannot make
// every later step incomparable: every step's logits must agree within the bound, and the greedy
// choice must agree wherever the CPU's top-2 margin exceeds twice the largest logit difference.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "gguf/gguf.h"
#include "model/model.h"

namespace wo {
namespace {

TEST(BackendAgreement, GreedyStepsOfARealShapeModelMatchTheCpu) {
    const char* path = std::getenv("WO_TEST_MODEL");
    const char* be = std::getenv("WO_TEST_BACKEND");
    if (!path || !be || std::string(be) == "cpu") GTEST_SKIP() << "needs WO_TEST_MODEL and WO_TEST_BACKEND";
    auto file = std::make_shared<const gguf::File>(gguf::File::open(path));
    LoadOptions lc, lg;
    lc.n_threads = 0;
    lg.backend = be;
    lg.kv_type = "f32";  // only summation order differs from the CPU then
    if (const char* dir = std::getenv("WO_TAP_DIR")) {  // tools/compare_taps.py reads these
        lc.tap_dir = std::string(dir) + "/cpu";
        lg.tap_dir = std::string(dir) + "/" + be;
    }
    auto cpu = load_model(file, lc), gpu = load_model(file, lg);
    cpu->reserve(1, 64);
    gpu->reserve(1, 64);
    const int V = cpu->hparams().n_vocab;
    std::vector<BatchToken> batch;
    const std::vector<int32_t> prompt = {200006, 17360, 200008, 1844, 382, 261, 1746, 13};
    for (size_t i = 0; i < prompt.size(); ++i)
        batch.push_back({prompt[i], int32_t(i), 0, i + 1 == prompt.size()});
    int same = 0, decisive = 0;
    double worst = 0;
    for (int step = 0; step < 32; ++step) {
        std::vector<float> a, b;
        cpu->forward(batch, a);
        gpu->forward(batch, b);
        ASSERT_EQ(a.size(), size_t(V));
        ASSERT_EQ(b.size(), size_t(V));
        double num = 0, den = 0, maxdiff = 0;
        for (int i = 0; i < V; ++i) {
            const double d = double(a[i]) - b[i];
            num += d * d, den += double(a[i]) * a[i];
            maxdiff = std::max(maxdiff, std::fabs(d));
        }
        const double rel = std::sqrt(num / den);
        worst = std::max(worst, rel);
        // fp32 sums of up to 2880 products in another order, through 24 layers: ~1e-6 observed
        // on the tiny fixtures; a wrong kernel gives O(1).
        EXPECT_LE(rel, 1e-4) << "step " << step;
        std::vector<int> order(V);
        for (int i = 0; i < V; ++i) order[i] = i;
        std::partial_sort(order.begin(), order.begin() + 2, order.end(),
                          [&](int x, int y) { return a[x] > a[y] || (a[x] == a[y] && x < y); });
        const int ca = order[0];
        const int cb = int(std::max_element(b.begin(), b.end()) - b.begin());
        const double margin = double(a[order[0]]) - a[order[1]];
        same += ca == cb;
        if (margin > 2 * maxdiff) {
            ++decisive;
            EXPECT_EQ(cb, ca) << "step " << step << " margin " << margin << " max diff " << maxdiff;
        }
        batch = {{ca, int32_t(prompt.size()) + step, 0, true}};
    }
    std::printf("[ agree    ] %s vs cpu: 32 greedy steps, %d equal, %d decisive (margin > 2 x max diff), worst rel L2 %.3g\n",
                be, same, decisive, worst);
}

}  // namespace
}  // namespace wo
