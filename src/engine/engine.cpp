// Engine lifecycle: background load with progress (bytes of weights made resident), job submission and
// cancellation. The scheduling loop itself is in scheduler.cpp.
#include "engine/engine.h"

#include <algorithm>
#include <ctime>
#include <filesystem>

#include "gguf/gguf.h"
#include "util/log.h"

namespace wo {

std::string utc_now_rfc3339() {
    const auto now = std::chrono::system_clock::now();
    const std::time_t t = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

namespace {

LoadedModel load_gguf_model(const EngineOptions& o, Progress& progress) {
    LoadedModel lm;
    lm.file = std::make_shared<const gguf::File>(gguf::File::open(o.model_path));
    lm.name = lm.file->find_string("general.name").value_or(std::filesystem::path(o.model_path).stem().string());
    uint64_t total = 0;
    for (const auto& t : lm.file->tensors()) total += t.n_bytes;
    progress.start(total, "load");
    lm.tokenizer = load_tokenizer(*lm.file);
    LoadOptions lo;
    lo.backend = o.backend;
    lo.n_threads = o.threads;
    lo.device = o.device;
    lo.on_weight_bytes = [&progress](uint64_t n) { progress.add(n); };
    lm.model = load_model(lm.file, lo);
    return lm;
}

}  // namespace

Engine::Engine(EngineOptions options, Loader loader) : options_(std::move(options)), loader_(std::move(loader)) {
    if (!loader_) loader_ = load_gguf_model;
    if (options_.n_parallel < 1) throw Error(Code::INVALID_ARGUMENT, "--parallel must be >= 1");
    if (options_.n_ctx < 0) throw Error(Code::INVALID_ARGUMENT, "--ctx must be >= 0");
    if (options_.prefill_chunk < 1) throw Error(Code::INVALID_ARGUMENT, "prefill chunk must be >= 1");
}

Engine::~Engine() {
    stop();
    if (thread_.joinable()) thread_.join();
}

void Engine::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
}

void Engine::start() {
    WO_CHECK(!thread_.joinable(), "Engine::start called twice");
    thread_ = std::thread([this] { run(); });
}

void Engine::run() {
    load();
    if (state() == State::Ready) schedule_loop();
}

void Engine::load() {
    log::info("model_load_start", {{"model", options_.model_path}, {"backend", options_.backend}});
    // Bytes of weights the backend holds (CPU: tensors mapped in place; CUDA: copied), as
    // model_load_progress events or a terminal line; 100% once the KV cache is reserved too.
    try {
        // Inside the try, so a failed load ends its terminal line before the error is logged.
        Progress progress("model_load_progress", {{"model", options_.model_path}});
        LoadedModel lm = loader_(options_, progress);
        WO_CHECK(lm.model && lm.tokenizer, "loader returned no model or tokenizer");
        const Hparams& hp = lm.model->hparams();
        // Token ids from the tokenizer index the embedding rows: more tokens than rows is a
        // model file whose parts do not belong together.
        if (lm.tokenizer->vocab_size() > hp.n_vocab)
            throw Error(Code::MODEL_LOAD_FAILED, "the tokenizer has " + std::to_string(lm.tokenizer->vocab_size()) +
                                                     " tokens but token_embd.weight has " + std::to_string(hp.n_vocab) +
                                                     " rows");
        int n_ctx = options_.n_ctx > 0 ? options_.n_ctx : std::min(hp.n_ctx_train, 4096);
        if (n_ctx > hp.n_ctx_train) {
            log::warn("ctx_clamped", {{"requested", n_ctx}, {"model_context", hp.n_ctx_train}});
            n_ctx = hp.n_ctx_train;
        }
        ReserveOptions ro;
        ro.n_slots = options_.n_parallel;
        ro.n_ctx = n_ctx;
        ro.max_step_tokens = options_.prefill_chunk + options_.n_parallel;
        ro.max_out_rows = options_.n_parallel;
        lm.model->reserve(ro);
        progress.finish();
        ModelInfo in;
        in.name = lm.name;
        in.arch = hp.arch;
        in.quant_kind = lm.model->quant_kind();
        in.tokenizer_kind = std::string(lm.tokenizer->kind());
        in.backend = lm.model->backend_name();
        in.chat_template = lm.tokenizer->chat_template;
        in.vocab_size = hp.n_vocab;
        in.n_ctx = n_ctx;
        in.n_ctx_train = hp.n_ctx_train;
        in.n_slots = options_.n_parallel;
        in.weight_bytes = lm.model->weight_bytes();
        in.kv_bytes = lm.model->kv_bytes();
        in.buffer_bytes = lm.model->buffer_bytes();
        in.device = lm.model->device();
        std::lock_guard lock(mu_);
        loaded_ = std::move(lm);
        info_ = std::move(in);
        state_ = State::Ready;
    } catch (const std::exception& e) {
        const auto* we = dynamic_cast<const Error*>(&e);
        const Code c = we ? we->code() : Code::INTERNAL;
        std::lock_guard lock(mu_);
        // The API reports one of its two load codes; the message keeps the precise cause.
        load_code_ = (c == Code::INSUFFICIENT_VRAM || c == Code::VRAM_OOM) ? Code::INSUFFICIENT_VRAM : Code::MODEL_LOAD_FAILED;
        load_error_ = std::string(code_name(c)) + ": " + e.what();
        state_ = State::Failed;
    }
    if (state() == State::Ready) {
        log::info("model_load_complete", {{"model", info_.name}, {"arch", info_.arch}, {"quant_kind", info_.quant_kind},
                                          {"backend", info_.backend}, {"weight_bytes", info_.weight_bytes},
                                          {"kv_bytes", info_.kv_bytes}, {"buffer_bytes", info_.buffer_bytes}, {"device", info_.device},
                                          {"ctx", info_.n_ctx}, {"slots", info_.n_slots}});
    } else {
        log::error("model_load_failed", {{"code", std::string(code_name(load_code_))}, {"message", load_error_},
                                         {"model", options_.model_path}, {"backend", options_.backend},
                                         {"gpu_device", options_.device}});
        // Jobs that queued while loading can never run.
        std::deque<std::shared_ptr<Job>> q;
        {
            std::lock_guard lock(mu_);
            q.swap(queue_);
            active_.clear();
            metrics_.queue_depth = 0;
        }
        for (auto& j : q) {
            j->push(JobEvent::error(load_code_, load_error_));
            metrics_.count(Outcome::error);
        }
    }
    // After the load's last log line, so what waits for it (serve's ready line) comes after.
    cv_.notify_all();
}

Engine::State Engine::wait_loaded() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return state_ != State::Loading; });
    return state_;
}

