// libFuzzer target for every route's request parser (server/requests.h) on arbitrary JSON,
// against an engine with a fake model (one plain with a ChatML template, one gpt-oss so chats
// render as harmony): no parser may throw, a request it accepts must be runnable (prompt inside
// the context, ids inside the vocabulary), and the error body it produces stays small.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "engine/fake_model.h"
#include "server/requests.h"
#include "util/log.h"

namespace {

using wo::test::FakeModel;
using wo::test::FakeTokenizer;

class ArchModel : public FakeModel {
public:
    explicit ArchModel(const std::string& arch) : hp_(FakeModel::hparams()) { hp_.arch = arch; }
    const wo::Hparams& hparams() const override { return hp_; }

private:
    wo::Hparams hp_;
};

std::unique_ptr<wo::Engine> make_engine(const std::string& arch) {
    wo::EngineOptions o;
    o.n_ctx = 256;
    o.n_parallel = 1;
    auto e = std::make_unique<wo::Engine>(o, [arch](const wo::EngineOptions&, wo::Progress&) {
        wo::LoadedModel lm;
        lm.model = std::make_unique<ArchModel>(arch);
        auto t = std::make_unique<FakeTokenizer>();
        t->chat_template = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + "
                           "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        lm.tokenizer = std::move(t);
        lm.name = "fuzz";
        return lm;
    });
    e->start();
    if (e->wait_loaded() != wo::Engine::State::Ready) std::abort();
    return e;
}

void check(const std::vector<wo::FieldError>& errors, const wo::GenerateRequest& g, const wo::Engine& e) {
    const std::string body = wo::errors_json(errors).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    if (body.size() > 16384) std::abort();
    if (!errors.empty()) return;
    if (g.prompt.empty() || static_cast<int>(g.prompt.size()) > e.info().n_ctx) std::abort();
    for (int32_t id : g.prompt)
        if (id < 0 || id >= e.info().vocab_size) std::abort();
    if (g.max_tokens < 1 || g.stop.size() > 4) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const bool quiet = (wo::log::set_level(wo::log::Level::error), true);
    static const auto plain = make_engine("fake");
    static const auto harmony = make_engine("gpt-oss");
    (void)quiet;
    const auto body = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) return 0;
    std::string id;
    const auto ce = wo::parse_cancel(body, id);
    if (ce.empty() && (id.empty() || id.size() > 4 * 256)) std::abort();
    if (!body.is_object()) return 0;  // the routes answer 400 before parsing
    for (const auto* e : {plain.get(), harmony.get()}) {
        wo::GenerateRequest g;
        check(wo::parse_execute(body, *e, g), g, *e);
        const std::string raw(reinterpret_cast<const char*>(data), size);
        for (bool chat : {false, true}) {
            wo::OaiRequest o;
            check(wo::parse_oai(body, raw, chat, *e, o), o.gen, *e);
        }
        wo::RespRequest r;
        check(wo::parse_responses(body, raw, *e, r), r.gen, *e);
    }
    return 0;
}
