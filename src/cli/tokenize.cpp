// `worker-orcd tokenize (--model M.gguf | --tokenizer tokenizer.json) [--ids] [--special] [--bos]`:
// text on stdin -> one "id<TAB>piece" line per token (piece JSON-quoted, since tokens can be
// partial UTF-8), or with --ids only the ids on one line. `--decode` reads ids (separated by
// spaces, commas, brackets or newlines) from stdin and writes the decoded bytes.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "gguf/gguf.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"

namespace wo::cli {
namespace {

struct TokenizeOptions {
    std::string model, tokenizer, config;
    bool ids_only = false, special = false, bos = false, decode = false;
};

std::unique_ptr<Tokenizer> open_tokenizer(const TokenizeOptions& o) {
    if (!o.model.empty() == !o.tokenizer.empty())
        throw Error(Code::INVALID_ARGUMENT, "tokenize: give exactly one of --model and --tokenizer");
    if (!o.tokenizer.empty()) return load_tokenizer_json(o.tokenizer, o.config);
    return load_tokenizer(gguf::File::open(o.model));
}

std::vector<int32_t> parse_ids(const std::string& in) {
    std::vector<int32_t> ids;
    size_t i = 0;
    while (i < in.size()) {
        char c = in[i];
        if (c == ' ' || c == ',' || c == '\n' || c == '\r' || c == '\t' || c == '[' || c == ']') {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < in.size() && (isdigit(static_cast<unsigned char>(in[j])) || (j == i && in[j] == '-'))) ++j;
        if (j == i || (j == i + 1 && in[i] == '-'))
            throw Error(Code::INVALID_ARGUMENT, "tokenize --decode: not a token id at byte " +
                                                    std::to_string(i) + ": '" + in.substr(i, 16) + "'");
        long long v = std::stoll(in.substr(i, j - i));
        if (v < INT32_MIN || v > INT32_MAX)
            throw Error(Code::INVALID_ARGUMENT, "tokenize --decode: id out of range: " + in.substr(i, j - i));
        ids.push_back(static_cast<int32_t>(v));
        i = j;
    }
    return ids;
}

void run(const TokenizeOptions& o) {
    auto tok = open_tokenizer(o);
    std::string in((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    if (o.decode) {
        std::string text = tok->decode(parse_ids(in));
        std::fwrite(text.data(), 1, text.size(), stdout);
        return;
    }
    auto ids = tok->encode(in, o.special, o.bos);
    if (o.ids_only) {
        for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %d" : "%d", ids[i]);
        std::printf("\n");
        return;
    }
    for (int32_t id : ids) {
        std::string piece = nlohmann::json(tok->token_bytes(id))
                                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
        std::printf("%d\t%s\n", id, piece.c_str());
    }
}

}  // namespace

void add_tokenize(CLI::App& app, int& rc) {
    auto o = std::make_shared<TokenizeOptions>();
    auto* cmd = app.add_subcommand("tokenize", "Text on stdin to token ids (or ids to text with --decode)");
    cmd->add_option(
        "--model", o->model,
        "GGUF file whose tokenizer.ggml.* metadata to use (default: none; give it or --tokenizer)");
    cmd->add_option("--tokenizer", o->tokenizer, "HF tokenizer.json (default: none; give it or --model)");
    cmd->add_option("--config", o->config, "tokenizer_config.json (default: beside tokenizer.json)");
    cmd->add_flag("--ids", o->ids_only, "print only the ids, space-separated on one line");
    cmd->add_flag("--special", o->special, "parse special tokens such as <|start|> in the text");
    cmd->add_flag("--bos", o->bos, "prepend BOS when the tokenizer is set to add it");
    cmd->add_flag("--decode", o->decode, "read ids from stdin and write the decoded text");
    cmd->callback([o, &rc] {
        run(*o);
        rc = 0;
    });
}

}  // namespace wo::cli
