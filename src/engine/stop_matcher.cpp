// Stop-string matching with hold-back of possible prefixes.
#include "engine/stop_matcher.h"

#include <algorithm>

namespace wo {

StopMatcher::StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {
    std::erase_if(stops_, [](const std::string& s) { return s.empty(); });
}

std::string StopMatcher::push(std::string_view text) {
    if (matched()) return {};
    held_ += text;
    // The earliest occurrence of any stop string wins (ties: the longer string).
    size_t best = std::string::npos;
    for (const std::string& s : stops_) {
        const size_t p = held_.find(s);
        if (p != std::string::npos && (best == std::string::npos || p < best ||
                                       (p == best && s.size() > matched_.size()))) {
            best = p;
            matched_ = s;
        }
    }
    if (best != std::string::npos) {
        std::string out = held_.substr(0, best);
        held_.clear();
        return out;
    }
    // Hold back the longest tail that is a proper prefix of some stop string. Stop strings are
    // valid UTF-8, so such a tail starts on a character boundary and the emitted part stays whole.
    size_t keep = 0;
    for (const std::string& s : stops_) {
        const size_t max_len = std::min(s.size() - 1, held_.size());
        for (size_t len = max_len; len > keep; --len)
            if (held_.compare(held_.size() - len, len, s, 0, len) == 0) {
                keep = len;
                break;
            }
    }
    std::string out = held_.substr(0, held_.size() - keep);
    held_.erase(0, held_.size() - keep);
    return out;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(held_);
    return matched() ? std::string{} : out;
}

}  // namespace wo
