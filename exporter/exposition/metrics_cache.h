// MetricsCache: the /metrics body made once per published snapshot.
//
// The plain text is rendered by the first plain request of a new snapshot
// (lazily: Prometheus always asks for gzip, so most exporters never make
// it) and every later request of that snapshot is served the same bytes.
// The gzip form is made by GzipBody (gzip_body.h), which recompresses only
// the chunks of VMs whose series changed since the body it made before, at
// level kGzipLevel (docs/performance.md has the measurements behind both).
// Requests that arrive while a body is being made wait for that one make
// instead of starting their own. A body is shared (shared_ptr) with the
// requests still sending it, so a new snapshot never waits for slow readers
// and at most the previous body lives beside the current one.
//
// Off the scrape path: with `refresh_in_background`, a thread of the cache
// makes the gzip body of every newly published snapshot (SnapshotHolder
// generation); it starts after the first gzip request and pauses once
// kRefreshIdlePublishes snapshots in a row were published without one (an
// exporter nobody scrapes renders nothing). While it runs, a gzip request
// whose snapshot's body is not made yet is served the newest body made
// (one publish older, at most one make's time: the snapshot is itself up to
// a harvest behind the samples), so no gzip scrape renders or compresses;
// the first gzip request, and the first after a pause, make the body.
//
// Everything on /metrics is a function of the snapshot: the cache adds no
// per-scrape series (docs/metrics.md).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "exporter/core/result.h"
#include "exporter/exposition/gzip_body.h"
#include "exporter/exposition/response_body.h"
#include "exporter/exposition/snapshot_holder.h"

namespace vmtime::exposition {

// zlib level of the gzip body, by measurement (bench BM_Gzip at 10,000
// VMs, docs/performance.md): level 1 packs the 19.4 MB text 8.6:1 in 98 ms
// of CPU; level 6 (zlib's default) gains 13 % in size (9.8:1) for 2.6 times
// the CPU (254 ms), level 3 little of either.
constexpr int kGzipLevel = 1;

// `data` as one gzip member (RFC 1952) at zlib level `level` (0..9).
Result<std::string> Gzip(std::string_view data, int level);
// The inverse (one gzip member), for tests and tools.
Result<std::string> Gunzip(std::string_view data);

// True when an Accept-Encoding header value accepts gzip: `gzip` (or
// `x-gzip`) listed with a q-value above 0, or, when neither is listed, `*`
// with a q-value above 0. Codings are case-insensitive, whitespace around
// elements and parameters is ignored, and an element with a malformed
// q-value counts as not acceptable (the plain body is always acceptable).
bool AcceptsGzip(std::string_view accept_encoding);

class MetricsCache {
 public:
  // Shared with the requests still sending it (response_body.h).
  using Body = std::shared_ptr<const ResponseBody>;

  // Snapshots published without a gzip request in between after which the
  // background refresh pauses: 60 s at the poller's fastest publish rate
  // (4 per second), so a Prometheus scraping every 15 s or 60 s keeps it on.
  static constexpr uint64_t kRefreshIdlePublishes = 240;

  // `chunk_vms`: GzipBody's expected VMs per chunk (benchmarks).
  explicit MetricsCache(const SnapshotHolder& snapshots, int gzip_level = kGzipLevel,
                        bool refresh_in_background = false, size_t chunk_vms = GzipBody::kChunkVms);
  ~MetricsCache();
  MetricsCache(const MetricsCache&) = delete;
  MetricsCache& operator=(const MetricsCache&) = delete;

  // The body of the current snapshot, plain or gzip; renders (or
  // compresses) it on the first call for that snapshot, and concurrent
  // callers for the same snapshot wait for that one render. Errors (the
  // gzip stream cannot be made) are values; the next call tries again.
  Result<Body> Get(bool gzip);

  // The size of the current snapshot's body if it is already made, without
  // rendering anything (HEAD).
  std::optional<size_t> PeekSize(bool gzip) const;

  // How many times the text was rendered / the gzip body made, and how
  // many of those gzip bodies the background refresh made (tests, logs).
  uint64_t renders() const { return renders_.load(); }
  uint64_t compressions() const { return compressions_.load(); }
  uint64_t background_compressions() const { return background_compressions_.load(); }
  uint64_t refresh_wakeups() const { return refresh_wakeups_.load(); }
  // Gzip requests served the newest made body while the refresh made theirs.
  uint64_t stale_serves() const { return stale_serves_.load(); }
  // Of the last gzip body: chunks, and how many were made anew.
  std::pair<size_t, size_t> last_gzip_chunks() const;

 private:
  using Pending = std::shared_future<Body>;
  // The bodies of one snapshot; a future is valid() once its making started.
  struct Entry {
    std::weak_ptr<const Snapshot> source;
    Pending plain;
    Pending gzip;
  };

  Result<Body> Fetch(bool gzip);
  // Makes `promise`'s body, then publishes it; on failure forgets the
  // entry so that the next request retries.
  void Make(std::promise<Body>& promise, bool gzip, const Snapshot& snap,
            const std::shared_ptr<const Snapshot>& source);
  // The background refresh (see the top of this file).
  // `seen`: the generation already current when the cache was made.
  void Refresh(std::stop_token stop, uint64_t seen);

  const SnapshotHolder& snapshots_;
  const int gzip_level_;
  mutable std::mutex mu_;  // guards entry_
  Entry entry_;
  std::atomic<size_t> last_plain_bytes_{0};  // reserve hint for the next render
  std::atomic<uint64_t> renders_{0};
  std::atomic<uint64_t> compressions_{0};
  std::atomic<uint64_t> background_compressions_{0};
  std::atomic<uint64_t> refresh_wakeups_{0};  // publishes the refresh looked at
  std::atomic<uint64_t> stale_serves_{0};
  Body newest_gzip_;            // guarded by mu_: the last gzip body made
  mutable std::mutex gzip_mu_;  // guards gzip_body_ (one make at a time)
  GzipBody gzip_body_;
  // Publishes seen by the refresh since the last gzip request.
  std::atomic<uint64_t> publishes_unscraped_{kRefreshIdlePublishes};
  std::jthread refresher_;  // last: stopped and joined before the rest goes
};

}  // namespace vmtime::exposition
