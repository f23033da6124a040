// Shared model plumbing (see decoder.h).
#include "model/decoder.h"

#include <algorithm>

#include "util/error.h"
#include "util/log.h"

namespace wo {

DecoderModel::DecoderModel(std::shared_ptr<const gguf::File> file, std::unique_ptr<Backend> be)
    : file_(std::move(file)), be_(std::move(be)) {}

void DecoderModel::reserve(int n_slots, int n_ctx) {
    if (n_slots < 1 || n_ctx < 1)
        throw Error(Code::INVALID_ARGUMENT, "reserve: n_slots and n_ctx must be >= 1 (got " +
                                                std::to_string(n_slots) + ", " + std::to_string(n_ctx) + ")");
    if (n_ctx > max_positions()) {
        log::warn("model.ctx_limited", {{"arch", hp_.arch}, {"asked", n_ctx}, {"max", max_positions()}});
        n_ctx = max_positions();
    }
    const int64_t kv_dim = static_cast<int64_t>(hp_.n_head_kv) * hp_.head_dim;
    kv_.clear();
    kv_mem_.clear();
    kv_bytes_ = 0;
    const GgmlType kt = be_->kv_type();
    const size_t bytes = tensor_bytes(kt, kv_dim, n_ctx, n_slots);
    for (int il = 0; il < hp_.n_layer; ++il) {
        Buffer k = be_->alloc(bytes, "kv cache");
        Buffer v = be_->alloc(bytes, "kv cache");
        kv_.push_back({k.view(kt, kv_dim, n_ctx, n_slots), v.view(kt, kv_dim, n_ctx, n_slots)});
        kv_mem_.push_back(std::move(k));
        kv_mem_.push_back(std::move(v));
        kv_bytes_ += 2 * bytes;
    }
    n_ctx_ = n_ctx;
    slot_len_.assign(static_cast<size_t>(n_slots), 0);
}

void DecoderModel::clear_slot(int slot) {
    if (slot < 0 || slot >= static_cast<int>(slot_len_.size()))
        throw Error(Code::INVALID_ARGUMENT, "clear_slot: slot " + std::to_string(slot) + " out of range");
    slot_len_[static_cast<size_t>(slot)] = 0;  // stale rows are overwritten before they are read
}

Tensor DecoderModel::act(const std::string& name, int64_t width, int64_t n) {
    const size_t need = tensor_bytes(GgmlType::F32, width, n);
    Buffer& b = scratch_[name];
    if (b.bytes < need) b = be_->alloc(need, name.c_str());
    return b.view(GgmlType::F32, width, n);
}

void DecoderModel::project(const Step& s, Tensor h, Tensor output, Tensor logits) {
    if (s.n_out == 0) return;
    Tensor rows = act("out_rows_h", h.cols(), s.n_out);
    be_->get_rows(rows, h, s.out_rows);
    be_->matmul(logits, rows, output, nullptr);
}

void DecoderModel::forward(const std::vector<BatchToken>& batch, std::vector<float>& logits) {
    if (kv_.empty()) throw Error(Code::INVALID_ARGUMENT, "forward: reserve() was not called");
    if (batch.empty()) return;
    // Validate everything before touching state, so a bad request leaves the slots intact.
    std::vector<int32_t> len = slot_len_;
    std::vector<int32_t> step_last(len.size(), -1);  // last position of each slot in this step
    const int n = static_cast<int>(batch.size());
    std::vector<int32_t> tokens(n), pos(n), slot(n), out_rows;
    for (int i = 0; i < n; ++i) {
        const BatchToken& t = batch[static_cast<size_t>(i)];
        const std::string where = "batch token " + std::to_string(i) + ": ";
        if (t.slot < 0 || t.slot >= static_cast<int>(len.size()))
            throw Error(Code::INVALID_REQUEST, where + "slot " + std::to_string(t.slot) + " out of range");
        if (t.token < 0 || t.token >= hp_.n_vocab)
            throw Error(Code::INVALID_REQUEST, where + "token id " + std::to_string(t.token) +
                                                   " outside the vocabulary of " +
                                                   std::to_string(hp_.n_vocab));
        if (t.pos >= n_ctx_)
            throw Error(Code::CONTEXT_OVERFLOW, where + "position " + std::to_string(t.pos) + " >= context " +
                                                    std::to_string(n_ctx_));
        int32_t& l = len[static_cast<size_t>(t.slot)];
        if (t.pos < 0 || t.pos > l)
            throw Error(Code::INVALID_REQUEST, where + "position " + std::to_string(t.pos) +
                                                   " leaves a gap (slot " + std::to_string(t.slot) + " has " +
                                                   std::to_string(l) + " cached)");
        int32_t& last = step_last[static_cast<size_t>(t.slot)];
        if (last >= 0 && t.pos != last + 1)
            throw Error(Code::INVALID_REQUEST, where + "position " + std::to_string(t.pos) +
                                                   " does not follow position " + std::to_string(last) +
                                                   " of slot " + std::to_string(t.slot) +
                                                   " in the same step");
        last = t.pos;
        l = t.pos + 1;
        tokens[i] = t.token, pos[i] = t.pos, slot[i] = t.slot;
        if (t.logits) out_rows.push_back(i);
    }
    Step s;
    s.n = n;
    s.n_out = static_cast<int64_t>(out_rows.size());
    auto upload_i32 = [&](const char* name, const std::vector<int32_t>& v) {
        Buffer& b = scratch_[name];
        const size_t need = std::max<size_t>(v.size(), 1) * sizeof(int32_t);
        if (b.bytes < need) b = be_->alloc(need, name);
        Tensor t = b.view(GgmlType::I32, static_cast<int64_t>(v.size()));
        if (!v.empty()) be_->upload(t, v.data(), v.size() * sizeof(int32_t));
        return t;
    };
    s.tokens = upload_i32("tokens", tokens);
    s.pos = upload_i32("pos", pos);
    s.slot = upload_i32("slot", slot);
    s.out_rows = upload_i32("out_rows", out_rows);
    Tensor lg = act("logits", hp_.n_vocab, std::max<int64_t>(s.n_out, 1));
    be_->begin_step();
    run(s, lg.row_range(0, s.n_out));
    be_->sync();
    slot_len_ = std::move(len);
    if (s.n_out == 0) return;
    const size_t old = logits.size();
    logits.resize(old + static_cast<size_t>(s.n_out * hp_.n_vocab));
    be_->download(logits.data() + old, lg.row_range(0, s.n_out),
                  static_cast<size_t>(s.n_out * hp_.n_vocab) * sizeof(float));
}

}  // namespace wo
