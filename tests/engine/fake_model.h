// Test doubles for the scheduler tests: a Model whose logits are a fixed function of (token,
// position), so any batching gives the same per-sequence logits, and which records every step
// and enforces the KV bookkeeping a real model does; and a 64-token Tokenizer whose ids 60-62
// are the three bytes of U+4E2D and 63 is end-of-generation.
#pragma once
#include <atomic>
#include <chrono>
#include <cmath>
#include <deque>
#include <mutex>
#include <thread>

#include "backend/cpu/sample.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace wo::test {

class FakeModel : public Model {
public:
    static constexpr int V = 64;
    // greedy: the next token after t is t+1 (mod V); otherwise logits are pseudo-random.
    explicit FakeModel(bool chain = true) : chain_(chain) {
        hp_.arch = "fake";
        hp_.n_vocab = V;
        hp_.n_ctx_train = 1 << 16;
    }
    const Hparams& hparams() const override { return hp_; }
    void reserve(const ReserveOptions& r) override {
        n_ctx_ = r.n_ctx;
        len_.assign(static_cast<size_t>(r.n_slots), 0);
        history_.assign(static_cast<size_t>(r.n_slots), {});
        last_.assign(static_cast<size_t>(r.n_slots), -1);
        params_.assign(static_cast<size_t>(r.n_slots), SamplingParams{});
    }
    void clear_slot(int slot) override {
        len_.at(static_cast<size_t>(slot)) = 0;
        history_.at(static_cast<size_t>(slot)).clear();
    }
    void set_sampling(int slot, const SamplingParams& p) override { params_.at(static_cast<size_t>(slot)) = p; }
    // Runs at once (a synchronous backend); steps() records the batches with kLastSampled
    // resolved to the id the slot's previous step drew.
    void submit(const std::vector<BatchToken>& in, bool want_logits) override {
        if (step_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(step_ms.load()));
        std::vector<BatchToken> batch = in;
        for (BatchToken& t : batch)
            if (t.token == kLastSampled) {
                WO_CHECK(last_.at(static_cast<size_t>(t.slot)) >= 0, "fake: no sampled token to feed");
                t.token = last_[static_cast<size_t>(t.slot)];
            }
        {
            std::lock_guard lock(mu_);
            steps_.push_back(batch);
            if (fail_at_ >= 0 && static_cast<int>(steps_.size()) == fail_at_ + 1) throw Error(fail_code_, "fake device fault");
        }
        StepResult r;
        for (const BatchToken& t : batch) {
            auto& len = len_.at(static_cast<size_t>(t.slot));
            if (t.pos >= n_ctx_) throw Error(Code::CONTEXT_OVERFLOW, "fake: position past the context");
            WO_CHECK(t.pos == len, "fake: positions must follow the slot's cache");
            len++;
            auto& hist = history_[static_cast<size_t>(t.slot)];
            hist.resize(static_cast<size_t>(t.pos));
            hist.push_back(t.token);
            if (!t.logits) continue;
            std::vector<float> lg(V);
            for (int v = 0; v < V; ++v) {
                if (chain_) {
                    lg[v] = v == (t.token + 1) % V ? 10.0f : 0.0f;
                } else {
                    const uint32_t h = static_cast<uint32_t>(t.token * 7919 + t.pos * 104729 + v * 15485863) * 2654435761u;
                    lg[v] = static_cast<float>(h % 1000) / 250.0f;
                }
            }
            const int32_t id = cpu::sample_row(lg, hist, params_[static_cast<size_t>(t.slot)],
                                               static_cast<uint32_t>(t.pos) + 1);
            last_[static_cast<size_t>(t.slot)] = id;
            r.ids.push_back(id);
            if (want_logits) r.logits.insert(r.logits.end(), lg.begin(), lg.end());
        }
        done_.push_back(std::move(r));
    }
    StepResult wait() override {
        WO_CHECK(!done_.empty(), "fake: wait without submit");
        StepResult r = std::move(done_.front());
        done_.pop_front();
        return r;
    }
    std::string backend_name() const override { return "fake"; }
    uint64_t weight_bytes() const override { return 1000; }
    uint64_t kv_bytes() const override { return 24; }
    std::string quant_kind() const override { return "F32"; }

    std::atomic<int> step_ms{0};  // a slower device, so jobs overlap
    std::atomic<bool> device_ok{true};  // false: a device that hit an unrecoverable error
    bool healthy() const override { return device_ok; }

    std::vector<std::vector<BatchToken>> steps() {
        std::lock_guard lock(mu_);
        return steps_;
    }
    void fail_at(int step, Code c) {
        std::lock_guard lock(mu_);
        fail_at_ = step;
        fail_code_ = c;
    }

private:
    bool chain_;
    Hparams hp_;
    int n_ctx_ = 0;
    std::vector<int> len_;
    std::vector<std::vector<int32_t>> history_;
    std::vector<int32_t> last_;
    std::vector<SamplingParams> params_;
    std::deque<StepResult> done_;
    std::mutex mu_;
    std::vector<std::vector<BatchToken>> steps_;
    int fail_at_ = -1;
    Code fail_code_ = Code::INTERNAL;
};

class FakeTokenizer : public Tokenizer {
public:
    FakeTokenizer() { eog_ids = {63}; }
    std::vector<int32_t> encode(std::string_view text, bool, bool) const override {
        std::vector<int32_t> ids;
        // ids 0..25 for any byte (+260 keeps bytes below '!' non-negative; others map as before)
        for (unsigned char c : text) ids.push_back((c - 'a' + 64 + 260) % 26);
        return ids;
    }
    std::string token_bytes(int32_t id) const override {
        if (id == 60) return "\xe4";
        if (id == 61) return "\xb8";
        if (id == 62) return "\xad";
        if (id == 63) return "<eog>";
        return std::string(1, static_cast<char>('a' + id % 26));
    }
    int32_t vocab_size() const override { return 64; }
    std::optional<int32_t> find_token(std::string_view) const override { return std::nullopt; }
    std::string_view kind() const override { return "fake"; }
};

}  // namespace wo::test
