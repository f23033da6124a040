// DecoderModel: what every architecture shares around its forward pass — the backend, the
// backend-owned KV cache, buffers reserved once, batch validation and upload, the sampling
// state of every slot, and steps submitted to the backend and waited for later. An architecture
// file subclasses it and writes run() as a straight list of Backend calls.
#pragma once
#include <climits>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "model/model.h"

namespace wo {

class DecoderModel : public Model {
public:
    DecoderModel(std::shared_ptr<const gguf::File> file, std::unique_ptr<Backend> be);

    const Hparams& hparams() const override { return hp_; }
    void reserve(const ReserveOptions& r) override;
    using Model::reserve;
    void clear_slot(int slot) override;
    void set_sampling(int slot, const SamplingParams& p) override;
    void submit(const std::vector<BatchToken>& batch, bool want_logits) override;
    StepResult wait() override;
    int pipeline_depth() const override { return be_->pipeline_depth(); }
    std::string backend_name() const override { return be_->name(); }
    bool healthy() const override { return be_->healthy(); }
    uint64_t weight_bytes() const override { return be_->weight_bytes(); }
    uint64_t kv_bytes() const override { return be_->kv_bytes(); }
    uint64_t buffer_bytes() const override { return be_->buffer_bytes(); }
    std::string device() const override { return be_->device(); }
    std::string quant_kind() const override { return quant_kind_; }
    Backend& backend() { return *be_; }  // tests: allocation counts

protected:
    // One step's inputs in backend memory; out_rows lists the tokens that want a sample.
    struct Step {
        StepTensors t;
        int64_t n_out = 0;
        Tensor out_rows;
    };
    // The architecture's forward: fills logits [n_vocab, n_out] for the rows in s.out_rows.
    virtual void run(const Step& s, Tensor logits) = 0;
    // Scratch activations the architecture uses: (name, width); each gets max_step_tokens rows.
    virtual std::vector<std::pair<std::string, int64_t>> activations() const = 0;
    // Sliding window of a layer (0 = full attention).
    virtual int layer_window(int /*layer*/) const { return 0; }
    // Largest context the architecture can address (GPT-2: rows of position_embd).
    virtual int max_positions() const { return INT_MAX; }

    // Scratch activation `name` as [width, rows] (rows defaults to the step's tokens).
    Tensor act(const std::string& name, int64_t rows = -1) const;
    // logits = rows out_rows of h (already final-normed) times the output matrix.
    void project(const Step& s, Tensor h, Tensor output, Tensor logits);
    // Uploads p's inverse frequencies (built on the host once) into a backend tensor.
    void upload_rope(RopeParams& p);

    Backend& be() { return *be_; }
    const KvLayer& kv(int layer) const { return kv_[static_cast<size_t>(layer)]; }

    Hparams hp_;
    std::string quant_kind_;
    std::shared_ptr<std::deque<std::vector<float>>> storage_;  // widened small tensors

private:
    struct Pending {
        int64_t n_out = 0;
        bool logits = false;
        uint64_t fence = 0;
    };

    std::shared_ptr<const gguf::File> file_;  // the mapping the CPU weights point into
    std::unique_ptr<Backend> be_;
    std::vector<Buffer> mem_;  // declared after be_: released before the backend
    std::vector<KvLayer> kv_;
    std::map<std::string, std::pair<Tensor, int64_t>> acts_;  // name -> (buffer view, width)
    int64_t cur_rows_ = 0;                                    // tokens of the step being built
    Tensor inputs_, ids_, logits_;                            // step inputs, sampled ids, logits
    SlotState state_;
    std::vector<int32_t> staging_;                            // host image of inputs_
    std::deque<Pending> pending_;
    std::vector<Buffer> host_ids_;                            // per pipeline stage (alloc_host)
    std::vector<std::vector<float>> host_logits_;
    uint64_t n_submitted_ = 0, n_waited_ = 0;
    std::vector<int32_t> slot_len_;  // cached positions per slot, counting submitted steps
    std::vector<char> has_last_;     // the slot's last step sampled an id
    ReserveOptions res_;
};

}  // namespace wo
