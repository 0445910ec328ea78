// AuditSink: ring, counters, bounded queue and the JSON-lines writer thread
// (see audit_sink.h; the policy is documented in docs/audit.md).
#include "exporter/events/audit_sink.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "exporter/events/event_json.h"

namespace vmtime {
namespace {

constexpr size_t kTailBytes = 64 * 1024;

std::string ReadTail(const std::string& path) {
  // O_NONBLOCK: a FIFO in its place must not hang the start-up.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return {};
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    const off_t start = st.st_size > static_cast<off_t>(kTailBytes)
                            ? st.st_size - static_cast<off_t>(kTailBytes)
                            : 0;
    out.resize(static_cast<size_t>(st.st_size - start));
    const ssize_t n = ::pread(fd, out.data(), out.size(), start);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  ::close(fd);
  return out;
}

}  // namespace

uint64_t LastEventIdInTail(const std::string& tail) {
  size_t end = tail.size();
  while (end > 0) {
    const size_t nl = end > 0 ? tail.rfind('\n', end - 1) : std::string::npos;
    const size_t begin = nl == std::string::npos ? 0 : nl + 1;
    if (end > begin) {
      const auto j = nlohmann::json::parse(tail.begin() + static_cast<std::ptrdiff_t>(begin),
                                           tail.begin() + static_cast<std::ptrdiff_t>(end), nullptr,
                                           /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("id") && j["id"].is_number_unsigned()) {
        return j["id"].get<uint64_t>();
      }
    }
    if (nl == std::string::npos) break;
    end = nl;
  }
  return 0;
}

uint64_t RecoverLastEventId(const std::string& path) {
  if (path.empty()) return 0;
  if (const uint64_t id = LastEventIdInTail(ReadTail(path)); id != 0) return id;
  return LastEventIdInTail(ReadTail(path + ".1"));
}

AuditSink::AuditSink(const Clock& clock, AuditOptions options)
    : clock_(clock), options_(std::move(options)) {
  if (options_.ring_size == 0) options_.ring_size = 1;
  if (options_.queue_size == 0) options_.queue_size = 1;
  for (const char* reason : {"queue_full", "write_error", "size_limit"}) {
    dropped_by_reason_[reason] = 0;
  }
  if (options_.file.empty()) return;
  last_id_ = RecoverLastEventId(options_.file);
  last_sync_mono_ns_ = clock_.MonotonicNs();
  writer_ = std::thread([this] { WriterLoop(); });
}

AuditSink::~AuditSink() { Close(); }

void AuditSink::Emit(Event event) {
  try {
    std::lock_guard lock(mu_);
    event.id = ++last_id_;
    if (event.time_real_ns == 0) event.time_real_ns = clock_.RealtimeNs();
    ++total_by_type_[event.type];
    if (!options_.file.empty() && !closed_) {
      if (queue_.size() >= options_.queue_size) {
        ++dropped_by_reason_["queue_full"];
      } else {
        queue_.push_back(EventToJson(event, options_.host)
                             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
                         "\n");
        cv_.notify_one();
      }
    }
    ring_.push_back(std::move(event));
    while (ring_.size() > options_.ring_size) ring_.pop_front();
  } catch (...) {
    // Never throws (bad_alloc included): the event is lost, not the caller.
  }
}

void AuditSink::Reopen() {
  std::lock_guard lock(mu_);
  reopen_ = true;
  cv_.notify_one();
}

void AuditSink::Close() {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    stop_ = true;
    cv_.notify_one();
  }
  if (writer_.joinable()) writer_.join();
}

bool AuditSink::WaitWritten(int timeout_ms) {
  std::unique_lock lock(mu_);
  return written_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                              [this] { return queue_.empty() && !busy_; });
}

EventPage AuditSink::Since(uint64_t since, size_t limit) const {
  EventPage page;
  std::lock_guard lock(mu_);
  page.last_id = last_id_;
  page.oldest_id = ring_.empty() ? 0 : ring_.front().id;
  if (!ring_.empty() && since + 1 < page.oldest_id) page.gap = true;
  for (const Event& e : ring_) {
    if (e.id <= since) continue;
    if (page.events.size() >= limit) {
      page.more = true;
      break;
    }
    page.events.push_back(e);
  }
  return page;
}

EventCounters AuditSink::Counters() const {
  std::lock_guard lock(mu_);
  return {total_by_type_, dropped_by_reason_};
}

uint64_t AuditSink::last_id() const {
  std::lock_guard lock(mu_);
  return last_id_;
}

// ---- the writer thread ----

