// libFuzzer target for the GGUF reader: any input either parses or throws Error(GGUF_INVALID);
// a parsed file must allow every value and every tensor byte to be read, and must survive a
// rewrite with the Writer and a second parse unchanged. Crashes, hangs, leaks and other
// exceptions are what the fuzzer reports.
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "gguf/gguf.h"
#include "util/error.h"

namespace {

using wo::gguf::Value;

uint64_t touch(const Value& v) {
    if (const auto* a = std::get_if<wo::gguf::Array>(&v.data)) {
        uint64_t h = a->items.size();
        for (const Value& item : a->items) h = h * 31 + touch(item);
        return h;
    }
    if (const auto* s = std::get_if<std::string>(&v.data)) return s->empty() ? 0 : uint8_t(s->back());
    if (const auto* u = std::get_if<uint64_t>(&v.data)) return *u;
    if (const auto* i = std::get_if<int64_t>(&v.data)) return uint64_t(*i);
    if (const auto* b = std::get_if<bool>(&v.data)) return *b;
    return std::get<double>(v.data) > 0;
}

// Every typed accessor on every key: each returns or throws GGUF_INVALID, nothing else.
template <class Fn>
void accessor(Fn&& fn) {
    try {
        fn();
    } catch (const wo::Error& e) {
        if (e.code() != wo::Code::GGUF_INVALID) std::abort();
    }
}

void exercise(const wo::gguf::File& f) {
    volatile uint64_t sink = f.version() + f.alignment() + f.data_offset();
    for (const auto& kv : f.metadata()) {
        const std::string& key = kv.first;  // a named variable: clang 14 lambdas cannot capture bindings
        const Value& v = kv.second;
        sink = sink + touch(v);
        if (f.find(key) != &v) std::abort();  // keys are unique
        accessor([&] { sink = sink + f.get_string(key).size(); });
        accessor([&] { sink = sink + uint64_t(f.get_int(key)); });
        accessor([&] { sink = sink + f.get_uint(key); });
        accessor([&] { sink = sink + uint64_t(f.get_float(key) > 0); });
        accessor([&] { sink = sink + f.get_bool(key); });
        accessor([&] { sink = sink + f.get_string_array(key).size(); });
        accessor([&] { sink = sink + f.get_int_array(key).size(); });
        accessor([&] { sink = sink + f.get_float_array(key).size(); });
    }
    for (const auto& t : f.tensors()) {
        if (f.find_tensor(t.name) != &t) std::abort();
        const uint8_t* p = f.tensor_data(t);
        for (uint64_t i = 0; i < t.n_bytes; ++i) sink = sink + p[i];
    }
}

// Writer(reader(x)) must parse to the same keys, values and tensors.
void rewrite(const wo::gguf::File& f) {
    if (f.alignment() > 4096) return;  // the writer takes alignments that fit in uint32; keep inputs small
    wo::gguf::Writer w(f.alignment());
    for (const auto& [key, v] : f.metadata())
        if (key != "general.alignment") w.set(key, v);
    for (const auto& t : f.tensors()) {
        const uint8_t* p = f.tensor_data(t);
        w.add_tensor(t.name, t.type, t.shape, std::vector<uint8_t>(p, p + t.n_bytes));
    }
    const std::vector<uint8_t> bytes = w.to_bytes();
    const auto g = wo::gguf::File::parse(bytes.data(), bytes.size());
    if (g.alignment() != f.alignment() || g.tensors().size() != f.tensors().size()) std::abort();
    for (const auto& [key, v] : f.metadata()) {
        const Value* u = g.find(key);
        if (!u && key != "general.alignment") std::abort();
        if (u && key != "general.alignment" && (u->type != v.type || touch(*u) != touch(v))) std::abort();
    }
    for (size_t i = 0; i < f.tensors().size(); ++i) {
        const auto &a = f.tensors()[i], &b = g.tensors()[i];
        if (a.name != b.name || a.type != b.type || a.shape != b.shape || a.n_bytes != b.n_bytes) std::abort();
        if (std::memcmp(f.tensor_data(a), g.tensor_data(b), a.n_bytes) != 0) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        const auto f = wo::gguf::File::parse(data, size);
        exercise(f);
        rewrite(f);
    } catch (const wo::Error& e) {
        if (e.code() != wo::Code::GGUF_INVALID) std::abort();
    }
    return 0;
}
