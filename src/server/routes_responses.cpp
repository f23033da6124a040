// POST /v1/responses: OpenAI's Responses API over the same rendering and reply parsing as chat
// completions. Output items are reasoning (analysis), message (output_text) and function_call;
// streamed as the typed events the openai SDK's Responses client accumulates. Nothing is
// stored, so previous_response_id is refused.
#include <httplib.h>

#include "server/http_util.h"
#include "server/oai.h"
#include "server/reply.h"
#include "server/requests.h"
#include "server/server.h"

namespace wo {

namespace {

using nlohmann::json;

// Builds the output items and the typed event stream from reply deltas.
class RespOutput : public OaiReply {
public:
    RespOutput(RespRequest o, std::string model, const Tokenizer& tok)
        : o_(std::move(o)), model_(std::move(model)), reply_(o_.prompt, tok) {}
    bool stream() const override { return o_.stream; }

    json response(const std::string& status) const {
        json r = {{"id", o_.id},
                  {"object", "response"},
                  {"created_at", o_.created},
                  {"status", status},
                  {"model", model_},
                  {"output", output_},
                  {"error", nullptr},
                  {"incomplete_details", nullptr},
                  {"parallel_tool_calls", false},
                  {"previous_response_id", nullptr},
                  {"reasoning", {{"effort", o_.effort}, {"summary", nullptr}}},
                  {"store", false},
                  {"text", {{"format", {{"type", "text"}}}}},
                  {"truncation", "disabled"},
                  {"usage", nullptr}};
        r.update(o_.echo);
        if (status == "incomplete") r["incomplete_details"] = {{"reason", "max_output_tokens"}};
        if (status != "in_progress")
            r["usage"] = {{"input_tokens", o_.prompt_tokens},
                          {"input_tokens_details", {{"cached_tokens", 0}}},
                          {"output_tokens", tokens_out_},
                          {"output_tokens_details", {{"reasoning_tokens", 0}}},
                          {"total_tokens", o_.prompt_tokens + tokens_out_}};
        return r;
    }

    // Events for one delta (and, at the end, for closing the last item).
    std::vector<json> feed(const ReplyDelta& d) {
        std::vector<json> ev;
        if (!d.reasoning.empty()) {
            if (open_ != "reasoning") open_item("reasoning", ev);
            output_.back()["content"][0]["text"] =
                output_.back()["content"][0]["text"].get<std::string>() + d.reasoning;
            ev.push_back(
                event("response.reasoning_text.delta", {{"content_index", 0}, {"delta", d.reasoning}}));
        }
        if (!d.content.empty()) {
            if (open_ != "message") open_item("message", ev);
            output_.back()["content"][0]["text"] =
                output_.back()["content"][0]["text"].get<std::string>() + d.content;
            ev.push_back(event("response.output_text.delta",
                               {{"content_index", 0}, {"delta", d.content}, {"logprobs", json::array()}}));
        }
        for (const auto& c : d.calls) {
            if (!c.name.empty()) {
                call_ = c.index;
                open_item("function_call", ev);
            }
            if (c.arguments.empty()) continue;
            output_.back()["arguments"] = output_.back()["arguments"].get<std::string>() + c.arguments;
            ev.push_back(event("response.function_call_arguments.delta", {{"delta", c.arguments}}));
        }
        return ev;
    }
    std::vector<json> finish(const JobEvent& end) {
        std::vector<json> ev;
        const bool cut =
            end.stop_reason == StopReason::MAX_TOKENS || end.stop_reason == StopReason::CONTEXT_FULL;
        close_item(ev, cut ? "incomplete" : "completed");
        tokens_out_ = end.tokens_out;
        const std::string status = cut ? "incomplete" : "completed";
        ev.push_back(with_seq({{"type", "response." + status}, {"response", response(status)}}));
        return ev;
    }

    std::string stream_event(const JobEvent& e, bool& last) override {
        std::vector<json> ev;
        switch (e.kind) {
            case JobEvent::Kind::Started:
                ev.push_back(with_seq({{"type", "response.created"}, {"response", response("in_progress")}}));
                ev.push_back(
                    with_seq({{"type", "response.in_progress"}, {"response", response("in_progress")}}));
                ev_append(ev, feed(reply_.start()));
                break;
            case JobEvent::Kind::Token:
                ev = feed(reply_.push(e, false));
                break;
            case JobEvent::Kind::Metrics:
                break;
            case JobEvent::Kind::End:
                last = true;
                ev = feed(reply_.push(e, true));
                ev_append(ev, finish(e));
                break;
            case JobEvent::Kind::Error:
                last = true;
                ev.push_back(with_seq({{"type", "error"},
                                       {"code", std::string(code_name(e.code))},
                                       {"message", e.message},
                                       {"param", nullptr}}));
                break;
        }
        std::string out;
        for (const auto& j : ev) out += sse(j["type"].get<std::string>(), j);
        return out;
    }

