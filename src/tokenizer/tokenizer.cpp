// Decoding shared by all tokenizers: ids to bytes, and the UTF-8-safe streaming decoder.
#include "tokenizer/tokenizer.h"

#include <algorithm>

#include "tokenizer/text.h"

namespace wo {

std::string Tokenizer::decode(const std::vector<int32_t>& ids) const {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
        std::string b = token_bytes(ids[i]);
        if (i == 0 && strips_leading_space() && !b.empty() && b[0] == ' ') b.erase(0, 1);
        out += b;
    }
    return out;
}

bool Tokenizer::is_eog(int32_t id) const {
    return std::find(eog_ids.begin(), eog_ids.end(), id) != eog_ids.end();
}

std::string StreamDecoder::push(int32_t id) {
    std::string b = tok_.token_bytes(id);
    if (!started_ && tok_.strips_leading_space() && !b.empty() && b[0] == ' ') b.erase(0, 1);
    started_ = true;
    pending_ += b;
    // Emit every complete character; bytes that can never complete become U+FFFD now; only a
    // truncated-but-valid tail (at most 3 bytes) waits for the next token.
    std::string out;
    size_t i = 0;
    while (i < pending_.size()) {
        if (static_cast<uint8_t>(pending_[i]) < 0x80) {
            out += pending_[i++];
            continue;
        }
        size_t n = tok::utf8_valid_len(pending_, i);
        if (n > 0) {
            out.append(pending_, i, n);
            i += n;
            continue;
        }
        if (tok::utf8_incomplete_len(pending_, i) > 0) break;
        out += "\xEF\xBF\xBD";  // one U+FFFD per maximal invalid subpart, as utf8_repair does
        i += tok::utf8_subpart_len(pending_, i);
    }
    pending_.erase(0, i);
    return out;
}

std::string StreamDecoder::flush() {
    std::string out = tok::utf8_repair(pending_);
    pending_.clear();
    return out;
}

}  // namespace wo
