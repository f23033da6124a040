// `worker-orcd serve --model PATH [...]`: listens first, loads the model in the background
// (/health says loading until it is resident), sends the ready callback, and serves until
// SIGINT/SIGTERM. A failed load or callback exits 1. Logs are JSON lines for collectors, or text
// plus one human `ready at URL` line on a terminal (--log-format).
#include <httplib.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <regex>
#include <string>
#include <thread>

#include "cli/commands.h"
#include "cli/options.h"
#include "engine/engine.h"
#include "server/server.h"
#include "util/error.h"
#include "util/log.h"
#include "util/progress.h"

namespace wo::cli {
namespace {

struct ServeOptions {
    EngineOptions engine;
    ServerOptions server;
    std::string callback_url;
    double timeout_sec = 300;
    OutputArgs output;
    double request_timeout_sec = 10;
    std::string api_key_file;
};

// The one line a person at a terminal waits for; collectors read the `ready` event instead.
std::string ready_line(const ModelInfo& in, const std::string& uri) {
    const char* where = in.backend == "cpu" ? "RAM" : "VRAM";
    return "worker-orcd ready at " + uri + ": model \"" + in.name + "\" (" + in.arch + ", " + in.quant_kind +
           ") on " + in.backend + ", " + human_bytes(in.weight_bytes) + " weights + " +
           human_bytes(in.kv_bytes) + " KV cache in " + where + ", " + std::to_string(in.n_slots) +
           " slots of " + std::to_string(in.n_ctx) + " tokens\n";
}

// --api-key, else --api-key-file (first line), else WORKER_API_KEY; "" = no key.
std::string resolve_api_key(const std::string& flag, const std::string& file) {
    std::string key = flag;
    if (key.empty() && !file.empty()) {
        std::ifstream in(file);
        if (!in) throw Error(Code::INVALID_ARGUMENT, "--api-key-file '" + file + "' cannot be read");
        std::getline(in, key);
        if (!key.empty() && key.back() == '\r') key.pop_back();
        if (key.empty()) throw Error(Code::INVALID_ARGUMENT, "--api-key-file '" + file + "' is empty");
    }
    if (key.empty())
        if (const char* env = std::getenv("WORKER_API_KEY")) key = env;
    for (unsigned char c : key)
        if (c <= 0x20 || c >= 0x7f)
            throw Error(Code::INVALID_ARGUMENT, "the API key must be printable ASCII without spaces");
    return key;
}

bool is_loopback(const std::string& host) {
    return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

// POST {worker_id, model_ref, vram_bytes, uri} to the orchestrator; throws on any failure.
void send_ready_callback(const std::string& url, const nlohmann::json& body) {
    static const std::regex re(R"(^http://([^/:]+)(?::(\d+))?(/.*)?$)");
    std::smatch m;
    if (!std::regex_match(url, m, re))
        throw Error(Code::INVALID_ARGUMENT, "--callback-url '" + url + "' must look like http://HOST[:PORT]/PATH");
    httplib::Client cli(m[1].str(), m[2].matched ? std::stoi(m[2].str()) : 80);
    cli.set_connection_timeout(5, 0);
    cli.set_read_timeout(10, 0);
    auto r = cli.Post(m[3].matched ? m[3].str() : "/", body.dump(), "application/json");
    if (!r) throw Error(Code::IO_ERROR, "ready callback to " + url + " failed: " + httplib::to_string(r.error()));
    if (r->status < 200 || r->status >= 300)
        throw Error(Code::IO_ERROR, "ready callback to " + url + " answered HTTP " + std::to_string(r->status));
}

int run_serve(ServeOptions o) {
    const bool json_logs = apply_output_options(o.output);
    if (o.engine.backend != "cpu" && o.engine.backend != "cuda" && o.engine.backend != "auto")
        throw Error(Code::INVALID_ARGUMENT, "--backend must be auto, cpu or cuda (got '" + o.engine.backend + "')");
    o.engine.backend = resolve_backend(o.engine.backend);
#ifndef WO_HAVE_CUDA
    if (o.engine.backend == "cuda")
        throw Error(Code::INVALID_ARGUMENT,
                    "--backend cuda: this binary was built without the CUDA backend (configure with -DWORKER_CUDA=ON "
                    "on a machine with nvcc), use --backend cpu");
#endif
    if (o.timeout_sec < 0) throw Error(Code::INVALID_ARGUMENT, "--inference-timeout-sec must be >= 0");
    o.engine.timeout_ms = static_cast<int64_t>(o.timeout_sec * 1000);
    if (o.server.worker_id.empty()) o.server.worker_id = "worker-" + std::to_string(getpid());
    if (o.request_timeout_sec <= 0) throw Error(Code::INVALID_ARGUMENT, "--request-timeout-sec must be > 0");
    o.server.request_timeout_ms = static_cast<int>(o.request_timeout_sec * 1000);
    o.server.api_key = resolve_api_key(o.server.api_key, o.api_key_file);
    o.server.model_ref = o.engine.model_path;

    // Signals are taken synchronously by this thread; every thread started below inherits the mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    log::info("startup", {{"worker_id", o.server.worker_id}, {"model", o.engine.model_path},
                          {"backend", o.engine.backend}, {"gpu_device", o.engine.device}, {"ctx", o.engine.n_ctx},
                          {"parallel", o.engine.n_parallel}, {"api_key", !o.server.api_key.empty()}});
    if (o.server.api_key.empty() && !is_loopback(o.server.host))
        log::warn("no_api_key", {{"host", o.server.host},
                                 {"message", "listening beyond loopback without --api-key: anyone who reaches this port "
                                             "can run generation"}});
    Engine engine(o.engine);
    Server server(engine, o.server);
    const int port = server.bind();
    std::thread http([&] { server.listen(); });
    log::info("http_listening", {{"host", o.server.host}, {"port", port}});
    engine.start();

