// StopMatcher on hand-made text streams.
#include "engine/stop_matcher.h"

#include <gtest/gtest.h>

namespace wo {
namespace {

std::string feed(StopMatcher& m, const std::vector<std::string>& pieces, std::vector<std::string>* out = nullptr) {
    std::string all;
    for (const auto& p : pieces) {
        std::string o = m.push(p);
        if (out) out->push_back(o);
        all += o;
    }
    return all + m.flush();
}

TEST(StopMatcher, CutsBeforeTheFirstMatchAcrossPieces) {
    StopMatcher m({"STOP"});
    EXPECT_EQ(feed(m, {"hello S", "TO", "P and more"}), "hello ");
    EXPECT_TRUE(m.matched());
    EXPECT_EQ(m.which(), "STOP");
}

TEST(StopMatcher, HoldsOnlyWhatCouldStillBecomeAStop) {
    StopMatcher m({"abc"});
    std::vector<std::string> out;
    EXPECT_EQ(feed(m, {"xa", "b", "d", "a"}, &out), "xabda");
    EXPECT_EQ(out, (std::vector<std::string>{"x", "", "abd", ""}));  // trailing "a" held, flushed at the end
    EXPECT_FALSE(m.matched());
}

TEST(StopMatcher, EarliestMatchWinsAmongSeveral) {
    StopMatcher m({"world", "lo w"});
    EXPECT_EQ(feed(m, {"hello world"}), "hel");
    EXPECT_EQ(m.which(), "lo w");
    StopMatcher none({});
    EXPECT_EQ(feed(none, {"a", "b"}), "ab");
}

TEST(StopMatcher, MultiByteStopStrings) {
    StopMatcher m({"中文"});
    std::vector<std::string> out;
    EXPECT_EQ(feed(m, {"ab中", "x中", "文c"}, &out), "ab中x");
    EXPECT_EQ(out[0], "ab");  // "中" could start the stop string
}

}  // namespace
}  // namespace wo
