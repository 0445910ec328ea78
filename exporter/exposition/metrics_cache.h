// MetricsCache: the /metrics body rendered once per published snapshot.
//
// The snapshot changes once per poll round (or harvest), scrapes do not, so
// the text is rendered by the first scrape of a new snapshot (lazily: a
// snapshot nobody scrapes costs nothing) and every later scrape of that
// snapshot is served the same bytes. Scrapers that arrive while it renders
// wait for that one render instead of starting their own. The gzip form is
// made the same way, once per snapshot, on the first request that accepts
// gzip (Prometheus always does), at level kGzipLevel (docs/performance.md
// has the measurement behind it). A body is shared (shared_ptr) with the
// requests still sending it, so a new snapshot never waits for slow readers
// and at most the previous body lives beside the current one.
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
#include <string>
#include <string_view>

#include "exporter/core/result.h"
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
  using Body = std::shared_ptr<const std::string>;

  explicit MetricsCache(const SnapshotHolder& snapshots, int gzip_level = kGzipLevel)
      : snapshots_(snapshots), gzip_level_(gzip_level) {}

  // The body of the current snapshot, plain or gzip; renders (or
  // compresses) it on the first call for that snapshot, and concurrent
  // callers for the same snapshot wait for that one render. Errors (the
  // gzip stream cannot be made) are values; the next call tries again.
  Result<Body> Get(bool gzip);

  // The size of the current snapshot's body if it is already made, without
  // rendering anything (HEAD).
  std::optional<size_t> PeekSize(bool gzip) const;

  // How many times the text was rendered / compressed (tests, logs).
  uint64_t renders() const { return renders_.load(); }
  uint64_t compressions() const { return compressions_.load(); }

 private:
  using Pending = std::shared_future<Body>;
  // The bodies of one snapshot; a future is valid() once its making started.
  struct Entry {
    std::weak_ptr<const Snapshot> source;
    Pending plain;
    Pending gzip;
  };

  // Makes `promise`'s body (`gzip` from `plain`), then publishes it; on
  // failure forgets the entry so that the next request retries.
  void Make(std::promise<Body>& promise, bool gzip, const Snapshot& snap, const Pending& plain,
            const std::shared_ptr<const Snapshot>& source);

  const SnapshotHolder& snapshots_;
  const int gzip_level_;
  mutable std::mutex mu_;  // guards entry_
  Entry entry_;
  std::atomic<size_t> last_plain_bytes_{0};  // reserve hint for the next render
  std::atomic<uint64_t> renders_{0};
  std::atomic<uint64_t> compressions_{0};
};

}  // namespace vmtime::exposition
