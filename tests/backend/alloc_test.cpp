// No backend allocation inside a step: a real (tiny) model on every backend, reserved once, then
// steps of mixed prefill and decode through Model::submit/wait; Backend::alloc_count() must not
// move after the first step.
#include "backend/harness.h"
#include "model/decoder.h"
#include "model/tiny_models.h"

#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace wo::test {
namespace {

class AllocCount : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

INSTANTIATE_TEST_SUITE_P(, AllocCount,
                         ::testing::Combine(::testing::ValuesIn(backends_present()),
                                            ::testing::Values("gpt-oss", "llama", "gpt2")),
                         [](const auto& i) {
                             std::string arch = std::get<1>(i.param);
                             for (char& c : arch)
                                 if (c == '-') c = '_';
                             return std::get<0>(i.param) + "_" + arch;
                         });

std::vector<BatchToken> prefill(int slot, int first, int count, int32_t seed) {
    std::vector<BatchToken> b;
    for (int i = 0; i < count; ++i)
        b.push_back({(seed * 7 + i * 13) % 64, first + i, slot, i == count - 1});
    return b;
}

TEST_P(AllocCount, NoBackendAllocationAfterTheFirstStep) {
    const auto& [backend, arch] = GetParam();
    TinyModel t;
    t.bytes = tiny_gguf({.arch = arch});
    t.file = std::make_shared<const gguf::File>(gguf::File::parse(t.bytes.data(), t.bytes.size()));
    LoadOptions lo;
    lo.backend = backend;
    lo.n_threads = 2;
    t.model = load_model(t.file, lo);
    auto* dm = dynamic_cast<DecoderModel*>(t.model.get());
    ASSERT_NE(dm, nullptr);
    Model& m = *t.model;
    m.reserve(ReserveOptions{3, 32, 16, 0});
    m.set_sampling(1, {.temperature = 0.8f, .top_k = 20, .top_p = 0.9f, .repetition_penalty = 1.2f, .seed = 5});

    int len[3] = {0, 0, 0};
    auto run = [&](std::vector<BatchToken> b, bool logits) {
        for (const BatchToken& x : b) len[x.slot] = std::max(len[x.slot], x.pos + 1);
        m.submit(b, logits);
        const StepResult r = m.wait();
        EXPECT_FALSE(r.ids.empty());
    };
    auto decode = [&](std::initializer_list<int> slots) {
        std::vector<BatchToken> b;
        for (int s : slots) b.push_back({kLastSampled, len[s], s, true});
        return b;
    };

    run(prefill(0, 0, 5, 1), false);
    const uint64_t after_first = dm->backend().alloc_count();
    std::vector<BatchToken> b = decode({0});
    for (const BatchToken& x : prefill(1, 0, 9, 2)) b.push_back(x);
    run(b, true);  // decode + prefill chunk, logits downloaded
    b = decode({0, 1});
    for (const BatchToken& x : prefill(2, 0, 14, 3)) b.push_back(x);
    run(b, false);  // a full 16-token step
    for (int i = 0; i < 12; ++i) {  // past gpt-oss's window of 4 (the ring wraps)
        run(decode({0, 1, 2}), i % 3 == 0);
        EXPECT_EQ(dm->backend().alloc_count(), after_first) << "decode step " << i;
    }
    m.clear_slot(1);  // a new request in a reused slot
    len[1] = 0;
    b = prefill(1, 0, 6, 4);
    for (const BatchToken& x : decode({0})) b.push_back(x);
    run(b, true);
    run(decode({0, 1, 2}), false);
    EXPECT_EQ(dm->backend().alloc_count(), after_first) << "after reusing a slot";
    EXPECT_GE(len[0], 18);
}

}  // namespace
}  // namespace wo::test
