// The engine: one model for the process lifetime, loaded on a background thread, and a
// scheduler thread that owns it and runs continuous batching over fixed slots. Other threads
// only submit jobs, cancel them and read their event channels.
#pragma once
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/job.h"
#include "engine/metrics.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "util/progress.h"

namespace wo {

struct EngineOptions {
    std::string model_path;
    std::string backend = "cpu";
    int device = 0;
    int threads = 0;       // CPU threads (0 = all cores)
    int n_ctx = 0;         // per slot; 0 = min(model context, 4096)
    int n_parallel = 4;    // slots
    int max_queue = 64;    // waiting jobs beyond which submit() throws QUEUE_FULL
    int prefill_chunk = 256;  // prompt tokens per step, so a long prompt never stalls decoding
    int64_t timeout_ms = 300000;  // per job, from admission to a slot
    int pipeline_depth = 0;       // steps in flight before the host reads ids; 0 = the model's
};

// What the loader produces; the engine owns it from then on.
struct LoadedModel {
    std::shared_ptr<const gguf::File> file;  // may be null for test doubles
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::string name;  // general.name, else the file name
};

// Cached facts for /health and the OpenAI routes, fixed once loaded.
struct ModelInfo {
    std::string name, arch, quant_kind, tokenizer_kind, backend, chat_template;
    int vocab_size = 0, n_ctx = 0, n_ctx_train = 0, n_slots = 0;
    uint64_t weight_bytes = 0, kv_bytes = 0, buffer_bytes = 0;
    std::string device;  // e.g. "NVIDIA H200" or "cpu"
};

class Engine {
public:
    enum class State { Loading, Ready, Failed };
    // A loader reports its work on `progress` (start with the total bytes, add, no finish: the
    // engine finishes it once the KV cache is reserved); a test double may ignore it.
    using Loader = std::function<LoadedModel(const EngineOptions&, Progress& progress)>;

    // `loader` defaults to reading options.model_path (GGUF model + its tokenizer).
    explicit Engine(EngineOptions options, Loader loader = {});
    ~Engine();  // cancels every job and joins the scheduler
    Engine(const Engine&) = delete;
    Engine& operator=(const Engine&) = delete;

    // Starts the thread that loads the model (progress logged) and then schedules.
    void start();
    // Ends every queued and running job with CANCELLED and refuses new ones; idempotent.
    // Returns without waiting for a model that is still loading.
    void stop();
    // Blocks until the model is Ready or Failed; returns the state.
    State wait_loaded();
    State state() const;
    // False after the device hit an error it cannot recover from (a GPU fault fails every later
    // step): /health then reports the worker unhealthy so it gets restarted.
    bool device_healthy() const;
    std::string load_error() const;        // Failed: "CODE: message"
    Code load_error_code() const;

    const ModelInfo& info() const;          // Ready only
    const Tokenizer& tokenizer() const;     // Ready only

    // Queues a job. Throws Error(QUEUE_FULL) when the queue is full, Error(INVALID_REQUEST) when
    // job_id is already active or the prompt does not fit a slot's context.
    std::shared_ptr<Job> submit(GenerateRequest request);
    // Cancels an active or queued job; false when no such job is known (already finished).
    bool cancel(const std::string& job_id);

    int slots_busy() const { return static_cast<int>(metrics_.busy_slots.load()); }
    int slots_total() const { return options_.n_parallel; }
    Metrics& metrics() { return metrics_; }
    const EngineOptions& options() const { return options_; }

private:
    struct Slot;
    struct InFlight;
    void run();
    void load();
    void schedule_loop();
    void check_jobs(std::vector<Slot>& slots);
    bool submit_step(std::vector<Slot>& slots, std::deque<InFlight>& flight);
    void complete_step(InFlight& f);
    void fail_step(const InFlight& f, const std::exception& e);
    void admit(std::vector<Slot>& slots);
    void finish(Slot& s, const JobEvent& terminal);

    EngineOptions options_;
    Loader loader_;
    LoadedModel loaded_;
    ModelInfo info_;
    Metrics metrics_;

    mutable std::mutex mu_;
    std::condition_variable cv_;
    State state_ = State::Loading;
    std::string load_error_;
    Code load_code_ = Code::INTERNAL;
    bool stopping_ = false;
    std::deque<std::shared_ptr<Job>> queue_;
    std::map<std::string, std::shared_ptr<Job>> active_;  // queued or running, by job_id
    std::thread thread_;
};

// RFC 3339 UTC with milliseconds, e.g. 2026-11-24T08:00:00.123Z.
std::string utc_now_rfc3339();

}  // namespace wo
