// general.architecture -> loader, and load_model(): picks the backend and the architecture.
#include "model/registry.h"

#include <cstdlib>
#include <mutex>
#include <utility>

#ifdef WO_HAVE_CUDA
#include "backend/cuda/device.h"
#include "backend/cuda/register.h"
#endif

#include "gguf/gguf.h"
#include "model/loader.h"
#include "util/error.h"
#include "util/log.h"

namespace wo {
namespace {

struct Arch {
    const char* name;
    ArchLoader load;
    std::vector<TensorSpec> (*tensors)(const Hparams&, const TensorLayout&);
    TensorLayout layout;  // the variant writers write
};

const Arch kArchs[] = {
    {"gpt-oss", &load_gpt_oss, &gpt_oss_tensors, {}},
    {"llama", &load_llama, &llama_tensors, {}},
    {"qwen2", &load_llama, &llama_tensors, {.qkv_bias = true}},
    {"phi3", &load_llama, &llama_tensors, {.fused_qkv = true, .fused_gate_up = true}},
    {"gpt2", &load_gpt2, &gpt2_tensors, {}},
};

const Arch& arch_of(const std::string& name) {
    std::string known;
    for (const Arch& a : kArchs) {
        if (name == a.name) return a;
        known += (known.empty() ? "" : ", ") + std::string(a.name);
    }
    throw Error(Code::ARCH_UNSUPPORTED, "architecture '" + name + "' is not supported (supported: " + known + ")");
}

// Named intermediates (debugging): LoadOptions::tap_dir, else WO_TAP.
std::unique_ptr<Backend> with_taps(std::unique_ptr<Backend> b, const LoadOptions& opts) {
    const char* env = std::getenv("WO_TAP");
    const std::string dir = !opts.tap_dir.empty() ? opts.tap_dir : env ? env : "";
    if (!dir.empty()) b->set_tap_dir(dir);
    return b;
}

std::unique_ptr<Backend> make_backend(const LoadOptions& opts) {
    if (opts.backend == "cpu") return with_taps(make_cpu_backend(opts.n_threads), opts);
#ifdef WO_HAVE_CUDA
    static std::once_flag registered;
    std::call_once(registered, [] { cuda::register_backend(); });
#endif
    auto& f = backend_factories();
    auto it = f.find(opts.backend);
    if (it == f.end()) {
        std::string have = "cpu";
        for (const auto& [name, _] : f) have += ", " + name;
        throw Error(Code::INVALID_ARGUMENT, "backend '" + opts.backend + "' is not available (this build has: " +
                                                have + (have == "cpu" ? "; build with CUDA for cuda)" : ")"));
    }
    // WO_KV_TYPE=f32 is a debugging knob for tools that do not pass LoadOptions::kv_type.
    const char* env = std::getenv("WO_KV_TYPE");
    const std::string kv = !opts.kv_type.empty() ? opts.kv_type : env ? env : "";
    if (!kv.empty() && kv != "f16" && kv != "f32")
        throw Error(Code::INVALID_ARGUMENT, "kv type '" + kv + "' is not f16 or f32");
    return with_taps(it->second(BackendOptions{opts.n_threads, opts.device, kv == "f32"}), opts);
}

}  // namespace

std::string resolve_backend(const std::string& name) {
    if (name != "auto") return name;
#ifdef WO_HAVE_CUDA
    if (cuda::device_count() > 0) return "cuda";
#endif
    return "cpu";
}

std::unique_ptr<Model> load_model(std::shared_ptr<const gguf::File> file, const LoadOptions& opts) {
    const auto arch = file->find_string("general.architecture");
    if (!arch) throw Error(Code::MODEL_LOAD_FAILED, "missing metadata key general.architecture");
    const Arch& a = arch_of(*arch);
    auto backend = make_backend(opts);
    uint64_t weights = 0;  // as stored; a backend's repacking adds well under its check's margin
    for (const auto& t : file->tensors()) weights += t.n_bytes;
    backend->check_fits(weights, "the weights of " + *arch);
    WeightProgressScope scope(opts.on_weight_bytes);
    auto model = a.load(file, std::move(backend));
    const Hparams& hp = model->hparams();
    log::info("model.loaded", {{"arch", hp.arch},
                               {"backend", model->backend_name()},
                               {"layers", hp.n_layer},
                               {"embd", hp.n_embd},
                               {"vocab", hp.n_vocab},
                               {"experts", hp.n_expert},
                               {"quant", model->quant_kind()},
                               {"weight_bytes", model->weight_bytes()}});
    return model;
}

TensorLayout default_layout(const std::string& arch) { return arch_of(arch).layout; }

std::vector<TensorSpec> tensor_specs(const Hparams& hp, const TensorLayout& l) { return arch_of(hp.arch).tensors(hp, l); }

}  // namespace wo
