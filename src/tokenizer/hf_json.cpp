// HF tokenizer.json loader (see hf_json.h and tokenizer.h).
#include "tokenizer/hf_json.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tokenizer/pretokenize.h"
#include "util/error.h"

namespace wo::tok {

namespace {
using nlohmann::json;

[[noreturn]] void bad(const std::string& what) {
    throw Error(Code::TOKENIZER_INVALID, "tokenizer.json: " + what);
}

std::string type_of(const json& j) {
    return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "?";
}

void add_normalizer(const json& n, BpeSpec& s) {
    if (n.is_null()) return;
    std::string t = type_of(n);
    if (t == "NFC")
        s.nfc = true;
    else if (t == "Sequence")
        for (const auto& x : n.at("normalizers")) add_normalizer(x, s);
    else
        bad("normalizer " + t + " is unsupported (supported: NFC, Sequence)");
}

// Returns true when the step is (or contains) ByteLevel, i.e. the model is byte-level.
bool add_pre(const json& p, BpeSpec& s) {
    std::string t = type_of(p);
    if (t == "Sequence") {
        bool byte_level = false;
        for (const auto& x : p.at("pretokenizers")) byte_level |= add_pre(x, s);
        return byte_level;
    }
    if (t == "ByteLevel") {
        if (p.value("add_prefix_space", false)) {
            if (!s.pre.empty())
                bad("pre_tokenizer ByteLevel with add_prefix_space after another step is unsupported");
            s.add_prefix_space = true;
        }
        if (p.value("use_regex", true)) s.pre.push_back({patterns::gpt2});
        return true;
    }
    if (t == "Split") {
        if (p.value("behavior", std::string()) != "Isolated")
            bad("pre_tokenizer Split behavior " + p.value("behavior", std::string("?")) +
                " is unsupported (supported: Isolated)");
        if (p.value("invert", false)) bad("pre_tokenizer Split with invert=true is unsupported");
        const json& pat = p.at("pattern");
        if (pat.contains("Regex"))
            s.pre.push_back({pat["Regex"].get<std::string>()});
        else if (pat.contains("String"))
            s.pre.push_back({"\\Q" + pat["String"].get<std::string>() + "\\E"});
        else
            bad("pre_tokenizer Split pattern must be Regex or String");
        return false;
    }
    bad("pre_tokenizer " + t + " is unsupported (supported: ByteLevel, Split, Sequence)");
}

void check_decoder(const json& d) {
    if (d.is_null()) return;
    std::string t = type_of(d);
    if (t == "ByteLevel") return;
    if (t == "Sequence") {
        for (const auto& x : d.at("decoders")) check_decoder(x);
        return;
    }
    bad("decoder " + t + " is unsupported (supported: ByteLevel)");
}

// tokenizer_config.json names tokens as a string or as {"content": ...}.
std::optional<std::string> token_text(const json& c, const char* key) {
    if (!c.contains(key)) return std::nullopt;
    const json& v = c[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content")) return v["content"].get<std::string>();
    return std::nullopt;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw Error(Code::IO_ERROR, "cannot open " + path);
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}
}  // namespace

// A token id from the file: an integer in [0, 2^24) (no tokenizer has more ids; a float, a huge or
// a negative number is a clear error, never an out-of-range conversion or a giant allocation).
static int32_t token_id(const json& v, const std::string& where) {
    constexpr int64_t kMaxId = int64_t(1) << 24;
    if (!v.is_number_integer()) bad(where + " id " + v.dump() + " is not an integer");
    const int64_t i = v.is_number_unsigned() ? int64_t(std::min<uint64_t>(v.get<uint64_t>(), uint64_t(kMaxId)))
                                             : v.get<int64_t>();
    if (i < 0 || i >= kMaxId) bad(where + " id " + v.dump() + " is outside [0, 16777216)");
    return static_cast<int32_t>(i);
}

BpeSpec parse_hf_tokenizer(const std::string& tokenizer_json, const std::string& config_json) {
    json j;
    try {
        j = json::parse(tokenizer_json);
    } catch (const json::exception& e) {
        bad(std::string("not valid JSON: ") + e.what());
    }
    BpeSpec s;
    s.kind = "hf-json";
    try {
        const json& m = j.at("model");
        if (type_of(m) != "BPE") bad("model.type " + type_of(m) + " is unsupported (supported: BPE)");
        if (!m.value("dropout", json()).is_null()) bad("model.dropout is unsupported");
        if (m.value("byte_fallback", false)) bad("model.byte_fallback=true is unsupported");
        for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
            if (m.contains(k) && m[k].is_string() && !m[k].get<std::string>().empty())
                bad(std::string("model.") + k + " is unsupported");
        s.ignore_merges = m.value("ignore_merges", false);

        int32_t n = 0;
        for (const auto& [piece, id] : m.at("vocab").items()) n = std::max(n, token_id(id, "model.vocab") + 1);
        for (const auto& a : j.value("added_tokens", json::array()))
            n = std::max(n, token_id(a.at("id"), "added token") + 1);
        s.vocab.pieces.resize(n);
        s.vocab.types.assign(n, TokenType::UNDEFINED);
        for (const auto& [piece, id] : m.at("vocab").items()) {
            const int32_t i = token_id(id, "model.vocab");
            s.vocab.pieces[i] = piece;
            s.vocab.types[i] = TokenType::NORMAL;
        }
        for (const auto& a : j.value("added_tokens", json::array())) {
            const int32_t i = token_id(a.at("id"), "added token");
            std::string content = a.at("content").get<std::string>();
            if (a.value("single_word", false))
                bad("added token '" + content + "' sets single_word, which is unsupported");
            uint8_t strip = (a.value("lstrip", false) ? Vocab::kLstrip : 0) |
                            (a.value("rstrip", false) ? Vocab::kRstrip : 0);
            if (strip) {
                s.vocab.strip.resize(n, 0);
                s.vocab.strip[i] = strip;
            }
            s.vocab.pieces[i] = content;
            s.vocab.types[i] = a.value("special", false) ? TokenType::CONTROL : TokenType::USER_DEFINED;
        }
        for (int32_t i = 0; i < n; ++i)
            if (s.vocab.types[i] ==
                TokenType::UNDEFINED) {  // ids no entry names: padding, as convert writes it
                s.vocab.pieces[i] = "[PAD" + std::to_string(i) + "]";
                s.vocab.types[i] = TokenType::UNUSED;
            }

        const json& merges = m.at("merges");
        s.merges.reserve(merges.size());
        for (const auto& mg : merges) {
            if (mg.is_string()) {
                std::string t = mg.get<std::string>();
                size_t sp = t.find(' ', 1);
                if (sp == std::string::npos) bad("merge '" + t + "' has no space");
                s.merges.emplace_back(t.substr(0, sp), t.substr(sp + 1));
            } else if (mg.is_array() && mg.size() == 2) {
                s.merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
            } else {
                bad("a merge is neither \"a b\" nor [\"a\", \"b\"]");
            }
        }
        add_normalizer(j.value("normalizer", json()), s);
        if (!add_pre(j.value("pre_tokenizer", json()), s))
            bad("pre_tokenizer has no ByteLevel step; only byte-level BPE is supported");
        check_decoder(j.value("decoder", json()));

        json c = config_json.empty() ? json::object() : json::parse(config_json);
        auto id_of = [&](const std::optional<std::string>& t) -> std::optional<int32_t> {
            if (!t) return std::nullopt;
            for (int32_t i = 0; i < n; ++i)
                if (s.vocab.pieces[i] == *t) return i;
            bad("tokenizer_config.json names token '" + *t + "', which is not in the vocab");
        };
        s.bos = id_of(token_text(c, "bos_token"));
        s.eos = id_of(token_text(c, "eos_token"));
        s.pad = id_of(token_text(c, "pad_token"));
        if (c.contains("add_bos_token") && c["add_bos_token"].is_boolean()) {
            s.add_bos = c["add_bos_token"].get<bool>();
        } else if (s.bos && type_of(j.value("post_processor", json())) == "TemplateProcessing") {
            // Llama 3 has no add_bos_token; its post-processor is what prepends <|begin_of_text|>.
            const json& single = j["post_processor"].value("single", json::array());
            s.add_bos = !single.empty() && single[0].contains("SpecialToken") &&
                        single[0]["SpecialToken"].value("id", std::string()) == s.vocab.pieces[*s.bos];
        }
        if (c.contains("chat_template")) {
            const json& t = c["chat_template"];
            if (t.is_string())
                s.chat_template = t.get<std::string>();
            else if (t.is_array())
                for (const auto& e : t)
                    if (e.value("name", std::string()) == "default")
                        s.chat_template = e.value("template", std::string());
        }
    } catch (const json::exception& e) {
        bad(std::string("unexpected structure: ") + e.what());
    }
    return s;
}

}  // namespace wo::tok

namespace wo {

std::unique_ptr<Tokenizer> load_tokenizer_json(const std::string& tokenizer_json_path,
                                               const std::string& tokenizer_config_path) {
    std::string config_path = tokenizer_config_path;
    if (config_path.empty()) {  // the usual layout keeps the config beside tokenizer.json
        auto sibling = std::filesystem::path(tokenizer_json_path).parent_path() / "tokenizer_config.json";
        if (std::filesystem::exists(sibling)) config_path = sibling.string();
    }
    std::string config = config_path.empty() ? std::string() : tok::read_file(config_path);
    return tok::make_bpe_tokenizer(tok::parse_hf_tokenizer(tok::read_file(tokenizer_json_path), config));
}

}  // namespace wo
