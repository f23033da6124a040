// OpenAI-compatible routes (work in progress in this commit: /v1/models only).
#include <httplib.h>

#include "server/http_util.h"
#include "server/server.h"

namespace wo {

void Server::add_openai_routes() {
    http_->Get("/v1/models", [this](const httplib::Request& req, httplib::Response& res) {
        correlation_id(req, res);
        nlohmann::json data = nlohmann::json::array();
        if (engine_.state() == Engine::State::Ready)
            data.push_back({{"id", engine_.info().name}, {"object", "model"}, {"created", 0}, {"owned_by", "worker-orcd"}});
        send_json(res, 200, {{"object", "list"}, {"data", data}});
    });
}

}  // namespace wo