Engine::State Engine::state() const {
    std::lock_guard lock(mu_);
    return state_;
}

bool Engine::device_healthy() const {
    std::lock_guard lock(mu_);
    return !(state_ == State::Ready && loaded_.model && !loaded_.model->healthy());
}

std::string Engine::load_error() const {
    std::lock_guard lock(mu_);
    return load_error_;
}

Code Engine::load_error_code() const {
    std::lock_guard lock(mu_);
    return load_code_;
}

const ModelInfo& Engine::info() const {
    WO_CHECK(state() == State::Ready, "Engine::info before the model is loaded");
    return info_;
}

const Tokenizer& Engine::tokenizer() const {
    WO_CHECK(state() == State::Ready, "Engine::tokenizer before the model is loaded");
    return *loaded_.tokenizer;
}

std::shared_ptr<Job> Engine::submit(GenerateRequest request) {
    auto job = std::make_shared<Job>(std::move(request));
    {
        std::lock_guard lock(mu_);
        if (state_ == State::Failed) throw Error(load_code_, "the model failed to load: " + load_error_);
        if (stopping_) throw Error(Code::QUEUE_FULL, "the worker is shutting down");
        const auto& r = job->request;
        if (r.prompt.empty()) throw Error(Code::INVALID_REQUEST, "prompt: tokenizes to no tokens");
        if (state_ == State::Ready && static_cast<int>(r.prompt.size()) > info_.n_ctx)
            throw Error(Code::INVALID_REQUEST, "prompt: " + std::to_string(r.prompt.size()) +
                                                   " tokens exceed the context of " + std::to_string(info_.n_ctx));
        if (active_.count(r.job_id))
            throw Error(Code::INVALID_REQUEST, "job_id: '" + r.job_id + "' is already queued or running");
        if (static_cast<int>(queue_.size()) >= options_.max_queue)
            throw Error(Code::QUEUE_FULL, "queue full: " + std::to_string(queue_.size()) + " jobs waiting for " +
                                              std::to_string(options_.n_parallel) + " slots");
        active_[r.job_id] = job;
        queue_.push_back(job);
        metrics_.queue_depth = static_cast<int64_t>(queue_.size());
    }
    log::info("job_queued", {{"job_id", job->request.job_id}, {"correlation_id", job->request.correlation_id},
                             {"prompt_tokens", job->request.prompt.size()}});
    cv_.notify_all();
    return job;
}

bool Engine::cancel(const std::string& job_id) {
    std::shared_ptr<Job> job;
    bool was_queued = false;
    {
        std::lock_guard lock(mu_);
        auto it = active_.find(job_id);
        if (it == active_.end()) return false;
        job = it->second;
        job->cancel();
        // A job still waiting for a slot leaves the queue now: it ends at once and stops
        // counting against --max-queue (the scheduler would only see it when a slot frees).
        auto q = std::find(queue_.begin(), queue_.end(), job);
        if (q != queue_.end()) {
            queue_.erase(q);
            active_.erase(it);
            metrics_.queue_depth = static_cast<int64_t>(queue_.size());
            was_queued = true;
        }
    }
    log::info("job_cancel_requested", {{"job_id", job_id}, {"correlation_id", job->request.correlation_id},
                                       {"queued", was_queued}});
    if (was_queued) {
        job->push(JobEvent::error(Code::CANCELLED, "cancelled while queued"));
        metrics_.count(Outcome::cancelled);
    }
    cv_.notify_all();
    return true;
}

}  // namespace wo