void AuditSink::WriterLoop() {
  OpenFile();
  const auto sync_wait = std::chrono::nanoseconds(
      static_cast<int64_t>((options_.sync_interval_s > 0 ? options_.sync_interval_s : 1) * 1e9));
  std::unique_lock lock(mu_);
  while (true) {
    // A timer, not logic: wakes to sync data written since the last sync.
    cv_.wait_for(lock, sync_wait, [this] { return stop_ || reopen_ || !queue_.empty(); });
    std::vector<std::string> batch;
    batch.swap(queue_);
    const bool reopen = std::exchange(reopen_, false);
    const bool stop = stop_;
    busy_ = true;
    lock.unlock();
    if (reopen) {
      MaybeSync(true);
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      at_limit_ = false;
      OpenFile();
    }
    WriteBatch(batch);
    MaybeSync(stop);
    lock.lock();
    busy_ = false;
    written_cv_.notify_all();
    if (stop && queue_.empty()) break;
  }
  lock.unlock();
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void AuditSink::OpenFile() {
  if (fd_ >= 0) return;
  fd_ = ::open(options_.file.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    if (!failing_) {
      spdlog::error(
          "audit: cannot open {}: {}; events are counted as dropped until it can be "
          "written (vmtime_events_dropped_total{{reason=\"write_error\"}})",
          options_.file, std::strerror(errno));
    }
    failing_ = true;
  }
}

void AuditSink::CountDropped(const std::string& reason, uint64_t n) {
  if (n == 0) return;
  std::lock_guard lock(mu_);
  dropped_by_reason_[reason] += n;
}

void AuditSink::WriteBatch(std::vector<std::string>& batch) {
  if (batch.empty()) return;
  if (fd_ < 0) OpenFile();  // retried once per batch: the path may have become writable
  uint64_t write_errors = 0;
  uint64_t over_limit = 0;
  for (std::string& line : batch) {
    if (fd_ < 0) {
      ++write_errors;
      continue;
    }
    if (options_.max_size_bytes > 0) {
      struct stat st {};
      // fstat each time: an external copytruncate may have emptied the file.
      const uint64_t size = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
      if (size + line.size() + (torn_ ? 1 : 0) > options_.max_size_bytes) {
        if (!at_limit_) {
          spdlog::error(
              "audit: {} reached audit.max_size_bytes ({} bytes); further events are "
              "dropped (reason \"size_limit\") until it is rotated and reopened (SIGHUP)",
              options_.file, options_.max_size_bytes);
        }
        at_limit_ = true;
        ++over_limit;
        continue;
      }
      at_limit_ = false;
    }
    if (!WriteLine(line)) ++write_errors;
  }
  CountDropped("write_error", write_errors);
  CountDropped("size_limit", over_limit);
}

bool AuditSink::WriteLine(const std::string& line) {
  const std::string& text = torn_ ? "\n" + line : line;
  struct stat st {};
  const off_t before = ::fstat(fd_, &st) == 0 ? st.st_size : -1;
  size_t done = 0;
  int err = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd_, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : ENOSPC;
      break;
    }
    done += static_cast<size_t>(n);
  }
  if (done == text.size()) {
    if (failing_) spdlog::info("audit: writing {} works again", options_.file);
    failing_ = false;
    torn_ = false;
    unsynced_ = true;
    return true;
  }
  // Cut a torn line off again; if that fails, the next line starts on a new one.
  if (done > 0) torn_ = before < 0 || ::ftruncate(fd_, before) != 0;
  if (!failing_) {
    spdlog::error(
        "audit: cannot write {}: {}; events are counted as dropped until it can be "
        "written (vmtime_events_dropped_total{{reason=\"write_error\"}})",
        options_.file, std::strerror(err));
  }
  failing_ = true;
  return false;
}

void AuditSink::MaybeSync(bool force) {
  if (fd_ < 0 || !unsynced_) return;
  const int64_t now = clock_.MonotonicNs();
  if (!force && options_.sync_interval_s > 0 &&
      now - last_sync_mono_ns_ < static_cast<int64_t>(options_.sync_interval_s * 1e9)) {
    return;
  }
  ::fdatasync(fd_);
  unsynced_ = false;
  last_sync_mono_ns_ = now;
}

std::pair<int, std::string> ServeEvents(const AuditSink& sink, std::string_view query) {
  auto q = ParseEventsQuery(query);
  if (!q) return {400, "bad /api/v1/events query: " + q.error().message + "\n"};
  const EventPage page = sink.Since(q->since, q->limit);
  nlohmann::json j = nlohmann::json::object();
  nlohmann::json events = nlohmann::json::array();
  for (const Event& e : page.events) events.push_back(EventToJson(e, sink.options().host));
  j["events"] = std::move(events);
  j["last_id"] = page.last_id;
  j["oldest_id"] = page.oldest_id;
  j["more"] = page.more;
  j["gap"] = page.gap;
  j["next_since"] = page.events.empty() ? q->since : page.events.back().id;
  return {200, j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n"};
}

}  // namespace vmtime
