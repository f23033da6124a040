// Shared model plumbing (see decoder.h).
#include "model/decoder.h"

#include <algorithm>
#include <cstring>

#include "util/error.h"
#include "util/log.h"

namespace wo {

DecoderModel::DecoderModel(std::shared_ptr<const gguf::File> file, std::unique_ptr<Backend> be)
    : file_(std::move(file)), be_(std::move(be)) {}

void DecoderModel::upload_rope(RopeParams& p) {
    const std::vector<float> inv = rope_inv_freq(p);
    Buffer b = be_->alloc(inv.size() * sizeof(float), "rope frequencies");
    p.inv_freq = b.view(GgmlType::F32, static_cast<int64_t>(inv.size()));
    be_->upload(p.inv_freq, inv.data(), inv.size() * sizeof(float));
    mem_.push_back(std::move(b));
}

void DecoderModel::reserve(const ReserveOptions& ro) {
    ReserveOptions r = ro;
    if (r.n_slots < 1 || r.n_ctx < 1)
        throw Error(Code::INVALID_ARGUMENT, "reserve: n_slots and n_ctx must be >= 1 (got " +
                                                std::to_string(r.n_slots) + ", " + std::to_string(r.n_ctx) + ")");
    WO_CHECK(kv_.empty(), "reserve called twice");
    if (r.n_ctx > max_positions()) {
        log::warn("model.ctx_limited", {{"arch", hp_.arch}, {"asked", r.n_ctx}, {"max", max_positions()}});
        r.n_ctx = max_positions();
    }
    if (r.max_step_tokens <= 0) r.max_step_tokens = std::min(r.n_ctx, 512);
    if (r.max_out_rows <= 0) r.max_out_rows = r.max_step_tokens;
    r.max_out_rows = std::min(r.max_out_rows, r.max_step_tokens);
    res_ = r;
    const int64_t M = r.max_step_tokens, O = r.max_out_rows;

    StepLimits lim;
    lim.max_tokens = M;
    lim.max_out_rows = O;
    lim.n_vocab = hp_.n_vocab;
    lim.n_embd = hp_.n_embd;
    lim.n_expert = hp_.n_expert;
    lim.n_expert_used = hp_.n_expert_used;
    lim.n_ff = hp_.n_ff;
    for (const auto& [name, width] : activations()) lim.max_width = std::max(lim.max_width, width);
    KvCacheDesc d;
    d.n_slots = r.n_slots;
    d.n_ctx = r.n_ctx;
    d.max_step_tokens = r.max_step_tokens;
    for (int il = 0; il < hp_.n_layer; ++il) {
        d.kv_dim.push_back(hp_.n_head_kv * hp_.head_dim);
        d.window.push_back(layer_window(il));
    }
    // Step inputs, one I32 image uploaded at once: tokens, pos, slot [M]; seqs [4, M];
    // out_rows, out_slot, out_pos [O]; then the resolved tokens [M], written on the device.
    const int64_t n_in = 3 * M + 4 * M + 3 * O;
    const size_t inputs_bytes = (n_in + M) * sizeof(int32_t), ids_bytes = O * sizeof(int32_t),
                 logits_bytes = tensor_bytes(GgmlType::F32, hp_.n_vocab, O),
                 last_bytes = r.n_slots * sizeof(int32_t),
                 history_bytes = tensor_bytes(GgmlType::I32, r.n_ctx, r.n_slots),
                 params_bytes = r.n_slots * sizeof(SamplingParams);
    uint64_t act_plan = 0;
    for (const auto& [name, width] : activations()) act_plan += std::max<size_t>(tensor_bytes(GgmlType::F32, width, M), 4);
    {  // the memory plan: all of it, before any of it is allocated
        const uint64_t kv = be_->kv_cache_bytes(d), scratch = be_->scratch_bytes(lim),
                       bufs = act_plan + inputs_bytes + ids_bytes + logits_bytes + last_bytes + history_bytes +
                              params_bytes;
        be_->check_fits(kv + scratch + bufs, std::to_string(r.n_slots) + " slots x " + std::to_string(r.n_ctx) +
                                                 " ctx (kv cache " + std::to_string(kv) + " + op scratch " +
                                                 std::to_string(scratch) + " + step buffers " + std::to_string(bufs) +
                                                 " bytes)");
    }
    be_->reserve_scratch(lim);
    kv_ = be_->make_kv_cache(d);
    uint64_t rows = 0;  // what the cache would hold if no layer were a ring: for the load log
    for (const KvLayer& L : kv_) rows += static_cast<uint64_t>(L.n_rows);
    const uint64_t full = rows ? be_->kv_bytes() * static_cast<uint64_t>(hp_.n_layer) * r.n_ctx / rows : 0;

    auto take = [&](size_t bytes, const char* what) {
        Buffer b = be_->alloc(std::max<size_t>(bytes, 4), what);
        void* p = b.data();
        mem_.push_back(std::move(b));
        return p;
    };
    uint64_t act_bytes = 0;
    for (const auto& [name, width] : activations()) {
        const size_t bytes = tensor_bytes(GgmlType::F32, width, M);
        acts_[name] = {make_tensor(take(bytes, name.c_str()), GgmlType::F32, width, M), width};
        act_bytes += bytes;
    }
    inputs_ = make_tensor(take(inputs_bytes, "step inputs"), GgmlType::I32, n_in + M);
    staging_.assign(static_cast<size_t>(n_in), 0);
    ids_ = make_tensor(take(ids_bytes, "sampled ids"), GgmlType::I32, O);
    logits_ = make_tensor(take(logits_bytes, "logits"), GgmlType::F32, hp_.n_vocab, O);
    state_.last_id = make_tensor(take(last_bytes, "last ids"), GgmlType::I32, r.n_slots);
    state_.history = make_tensor(take(history_bytes, "token history"), GgmlType::I32, r.n_ctx, r.n_slots);
    state_.params = make_tensor(take(params_bytes, "sampling table"), GgmlType::I32, sizeof(SamplingParams) / 4,
                                r.n_slots);
    be_->zero(state_.last_id);
    for (int s = 0; s < r.n_slots; ++s) set_sampling(s, SamplingParams{});
    const int depth = std::max(1, be_->pipeline_depth());
    for (int i = 0; i < depth; ++i) {  // host memory the device copies ids into without a wait
        host_ids_.push_back(be_->alloc_host(static_cast<size_t>(O) * sizeof(int32_t), "sampled ids (host)"));
        host_logits_.push_back({});
    }
    slot_len_.assign(static_cast<size_t>(r.n_slots), 0);
    has_last_.assign(static_cast<size_t>(r.n_slots), 0);
    log::info("model.reserved", {{"slots", r.n_slots},
                                 {"ctx", r.n_ctx},
                                 {"max_step_tokens", M},
                                 {"kv_bytes", be_->kv_bytes()},
                                 {"kv_bytes_without_window_rings", full},
                                 {"activation_bytes", act_bytes}});
}

void DecoderModel::clear_slot(int slot) {
    if (slot < 0 || slot >= static_cast<int>(slot_len_.size()))
        throw Error(Code::INVALID_ARGUMENT, "clear_slot: slot " + std::to_string(slot) + " out of range");
    slot_len_[static_cast<size_t>(slot)] = 0;  // stale rows are overwritten before they are read
    has_last_[static_cast<size_t>(slot)] = 0;
}

void DecoderModel::set_sampling(int slot, const SamplingParams& p) {
    if (slot < 0 || slot >= res_.n_slots)
        throw Error(Code::INVALID_ARGUMENT, "set_sampling: slot " + std::to_string(slot) + " out of range");
    Tensor row = state_.params.row_range(slot, 1);
    be_->upload(row, &p, sizeof p);
}

Tensor DecoderModel::act(const std::string& name, int64_t rows) const {
    auto it = acts_.find(name);
    WO_CHECK(it != acts_.end(), "activation '" + name + "' was not declared by activations()");
    return it->second.first.row_range(0, rows < 0 ? cur_rows_ : rows);
}

void DecoderModel::project(const Step& s, Tensor h, Tensor output, Tensor logits) {
    if (s.n_out == 0) return;
    Tensor rows = act("out_rows_h", s.n_out);
    be_->get_rows(rows, h, s.out_rows);
    be_->matmul(logits, rows, output, nullptr);
}

void DecoderModel::submit(const std::vector<BatchToken>& batch, bool want_logits) {
    if (kv_.empty()) throw Error(Code::INVALID_ARGUMENT, "submit: reserve() was not called");
    if (batch.empty()) throw Error(Code::INVALID_ARGUMENT, "submit: empty batch");
    if (static_cast<int>(pending_.size()) >= static_cast<int>(host_ids_.size()))
        throw Error(Code::INVALID_ARGUMENT, "submit: wait() for the oldest step first");
    const int64_t M = res_.max_step_tokens, O = res_.max_out_rows;
    const int n = static_cast<int>(batch.size());
    // Validate everything before touching state, so a bad request leaves the slots intact.
    std::vector<int32_t> len = slot_len_;
    std::vector<char> has_last = has_last_;
    std::vector<int32_t> step_last(len.size(), -1);  // last position of each slot in this step
    int32_t* tok = staging_.data();
    int32_t *pos = tok + M, *slot = pos + M, *seqs = slot + M, *out_rows = seqs + 4 * M;
    int32_t *out_slot = out_rows + O, *out_pos = out_slot + O;
    int64_t n_out = 0, n_seq = 0;
    for (int i = 0; i < n; ++i) {
        const BatchToken& t = batch[static_cast<size_t>(i)];
        const std::string where = "batch token " + std::to_string(i) + ": ";
        if (t.slot < 0 || t.slot >= static_cast<int>(len.size()))
            throw Error(Code::INVALID_REQUEST, where + "slot " + std::to_string(t.slot) + " out of range");
        if (t.token >= hp_.n_vocab || (t.token < 0 && t.token != kLastSampled))
            throw Error(Code::INVALID_REQUEST, where + "token id " + std::to_string(t.token) +
                                                   " outside the vocabulary of " + std::to_string(hp_.n_vocab));
        if (t.token == kLastSampled && !has_last[static_cast<size_t>(t.slot)])
            throw Error(Code::INVALID_REQUEST, where + "slot " + std::to_string(t.slot) +
                                                   " has no sampled token to feed");
        if (t.pos >= res_.n_ctx)
            throw Error(Code::CONTEXT_OVERFLOW, where + "position " + std::to_string(t.pos) + " >= context " +
                                                    std::to_string(res_.n_ctx));
        int32_t& l = len[static_cast<size_t>(t.slot)];
        if (t.pos < 0 || t.pos > l)
            throw Error(Code::INVALID_REQUEST, where + "position " + std::to_string(t.pos) +
                                                   " leaves a gap (slot " + std::to_string(t.slot) + " has " +
                                                   std::to_string(l) + " cached)");
        int32_t& last = step_last[static_cast<size_t>(t.slot)];
        if (last >= 0 && t.pos != last + 1)
            throw Error(Code::INVALID_REQUEST, where + "position " + std::to_string(t.pos) +
                                                   " does not follow position " + std::to_string(last) +
                                                   " of slot " + std::to_string(t.slot) + " in the same step");
        if (last >= 0 && batch[static_cast<size_t>(i) - 1].slot != t.slot)
            throw Error(Code::INVALID_REQUEST, where + "tokens of slot " + std::to_string(t.slot) +
                                                   " are not contiguous in the batch");
        last = t.pos;
        l = t.pos + 1;
        if (t.logits) has_last[static_cast<size_t>(t.slot)] = 1;
    }
    if (n > M)
        throw Error(Code::INVALID_REQUEST, "step of " + std::to_string(n) + " tokens exceeds the reserved " +
                                               std::to_string(M));
    for (int i = 0; i < n; ++i) {  // pack the validated batch
        const BatchToken& t = batch[static_cast<size_t>(i)];
        if (i == 0 || t.slot != batch[static_cast<size_t>(i) - 1].slot) {  // a new sequence starts here
            int32_t* q = seqs + 4 * n_seq++;
            q[0] = t.slot, q[1] = t.pos, q[2] = 0, q[3] = i;
        }
        seqs[4 * (n_seq - 1) + 2] += 1;
        tok[i] = t.token, pos[i] = t.pos, slot[i] = t.slot;
        if (t.logits) {
            if (n_out == O)
                throw Error(Code::INVALID_REQUEST, "step asks for more than the reserved " + std::to_string(O) +
                                                       " sampled tokens");
            out_rows[n_out] = i, out_slot[n_out] = t.slot, out_pos[n_out] = t.pos;
            ++n_out;
        }
    }
    be_->upload(inputs_, staging_.data(), staging_.size() * sizeof(int32_t));
    Step s;
    auto view = [&](int64_t off, int64_t count) {
        Tensor t = inputs_;
        t.data = inputs_.i32() + off;
        t.ne[0] = count;
        t.nb1 = static_cast<size_t>(count) * sizeof(int32_t);
        return t;
    };
    const int64_t n_in = 3 * M + 4 * M + 3 * O;
    s.t.n = n;
    s.t.n_seq = n_seq;
    s.t.tokens = view(n_in, n);
    s.t.pos = view(M, n);
    s.t.slot = view(2 * M, n);
    s.t.seqs = view(3 * M, 4 * n_seq);
    s.t.seqs.ne[0] = 4, s.t.seqs.ne[1] = n_seq, s.t.seqs.nb1 = 4 * sizeof(int32_t);
    s.n_out = n_out;
    s.out_rows = view(7 * M, n_out);
    const Tensor o_slot = view(7 * M + O, n_out), o_pos = view(7 * M + 2 * O, n_out);
    const Tensor lg = logits_.row_range(0, n_out);
    cur_rows_ = n;
    // The leading generated tokens that sample take the decode path, the rest the prompt path.
    int64_t n_decode = 0;
    while (n_decode < n) {
        const BatchToken& t = batch[static_cast<size_t>(n_decode)];
        if (!t.logits || !(t.generated || t.token == kLastSampled)) break;
        ++n_decode;
    }
    // Decode-only steps (one token per sequence, each sampled) have a fixed shape per size and
    // split of paths: those are the ones a device backend may capture and replay.
    const uint64_t key =
        (n_out == n && n_seq == n) ? (static_cast<uint64_t>(n_decode) << 32 | static_cast<uint64_t>(n)) : 0;
    be_->begin_step();
    be_->set_decode_rows(n_decode);
    be_->run_step(key, [&] {
        be_->resolve_tokens(s.t.tokens, view(0, n), s.t.pos, s.t.slot, state_);
        run(s, lg);
        if (n_out > 0) be_->sample(ids_.row_range(0, 1), lg, o_slot, o_pos, state_);
    });
    const size_t stage = n_submitted_ % host_ids_.size();
    if (n_out > 0) be_->download_async(host_ids_[stage].data(), ids_, static_cast<size_t>(n_out) * sizeof(int32_t));
    if (want_logits && n_out > 0) {
        host_logits_[stage].resize(static_cast<size_t>(n_out * hp_.n_vocab));
        be_->download_async(host_logits_[stage].data(), lg, host_logits_[stage].size() * sizeof(float));
    }
    pending_.push_back({n_out, want_logits, be_->fence()});
    ++n_submitted_;
    slot_len_ = std::move(len);
    has_last_ = std::move(has_last);
}

StepResult DecoderModel::wait() {
    if (pending_.empty()) throw Error(Code::INVALID_ARGUMENT, "wait: no step was submitted");
    const Pending p = pending_.front();
    pending_.pop_front();
    const size_t stage = n_waited_++ % host_ids_.size();
    be_->wait_fence(p.fence);
    StepResult r;
    const int32_t* ids = static_cast<const int32_t*>(host_ids_[stage].data());
    r.ids.assign(ids, ids + p.n_out);
    if (p.logits) r.logits = std::move(host_logits_[stage]);
    return r;
}

}  // namespace wo
