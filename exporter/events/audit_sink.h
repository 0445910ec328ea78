// AuditSink: the EventSink of the exporter (docs/audit.md). Emit assigns the
// next id (monotonically increasing; after a restart it continues from the
// last id found at the tail of the trail), stamps the host name, keeps the
// event in a bounded in-memory ring (served by /api/v1/events) and counts it
// by type (vmtime_events_total). When audit.file is set, the event is also
// queued for the JSON-lines writer thread: the queue is bounded, and an event
// that finds it full is dropped and counted (vmtime_events_dropped_total
// {reason="queue_full"}); Emit never waits for the disk.
//
// The writer appends one line per event with write(2) on an O_APPEND file
// (so logrotate's copytruncate works too), fdatasync()s at most every
// sync_interval_s, reopens the path when asked (SIGHUP, after logrotate's
// rename + create), stops appending at max_size_bytes (the rest is dropped,
// reason "size_limit", until a reopen finds room) and counts events it could
// not write (reason "write_error": unwritable file, full disk), logging the
// first failure once and the recovery once. A torn line from a short write
// is cut off again (ftruncate) so the file stays valid JSON lines.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "exporter/core/clock.h"
#include "exporter/events/event.h"
#include "exporter/model/snapshot.h"

namespace vmtime {

struct AuditOptions {
  std::string file;                        // empty: ring and counters only, no trail
  uint64_t max_size_bytes = 256ull << 20;  // 0: unbounded
  double sync_interval_s = 5;              // fdatasync at most this often; 0: after every batch
  size_t queue_size = 10000;               // events waiting for the writer
  size_t ring_size = 1000;                 // events kept in memory for /api/v1/events
  std::string host;                        // written into every event ("host")
};

// One page of the ring (/api/v1/events?since=ID&limit=N).
struct EventPage {
  std::vector<Event> events;  // id > since, oldest first, at most `limit`
  uint64_t last_id = 0;       // newest id assigned so far (0: none yet)
  uint64_t oldest_id = 0;     // oldest id still in the ring (0: ring empty)
  bool more = false;          // more events after the last one returned
  bool gap = false;           // events after `since` were already evicted from the ring
};

// The id of the last complete event line in `tail` (the end of a trail
// file), or 0 when none parses. Lines that are not JSON objects with a
// numeric "id" are skipped (a torn last line included).
uint64_t LastEventIdInTail(const std::string& tail);

// The last id written to the trail at `path`, else in `path`.1 (logrotate's
// first rotated name), else 0. Reads at most the last 64 KiB of a file.
uint64_t RecoverLastEventId(const std::string& path);

class AuditSink final : public EventSink {
 public:
  // Recovers the last id from the trail and starts the writer thread (only
  // when options.file is set).
  AuditSink(const Clock& clock, AuditOptions options);
  ~AuditSink() override;
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  void Emit(Event event) override;
  // The writer closes and reopens the file before its next write (SIGHUP).
  void Reopen();
  // Writes what is queued, syncs, and stops the writer (idempotent).
  void Close();
  // Blocks until the writer has handled every event emitted so far, or
  // `timeout_ms` passed (tests, shutdown). True when it has.
  bool WaitWritten(int timeout_ms);

  EventPage Since(uint64_t since, size_t limit) const;
  EventCounters Counters() const;
  uint64_t last_id() const;
  const AuditOptions& options() const { return options_; }

 private:
  void WriterLoop();
  // The writer's file handling; called on the writer thread only.
  void OpenFile();
  void WriteBatch(std::vector<std::string>& batch);
  bool WriteLine(const std::string& line);
  void CountDropped(const std::string& reason, uint64_t n);
  void MaybeSync(bool force);

  const Clock& clock_;
  AuditOptions options_;  // sanitised in the constructor, then read only

  mutable std::mutex mu_;
  std::condition_variable cv_;          // queue_ got work, or reopen/stop
  std::condition_variable written_cv_;  // written_id_ advanced
  uint64_t last_id_ = 0;
  std::deque<Event> ring_;
  std::map<std::string, uint64_t> total_by_type_;
  std::map<std::string, uint64_t> dropped_by_reason_;
  std::vector<std::string> queue_;  // JSON lines waiting for the writer
  bool busy_ = false;               // the writer holds a batch
  bool reopen_ = false;
  bool stop_ = false;
  bool closed_ = false;
  std::thread writer_;

  // Writer thread only.
  int fd_ = -1;
  bool failing_ = false;   // the last write or open failed (logged once)
  bool at_limit_ = false;  // max_size_bytes reached (logged once per file)
  bool torn_ = false;      // a torn line could not be cut off: start with '\n'
  bool unsynced_ = false;
  int64_t last_sync_mono_ns_ = 0;
};

}  // namespace vmtime

namespace vmtime {

// GET /api/v1/events?since=ID&limit=N (docs/api.md): (200, JSON page) or
// (400, the query error as text).
std::pair<int, std::string> ServeEvents(const AuditSink& sink, std::string_view query);

}  // namespace vmtime
