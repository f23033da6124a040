// Shape-checked weight and metadata loading (see loader.h).
#include "model/loader.h"

#include <map>
#include <utility>

#include "quant/quant.h"
#include "util/error.h"

namespace wo {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
    std::string r = "(";
    for (size_t i = 0; i < s.size(); ++i) {
        if (i) r += ',';
        r += std::to_string(s[i]);
    }
    return r + ")";
}

std::vector<int64_t> pad3(std::vector<int64_t> s) {
    while (s.size() < 3) s.push_back(1);
    return s;
}

thread_local std::function<void(uint64_t)> t_on_weight_bytes;

void loaded(const gguf::TensorInfo& t) {
    if (t_on_weight_bytes) t_on_weight_bytes(t.n_bytes);
}

}  // namespace

WeightProgressScope::WeightProgressScope(std::function<void(uint64_t)> on_bytes)
    : previous_(std::exchange(t_on_weight_bytes, std::move(on_bytes))) {}

WeightProgressScope::~WeightProgressScope() { t_on_weight_bytes = std::move(previous_); }

WeightLoader::WeightLoader(const gguf::File& f, Backend& be, std::string arch)
    : f_(f), be_(be), arch_(std::move(arch)), storage_(std::make_shared<std::deque<std::vector<float>>>()) {}

void WeightLoader::fail(const std::string& what) const {
    throw Error(Code::MODEL_LOAD_FAILED, arch_ + " model: " + what);
}

std::optional<int64_t> WeightLoader::opt_int(const std::string& k) const { return f_.find_int(key(k)); }

int64_t WeightLoader::req_int(const std::string& k) const {
    auto v = opt_int(k);
    if (!v) fail("missing metadata key " + key(k));
    return *v;
}

std::optional<double> WeightLoader::opt_float(const std::string& k) const { return f_.find_float(key(k)); }

double WeightLoader::req_float(const std::string& k) const {
    auto v = opt_float(k);
    if (!v) fail("missing metadata key " + key(k));
    return *v;
}

std::optional<std::string> WeightLoader::opt_string(const std::string& k) const {
    return f_.find_string(key(k));
}

const gguf::TensorInfo& WeightLoader::info(const std::string& name, const std::vector<int64_t>& shape) const {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) fail("missing tensor " + name);
    std::vector<int64_t> got(t->shape.begin(), t->shape.end());
    if (pad3(got) != pad3(shape) || got.size() > 3)
        fail("tensor " + name + ": shape " + shape_str(got) + ", expected " + shape_str(shape));
    if (!traits(t->type).supported || !quant::can_dequantize(t->type))
        throw Error(
            Code::DTYPE_UNSUPPORTED,
            "tensor " + name + " has type " + std::string(type_name(t->type)) + ", which is not supported");
    return *t;
}

Tensor WeightLoader::mat(const std::string& name, std::vector<int64_t> shape) {
    const gguf::TensorInfo& t = info(name, shape);
    auto s = pad3(shape);
    Tensor w = be_.weight(f_.tensor_data(t), t.type, s[0], s[1], s[2], name);
    loaded(t);
    return w;
}

Tensor WeightLoader::f32(const std::string& name, std::vector<int64_t> shape) {
    const gguf::TensorInfo& t = info(name, shape);
    auto s = pad3(shape);
    if (t.type == GgmlType::F32) {
        Tensor w = be_.weight(f_.tensor_data(t), t.type, s[0], s[1], s[2], name);
        loaded(t);
        return w;
    }
    std::vector<float>& w = storage_->emplace_back(static_cast<size_t>(s[0] * s[1] * s[2]));
    const uint64_t rb = row_bytes(t.type, static_cast<uint64_t>(s[0]));
    for (int64_t r = 0; r < s[1] * s[2]; ++r)
        quant::dequantize_row(t.type, f_.tensor_data(t) + r * rb, w.data() + r * s[0], s[0]);
    Tensor wt = be_.weight(w.data(), GgmlType::F32, s[0], s[1], s[2], name);
    loaded(t);
    return wt;
}

std::optional<std::vector<float>> WeightLoader::opt_host_f32(const std::string& name,
                                                           std::vector<int64_t> shape) const {
    if (!has(name)) return std::nullopt;
    const gguf::TensorInfo& t = info(name, shape);
    auto s = pad3(shape);
    std::vector<float> w(static_cast<size_t>(s[0] * s[1] * s[2]));
    const uint64_t rb = row_bytes(t.type, static_cast<uint64_t>(s[0]));
    for (int64_t r = 0; r < s[1] * s[2]; ++r)
        quant::dequantize_row(t.type, f_.tensor_data(t) + r * rb, w.data() + r * s[0], s[0]);
    return w;
}

