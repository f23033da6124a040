// Small pieces every route shares: JSON responses, correlation ids, SSE framing, and
// streaming a job's events to a client with disconnect detection.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "engine/engine.h"

namespace httplib {
struct Request;
struct Response;
}  // namespace httplib

namespace wo {

// HTTP status of each API error code (the table in docs/api.md).
int http_status(Code c);
// The Code whose name is `name` (X-Test-Fault), if any.
std::optional<Code> code_from_name(const std::string& name);
// Whether a client may retry the same request later (capacity or transient device state).
bool retriable(Code c);

// Invalid UTF-8 in a string (e.g. echoed from a request) is replaced, never thrown.
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
// {"error":{"code","message","retriable","correlation_id"}} with the code's HTTP status.
void send_error(httplib::Response& res, Code c, const std::string& message, const std::string& correlation_id);
// The same body for errors of the HTTP layer (401, 403, 404, 405, 408, 411, 413, ...), whose
// codes are not engine codes: UNAUTHORIZED, FORBIDDEN, NOT_FOUND, METHOD_NOT_ALLOWED, ...
void send_http_error(httplib::Response& res, int status, const std::string& code, const std::string& message,
                     const std::string& correlation_id);
// Compares a presented secret with the key in time that depends only on the key's length.
bool constant_time_equal(std::string_view given, std::string_view key);

// X-Correlation-Id when it matches [A-Za-z0-9-]{1,64}, else a fresh UUIDv4; echoed on the response.
std::string correlation_id(const httplib::Request& req, httplib::Response& res);
std::string uuid_v4();
uint64_t random_seed();

// `event: NAME\ndata: JSON\n\n` (name omitted when empty: OpenAI streams have data lines only).
std::string sse(std::string_view event, const nlohmann::json& data);

// Turns one job event into bytes for the wire ("" to send nothing). `last` is set when
// nothing may follow (the formatter saw the terminal event).
using EventFormatter = std::function<std::string(const JobEvent&, bool& last)>;

// Streams `job` as text/event-stream through `fmt`. A failed write or a closed connection
// cancels the job, so its slot is freed within one scheduler step.
void stream_job(httplib::Response& res, Engine& engine, std::shared_ptr<Job> job, EventFormatter fmt);

// For a whole (not streamed) answer: hands `job`'s events to `take` until it returns true (the
// terminal event). A client that leaves (checked every 50 ms whether or not tokens flow) cancels
// the job, which then ends with CANCELLED within a step; nobody would read the answer.
void collect_job(Engine& engine, Job& job, const std::function<bool(const JobEvent&)>& take);

// Counts Unicode code points; false when `s` is not valid UTF-8.
bool utf8_length(std::string_view s, size_t& n);
// `s` with every byte that is not part of a valid UTF-8 character replaced by U+FFFD (token
// pieces can be partial characters; JSON needs valid text).
std::string utf8_lossy(std::string_view s);

}  // namespace wo