    bool collect_event(const JobEvent& e, json& body, int& status) override {
        if (e.kind == JobEvent::Kind::Started) feed(reply_.start());
        if (e.kind == JobEvent::Kind::Token) feed(reply_.push(e, false));
        if (e.kind == JobEvent::Kind::Error) {
            body = oai_error(e.code, e.message);
            status = http_status(e.code);
            return true;
        }
        if (e.kind != JobEvent::Kind::End) return false;
        feed(reply_.push(e, true));
        body = finish(e).back()["response"];
        status = 200;
        return true;
    }

private:
    static void ev_append(std::vector<json>& a, std::vector<json> b) {
        for (auto& j : b) a.push_back(std::move(j));
    }
    json with_seq(json j) {
        j["sequence_number"] = seq_++;
        return j;
    }
    // An event about the open item: adds item_id and output_index.
    json event(const std::string& type, json j) {
        j["type"] = type;
        j["item_id"] = output_.back()["id"];
        j["output_index"] = output_.size() - 1;
        return with_seq(std::move(j));
    }
    void open_item(const std::string& kind, std::vector<json>& ev) {
        close_item(ev);
        json item;
        const std::string suffix = uuid_v4();
        if (kind == "reasoning") {
            item = {{"type", "reasoning"},
                    {"id", "rs_" + suffix},
                    {"summary", json::array()},
                    {"content", json::array({{{"type", "reasoning_text"}, {"text", ""}}})},
                    {"status", "in_progress"}};
        } else if (kind == "message") {
            item = {{"type", "message"},
                    {"id", "msg_" + suffix},
                    {"role", "assistant"},
                    {"status", "in_progress"},
                    {"content", json::array({{{"type", "output_text"},
                                              {"text", ""},
                                              {"annotations", json::array()},
                                              {"logprobs", json::array()}}})}};
        } else {
            const auto& c = reply_.calls()[static_cast<size_t>(call_)];
            item = {{"type", "function_call"}, {"id", "fc_" + suffix}, {"call_id", c.id},
                    {"name", c.name},          {"arguments", ""},      {"status", "in_progress"}};
        }
        open_ = kind;
        output_.push_back(item);
        // The added item is announced empty; its content part (if any) follows.
        json announced = item;
        if (kind != "function_call") announced["content"] = json::array();
        ev.push_back(with_seq({{"type", "response.output_item.added"},
                               {"output_index", output_.size() - 1},
                               {"item", announced}}));
        if (kind != "function_call")
            ev.push_back(
                event("response.content_part.added", {{"content_index", 0}, {"part", item["content"][0]}}));
    }
    // `status`: completed, or incomplete for the item the token limit cut.
    void close_item(std::vector<json>& ev, const char* status = "completed") {
        if (open_.empty()) return;
        json& item = output_.back();
        item["status"] = status;
        if (open_ == "reasoning") {
            ev.push_back(event("response.reasoning_text.done",
                               {{"content_index", 0}, {"text", item["content"][0]["text"]}}));
        } else if (open_ == "message") {
            ev.push_back(event(
                "response.output_text.done",
                {{"content_index", 0}, {"text", item["content"][0]["text"]}, {"logprobs", json::array()}}));
        } else {
            ev.push_back(event("response.function_call_arguments.done",
                               {{"arguments", item["arguments"]}, {"name", item["name"]}}));
        }
        if (open_ != "function_call")
            ev.push_back(
                event("response.content_part.done", {{"content_index", 0}, {"part", item["content"][0]}}));
        ev.push_back(with_seq(
            {{"type", "response.output_item.done"}, {"output_index", output_.size() - 1}, {"item", item}}));
        open_.clear();
    }

    RespRequest o_;
    std::string model_;
    ReplyParser reply_;
    json output_ = json::array();
    std::string open_;  // kind of the item still receiving deltas, "" = none
    int call_ = 0;
    int seq_ = 0;
    int tokens_out_ = 0;
};

}  // namespace

void Server::add_responses_routes() {
    route("POST", "/v1/responses", [this](const httplib::Request& req, httplib::Response& res) {
        serve_generation(req, res, engine_, options_.enable_test_faults,
                         [this](const json& body, const std::string& raw, GenerateRequest& gen,
                                std::vector<FieldError>& errors) -> std::shared_ptr<OaiReply> {
                             RespRequest o;
                             errors = parse_responses(body, raw, engine_, o);
                             if (!errors.empty()) return nullptr;
                             gen = o.gen;
                             return std::make_shared<RespOutput>(std::move(o), engine_.info().name,
                                                                 engine_.tokenizer());
                         });
    }, options_.max_body_bytes);
}

}  // namespace wo
