// Stop strings on streamed text: text that could still turn into a stop string is held back,
// so a client never sees part of one.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace wo {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops);

    // Appends decoded text; returns what is safe to emit. After a match, returns the text
    // before the stop string and matched() is true (the stop string itself is never emitted).
    std::string push(std::string_view text);
    std::string flush();  // end of generation without a match: the held-back text
    bool matched() const { return !matched_.empty(); }
    const std::string& which() const { return matched_; }

private:
    std::vector<std::string> stops_;
    std::string held_;
    std::string matched_;
};

}  // namespace wo
