// Loading goldens and the tokenizers they describe (see golden_util.h).
#include "golden_util.h"

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "gguf/gguf.h"
#include "tokenizer/gguf_export.h"

namespace wo::test {

std::string golden_dir() { return WO_GOLDEN; }

bool goldens_present() { return std::filesystem::exists(golden_dir() + "/tokenizer/gpt-oss.json"); }

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

const nlohmann::json& golden(const std::string& name) {
    static std::map<std::string, nlohmann::json> cache;
    static std::mutex mu;
    std::lock_guard lock(mu);
    auto it = cache.find(name);
    if (it == cache.end())
        it = cache
                 .emplace(name,
                          nlohmann::json::parse(read_bytes(golden_dir() + "/tokenizer/" + name + ".json")))
                 .first;
    return it->second;
}

namespace {
struct Loaded {
    std::vector<uint8_t> gguf_bytes;  // kept alive for File::parse
    std::unique_ptr<gguf::File> file;
    std::unique_ptr<Tokenizer> tok;
};
}  // namespace

const Tokenizer* golden_tokenizer(const std::string& name, const std::string& source) {
    static std::map<std::string, Loaded> cache;
    static std::mutex mu;
    std::lock_guard lock(mu);
    const std::string key = name + "/" + source;
    auto it = cache.find(key);
    if (it != cache.end()) return it->second.tok.get();
    const auto& g = golden(name);
    if (!g.contains(source)) return nullptr;
    const std::string d = golden_dir() + "/";
    Loaded l;
    if (source == "json") {
        l.tok = load_tokenizer_json(d + g["json"].get<std::string>(),
                                    g.contains("config") ? d + g["config"].get<std::string>() : "");
    } else {
        std::string where = g["gguf"].get<std::string>();
        if (where.rfind("export:", 0) == 0) {
            // gpt-oss ships no GGUF vocab: write one from tokenizer.json with the exporter.
            gguf::Writer w;
            std::string cfg = g.contains("config") ? read_bytes(d + g["config"].get<std::string>()) : "";
            write_tokenizer_gguf(read_bytes(d + g["json"].get<std::string>()), cfg, w,
                                 std::stoi(where.substr(7)));
            l.gguf_bytes = w.to_bytes();
            l.file =
                std::make_unique<gguf::File>(gguf::File::parse(l.gguf_bytes.data(), l.gguf_bytes.size()));
        } else {
            l.file = std::make_unique<gguf::File>(gguf::File::open(d + where));
        }
        l.tok = load_tokenizer(*l.file);
    }
    return cache.emplace(key, std::move(l)).first->second.tok.get();
}

std::string case_bytes(const nlohmann::json& c) {
    if (c.contains("text")) return c["text"].get<std::string>();
    std::string hex = c["hex"].get<std::string>(), out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
}

std::string corpus() {
    static const std::string c = read_bytes(golden_dir() + "/tokenizer/corpus.txt");
    return c;
}

}  // namespace wo::test
