// Reads an architecture's hyperparameters and shape-checked weights out of a GGUF file.
// Every failure names the key or tensor: MODEL_LOAD_FAILED (missing, inconsistent, wrong shape)
// or DTYPE_UNSUPPORTED (a tensor type src/quant cannot dequantize).
#pragma once
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/tensors.h"

namespace wo {

class WeightLoader {
public:
    WeightLoader(const gguf::File& f, Backend& be, std::string arch);
    const std::string& arch() const { return arch_; }

    // Metadata `{arch}.{key}`.
    int64_t req_int(const std::string& key) const;
    std::optional<int64_t> opt_int(const std::string& key) const;
    double req_float(const std::string& key) const;
    std::optional<double> opt_float(const std::string& key) const;
    std::optional<std::string> opt_string(const std::string& key) const;
    std::string key(const std::string& k) const { return arch_ + "." + k; }
    [[noreturn]] void fail(const std::string& what) const;  // throws MODEL_LOAD_FAILED

    // Every tensor of `specs`, by name: each must be present with the spec's shape (else
    // MODEL_LOAD_FAILED naming it, the shape found and the one expected). Norms, biases and sinks
    // come as F32 (F16/BF16 ones widened once); the rest stay in their stored type.
    std::map<std::string, Tensor> load(const std::vector<TensorSpec>& specs);
    // A small tensor's values on the host (read from the file, widened to F32), for tables the
    // model builds at load (RoPE divisors).
    std::optional<std::vector<float>> opt_host_f32(const std::string& name, std::vector<int64_t> shape) const;
    bool has(const std::string& name) const { return f_.find_tensor(name) != nullptr; }
    size_t n_tensors() const { return f_.tensors().size(); }
    int64_t rows_of(const std::string& name) const;  // ne1 of a required 2-D tensor

    // Widened copies of small tensors; the model keeps this alive as long as its weights.
    std::shared_ptr<std::deque<std::vector<float>>> storage() const { return storage_; }

private:
    Tensor mat(const std::string& name, std::vector<int64_t> shape);
    Tensor f32(const std::string& name, std::vector<int64_t> shape);
    const gguf::TensorInfo& info(const std::string& name, const std::vector<int64_t>& shape) const;

    const gguf::File& f_;
    Backend& be_;
    std::string arch_;
    std::shared_ptr<std::deque<std::vector<float>>> storage_;
};

// While alive, every WeightLoader on this thread reports the file bytes of each tensor it hands
// to the backend to `on_bytes` (load_model sets it from LoadOptions::on_weight_bytes, so the
// architecture loaders need no progress plumbing).
class WeightProgressScope {
public:
    explicit WeightProgressScope(std::function<void(uint64_t)> on_bytes);
    ~WeightProgressScope();
    WeightProgressScope(const WeightProgressScope&) = delete;
    WeightProgressScope& operator=(const WeightProgressScope&) = delete;

private:
    std::function<void(uint64_t)> previous_;
};

// The hyperparameters every architecture has, from `{arch}.*` keys, checked for consistency;
// n_vocab is the row count of token_embd.weight. eps_key names the norm epsilon key.
Hparams read_hparams(WeightLoader& w, const std::string& eps_key);

// Name of the quantization mix, from general.file_type when known, else the type holding
// the most weight bytes ("MXFP4", "Q8_0", "Q4_K_M", ...).
std::string quant_kind_of(const gguf::File& f);

}  // namespace wo
