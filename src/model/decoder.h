// DecoderModel: what every architecture shares around its forward pass — the backend, KV
// cache slots, batch validation and upload, scratch activations and the logits download.
// An architecture file subclasses it and writes run() as a straight list of Backend calls.
#pragma once
#include <climits>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace wo {

class DecoderModel : public Model {
public:
    DecoderModel(std::shared_ptr<const gguf::File> file, std::unique_ptr<Backend> be);

    const Hparams& hparams() const override { return hp_; }
    void reserve(int n_slots, int n_ctx) override;
    void clear_slot(int slot) override;
    void forward(const std::vector<BatchToken>& batch, std::vector<float>& logits) override;
    std::string backend_name() const override { return be_->name(); }
    uint64_t weight_bytes() const override { return be_->weight_bytes(); }
    uint64_t kv_bytes() const override { return kv_bytes_; }
    std::string quant_kind() const override { return quant_kind_; }

protected:
    // One step's inputs in backend memory (I32 [n]); out_rows lists the tokens wanting logits.
    struct Step {
        int64_t n = 0, n_out = 0;
        Tensor tokens, pos, slot, out_rows;
    };
    // The architecture's forward: fills logits [n_vocab, n_out] for the rows in s.out_rows.
    virtual void run(const Step& s, Tensor logits) = 0;
    // Largest context the architecture can address (GPT-2: rows of position_embd).
    virtual int max_positions() const { return INT_MAX; }

    // Scratch activation [width, n] (F32), reused across steps and grown when a step is larger.
    Tensor act(const std::string& name, int64_t width, int64_t n);
    // logits = rows out_rows of h (already final-normed) times the output matrix.
    void project(const Step& s, Tensor h, Tensor output, Tensor logits);

    Backend& be() { return *be_; }
    const KvLayer& kv(int layer) const { return kv_[static_cast<size_t>(layer)]; }

    Hparams hp_;
    std::string quant_kind_;
    std::shared_ptr<std::deque<std::vector<float>>> storage_;  // widened small tensors

private:
    std::shared_ptr<const gguf::File> file_;  // the mapping the CPU weights point into
    std::unique_ptr<Backend> be_;
    std::vector<Buffer> kv_mem_;  // declared after be_: released before the backend
    std::vector<KvLayer> kv_;
    std::unordered_map<std::string, Buffer> scratch_;
    std::vector<int32_t> slot_len_;  // cached positions per slot
    int n_ctx_ = 0;
    uint64_t kv_bytes_ = 0;
};

}  // namespace wo
