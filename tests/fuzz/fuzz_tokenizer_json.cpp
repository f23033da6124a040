// libFuzzer target for the HF tokenizer.json parser: any text either parses into a spec that
// builds a tokenizer (which then encodes a fixed text) or throws Error(TOKENIZER_INVALID).
#include <cstdint>
#include <cstdlib>
#include <string>

#include "tokenizer/bpe.h"
#include "tokenizer/hf_json.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    // Inputs of the form CONFIG\0TOKENIZER also exercise tokenizer_config.json.
    const size_t nul = text.find('\0');
    const std::string tok = nul == std::string::npos ? text : text.substr(nul + 1);
    const std::string cfg = nul == std::string::npos ? "" : text.substr(0, nul);
    try {
        auto t = wo::tok::make_bpe_tokenizer(wo::tok::parse_hf_tokenizer(tok, cfg));
        const auto ids = t->encode("Hello, wörld! <|endoftext|> 123", true, true);
        for (int32_t id : ids)
            if (id < 0 || id >= t->vocab_size()) std::abort();
        (void)t->decode(ids);
    } catch (const wo::Error& e) {
        if (e.code() != wo::Code::TOKENIZER_INVALID) std::abort();
    }
    return 0;
}