    int rc = 0;
    std::atomic<bool> loaded_done{false};
    std::thread ready([&] {
        if (engine.wait_loaded() == Engine::State::Failed) {
            rc = 1;
        } else {
            const uint64_t bytes = engine.info().weight_bytes + engine.info().kv_bytes;
            const std::string uri = "http://" + o.server.host + ":" + std::to_string(port);
            log::info("ready", {{"worker_id", o.server.worker_id}, {"vram_bytes", bytes}, {"uri", uri}});
            if (!json_logs) {
                const std::string line = ready_line(engine.info(), uri);
                std::fwrite(line.data(), 1, line.size(), stderr);
            }
            if (!o.callback_url.empty()) {
                try {
                    send_ready_callback(o.callback_url, {{"worker_id", o.server.worker_id},
                                                         {"model_ref", o.server.model_ref},
                                                         {"vram_bytes", bytes},
                                                         {"uri", uri}});
                    log::info("callback_sent", {{"url", o.callback_url}});
                } catch (const Error& e) {
                    log::error("callback_failed", {{"code", std::string(code_name(e.code()))}, {"message", e.what()},
                                                   {"url", o.callback_url}});
                    rc = 1;
                }
            }
        }
        loaded_done = true;
    });
    // Wait for a signal, or for startup to fail.
    for (;;) {
        timespec ts{0, 100 * 1000 * 1000};
        const int sig = sigtimedwait(&sigs, nullptr, &ts);
        if (sig == SIGINT || sig == SIGTERM) {
            log::info("shutdown", {{"signal", sig == SIGINT ? "SIGINT" : "SIGTERM"}});
            break;
        }
        if (loaded_done && rc != 0) break;
    }
    // Running streams end with CANCELLED before the server stops, so no pool thread is left
    // streaming a long generation.
    engine.stop();
    ready.join();
    for (int i = 0; i < 100 && engine.slots_busy() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let writers send the final event
    server.stop();
    http.join();
    log::info("exit", {{"code", rc}});
    return rc;
}

}  // namespace

void add_serve(CLI::App& app, int& rc) {
    auto o = std::make_shared<ServeOptions>();
    auto* sub = app.add_subcommand("serve", "Serve a model over HTTP (native SSE API and OpenAI-compatible API)");
    sub->add_option("--model,-m", o->engine.model_path, "GGUF model file")->required();
    sub->add_option("--worker-id", o->server.worker_id,
                    "Worker id reported to the orchestrator (default: worker-PID)");
    sub->add_option("--port", o->server.port, "TCP port (0 = any free port, logged as http_listening)")
        ->check(CLI::Range(0, 65535));
    sub->add_option("--host", o->server.host, "Address to listen on");
    sub->add_option("--gpu-device", o->engine.device, "CUDA device index");
    o->engine.backend = "auto";
    sub->add_option("--backend", o->engine.backend, "Compute backend (auto: cuda when a GPU is present, else cpu)")
        ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
    sub->add_option("--ctx", o->engine.n_ctx, "Context length per slot (0 = min(model context, 4096))");
    sub->add_option("--parallel", o->engine.n_parallel, "Sequences decoded together (slots)");
    sub->add_option("--threads,-t", o->engine.threads, "CPU threads (0 = all cores)");
    sub->add_option("--callback-url", o->callback_url,
                    "POST {worker_id, model_ref, vram_bytes, uri} here when ready (default: none)");
    sub->add_option("--max-queue", o->engine.max_queue, "Jobs that may wait for a slot before QUEUE_FULL");
    sub->add_option("--inference-timeout-sec", o->timeout_sec, "Per-job limit; INFERENCE_TIMEOUT after it (0 = none)");
    sub->add_option("--prefill-chunk", o->engine.prefill_chunk, "Prompt tokens fed per scheduler step");
    sub->add_option("--api-key", o->server.api_key,
                    "Require 'Authorization: Bearer KEY' on every route but /health (default: none; also "
                    "--api-key-file, WORKER_API_KEY)");
    sub->add_option("--api-key-file", o->api_key_file, "Read the API key from the first line of this file (default: none)");
    sub->add_option("--max-connections", o->server.max_connections,
                    "Open connections at most; idle ones are closed first when full")
        ->check(CLI::Range(1, 4096));
    sub->add_option("--request-timeout-sec", o->request_timeout_sec,
                    "Deadline for a request's headers and body together (slow clients get 408)");
    sub->add_option("--max-body-bytes", o->server.max_body_bytes, "Largest request body (413 beyond)")
        ->check(CLI::Range(size_t{1024}, size_t{64} << 20));
    sub->add_flag("--enable-test-faults", o->server.enable_test_faults,
                  "Tests only: honour the X-Test-Fault header on /execute (docs/api.md)");
    add_output_options(sub, o->output);
    sub->callback([o, &rc] { rc = run_serve(*o); });
}

}  // namespace wo::cli