std::map<std::string, Tensor> WeightLoader::load(const std::vector<TensorSpec>& specs) {
    std::map<std::string, Tensor> out;
    for (const TensorSpec& s : specs) {
        const bool small = s.role == TensorRole::NORM || s.role == TensorRole::BIAS || s.role == TensorRole::SINKS;
        out[s.name] = small ? f32(s.name, s.shape) : mat(s.name, s.shape);
    }
    return out;
}

TensorLayout layout_of(const gguf::File& f) {
    auto has = [&](const char* name) { return f.find_tensor(name) != nullptr; };
    TensorLayout l;
    l.tied = !has("output.weight");
    l.fused_qkv = has("blk.0.attn_qkv.weight");
    // Any one of the three: the spec then asks for all of them, so a missing one is named.
    l.qkv_bias = has("blk.0.attn_q.bias") || has("blk.0.attn_k.bias") || has("blk.0.attn_v.bias");
    l.out_bias = has("blk.0.attn_output.bias");
    l.fused_gate_up = !has("blk.0.ffn_gate.weight");
    return l;
}

int64_t WeightLoader::rows_of(const std::string& name) const {
    const gguf::TensorInfo* t = f_.find_tensor(name);
    if (!t) fail("missing tensor " + name);
    if (t->shape.size() != 2) fail("tensor " + name + " is not 2-D");
    return static_cast<int64_t>(t->shape[1]);
}

Hparams read_hparams(WeightLoader& w, const std::string& eps_key) {
    Hparams hp;
    hp.arch = w.arch();
    auto positive = [&](const std::string& k, int64_t v) {
        if (v <= 0 || v > (int64_t{1} << 30))
            w.fail("metadata key " + w.key(k) + " = " + std::to_string(v) + " is out of range");
        return static_cast<int>(v);
    };
    hp.n_ctx_train = positive("context_length", w.req_int("context_length"));
    hp.n_embd = positive("embedding_length", w.req_int("embedding_length"));
    hp.n_layer = positive("block_count", w.req_int("block_count"));
    // Every block has several tensors: a count beyond the file's tensors is corrupt metadata
    // (checked before any per-layer allocation).
    if (static_cast<size_t>(hp.n_layer) > w.n_tensors())
        w.fail("block_count " + std::to_string(hp.n_layer) + " exceeds the file's " +
               std::to_string(w.n_tensors()) + " tensors");
    hp.n_ff = positive("feed_forward_length", w.req_int("feed_forward_length"));
    hp.n_head = positive("attention.head_count", w.req_int("attention.head_count"));
    hp.n_head_kv =
        positive("attention.head_count_kv", w.opt_int("attention.head_count_kv").value_or(hp.n_head));
    if (hp.n_head % hp.n_head_kv != 0)
        w.fail("attention.head_count " + std::to_string(hp.n_head) +
               " is not a multiple of attention.head_count_kv " + std::to_string(hp.n_head_kv));
    if (auto kl = w.opt_int("attention.key_length")) {
        hp.head_dim = positive("attention.key_length", *kl);
        if (auto vl = w.opt_int("attention.value_length"); vl && *vl != *kl)
            w.fail("attention.value_length " + std::to_string(*vl) + " differs from attention.key_length " +
                   std::to_string(*kl));
    } else {
        if (hp.n_embd % hp.n_head != 0)
            w.fail("embedding_length " + std::to_string(hp.n_embd) +
                   " is not a multiple of attention.head_count " + std::to_string(hp.n_head) +
                   " and attention.key_length is absent");
        hp.head_dim = hp.n_embd / hp.n_head;
    }
    const double eps = w.req_float(eps_key);
    if (!(eps > 0 && eps < 1))
        w.fail("metadata key " + w.key(eps_key) + " = " + std::to_string(eps) + " is out of range");
    hp.norm_eps = static_cast<float>(eps);
    hp.n_vocab = static_cast<int>(w.rows_of("token_embd.weight"));
    return hp;
}

std::string quant_kind_of(const gguf::File& f) {
    // llama_ftype values (llama.h) that name a mix rather than one type.
    static const std::map<int64_t, std::string> kFileTypes = {
        {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {7, "Q8_0"},  {8, "Q5_0"},  {14, "Q4_K_S"},
        {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"}, {32, "BF16"}, {38, "MXFP4"},
    };
    if (auto ft = f.find_int("general.file_type")) {
        if (auto it = kFileTypes.find(*ft); it != kFileTypes.end()) return it->second;
    }
    std::map<GgmlType, uint64_t> bytes;
    for (const auto& t : f.tensors())
        if (t.shape.size() >= 2) bytes[t.type] += t.n_bytes;
    GgmlType best = GgmlType::F32;
    uint64_t most = 0;
    for (auto [ty, b] : bytes)
        if (b > most) most = b, best = ty;
    return std::string(type_name(best));
}

}  // namespace wo
