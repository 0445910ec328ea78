// The per-snapshot /metrics cache, gzip and Accept-Encoding (see the header).
#include "exporter/exposition/metrics_cache.h"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <stdexcept>
#include <utility>

#include "exporter/exposition/metrics.h"

namespace vmtime::exposition {
namespace {

// zlib's windowBits for a gzip wrapper (15-bit window + 16).
constexpr int kGzipWindowBits = 15 + 16;
constexpr size_t kChunkBytes = 64 * 1024;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsLower(std::string_view s, std::string_view lower) {
  if (s.size() != lower.size()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
    if (c != lower[i]) return false;
  }
  return true;
}

// RFC 9110 qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3"0" ], in thousandths.
std::optional<int> ParseQ(std::string_view q) {
  if (q.empty() || (q[0] != '0' && q[0] != '1')) return std::nullopt;
  int thousandths = q[0] == '1' ? 1000 : 0;
  if (q.size() == 1) return thousandths;
  if (q[1] != '.' || q.size() > 5) return std::nullopt;
  int scale = 100;
  for (const char c : q.substr(2)) {
    if (c < '0' || c > '9') return std::nullopt;
    thousandths += (c - '0') * scale;
    scale /= 10;
  }
  if (thousandths > 1000) return std::nullopt;
  return thousandths;
}

// The weight of one Accept-Encoding element ("gzip;q=0.5"), 0 when malformed.
int Weight(std::string_view params) {
  int q = 1000;
  while (!params.empty()) {
    const size_t semi = params.find(';');
    const std::string_view p = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    const size_t eq = p.find('=');
    if (eq == std::string_view::npos || !EqualsLower(Trim(p.substr(0, eq)), "q")) continue;
    q = ParseQ(Trim(p.substr(eq + 1))).value_or(0);
  }
  return q;
}

}  // namespace

bool AcceptsGzip(std::string_view accept_encoding) {
  std::optional<bool> gzip, any;
  while (!accept_encoding.empty()) {
    const size_t comma = accept_encoding.find(',');
    const std::string_view element = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    const size_t semi = element.find(';');
    const std::string_view coding = Trim(element.substr(0, semi));
    const int q = semi == std::string_view::npos ? 1000 : Weight(element.substr(semi + 1));
    if (EqualsLower(coding, "gzip") || EqualsLower(coding, "x-gzip")) {
      gzip = gzip.value_or(false) || q > 0;
    } else if (coding == "*") {
      any = any.value_or(false) || q > 0;
    }
  }
  return gzip ? *gzip : any.value_or(false);
}

Result<std::string> Gzip(std::string_view data, int level) {
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, kGzipWindowBits, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return Error{"gzip: deflateInit2 failed at level " + std::to_string(level)};
  }
  std::string out;
  out.reserve(data.size() / 8 + kChunkBytes);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  size_t in_left = data.size();
  int rc = Z_OK;
  while (rc == Z_OK) {
    if (zs.avail_in == 0 && in_left > 0) {
      zs.avail_in = static_cast<uInt>(std::min<size_t>(in_left, std::numeric_limits<uInt>::max()));
      in_left -= zs.avail_in;
    }
    const size_t used = out.size();
    out.resize(used + kChunkBytes);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs.avail_out = kChunkBytes;
    rc = deflate(&zs, in_left == 0 ? Z_FINISH : Z_NO_FLUSH);
    out.resize(used + kChunkBytes - zs.avail_out);
    if (rc == Z_BUF_ERROR) rc = Z_OK;  // no progress possible this round: more room
  }
  deflateEnd(&zs);
  if (rc != Z_STREAM_END)
    return Error{"gzip: deflate failed (zlib error " + std::to_string(rc) + ")"};
  out.shrink_to_fit();
  return out;
}

Result<std::string> Gunzip(std::string_view data) {
  z_stream zs{};
  if (inflateInit2(&zs, kGzipWindowBits) != Z_OK) return Error{"gunzip: inflateInit2 failed"};
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(std::min<size_t>(data.size(), std::numeric_limits<uInt>::max()));
  std::string out;
  int rc = Z_OK;
  while (rc == Z_OK) {
    const size_t used = out.size();
    out.resize(used + kChunkBytes);
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + used);
    zs.avail_out = kChunkBytes;
    rc = inflate(&zs, Z_NO_FLUSH);
    out.resize(used + kChunkBytes - zs.avail_out);
  }
  inflateEnd(&zs);
  if (rc != Z_STREAM_END) {
    return Error{"gunzip: not a complete gzip stream (zlib error " + std::to_string(rc) + ")"};
  }
  return out;
}

MetricsCache::MetricsCache(const SnapshotHolder& snapshots, int gzip_level,
                           bool refresh_in_background, size_t chunk_vms)
    : snapshots_(snapshots), gzip_level_(gzip_level), gzip_body_(gzip_level, chunk_vms) {
  if (refresh_in_background) {
    const uint64_t seen = snapshots_.generation();  // before the thread: no publish is missed
    refresher_ = std::jthread([this, seen](std::stop_token stop) { Refresh(stop, seen); });
  }
}

MetricsCache::~MetricsCache() = default;  // refresher_ stops and joins first

Result<MetricsCache::Body> MetricsCache::Get(bool gzip) {
  if (!gzip) return Fetch(false);
  const bool refreshing =
      refresher_.joinable() && publishes_unscraped_.exchange(0) < kRefreshIdlePublishes;
  if (refreshing) {
    // The refresh makes the current snapshot's body (or is about to): serve
    // the newest one made instead of making it on the scrape path.
    std::lock_guard lock(mu_);
    const bool current_ready =
        entry_.gzip.valid() && entry_.source.lock() == snapshots_.Get() &&
        entry_.gzip.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    if (!current_ready && newest_gzip_) {
      ++stale_serves_;
      return newest_gzip_;
    }
  }
  return Fetch(true);
}

void MetricsCache::Refresh(std::stop_token stop, uint64_t seen) {
  while (!stop.stop_requested()) {
    seen = snapshots_.WaitNewer(seen, stop);
    if (stop.stop_requested()) return;
    const bool idle = publishes_unscraped_.fetch_add(1) >= kRefreshIdlePublishes;
    ++refresh_wakeups_;
    if (idle) continue;
    const uint64_t before = compressions_.load();
    auto body = Fetch(/*gzip=*/true);
    if (!body.ok()) {
      spdlog::warn("metrics: background gzip of a new snapshot failed: {}", body.error().message);
    } else if (compressions_.load() != before) {
      ++background_compressions_;
    }
  }
}

Result<MetricsCache::Body> MetricsCache::Fetch(bool gzip) {
  std::shared_ptr<const Snapshot> snap;
  std::promise<Body> make;
  bool own = false;
  Pending pending;
  {
    std::lock_guard lock(mu_);
    // Read under mu_, so the entry only ever moves to a newer snapshot.
    snap = snapshots_.Get();
    if (entry_.source.lock() != snap || (!entry_.plain.valid() && !entry_.gzip.valid())) {
      entry_ = Entry{snap, {}, {}};
    }
    Pending& slot = gzip ? entry_.gzip : entry_.plain;
    if (!slot.valid()) {
      slot = make.get_future().share();
      own = true;
    }
    pending = slot;
  }
  if (own) Make(make, gzip, *snap, snap);
  try {
    return pending.get();
  } catch (const std::exception& e) {
    return Error{e.what()};
  }
}

void MetricsCache::Make(std::promise<Body>& promise, bool gzip, const Snapshot& snap,
                        const std::shared_ptr<const Snapshot>& source) {
  try {
    if (!gzip) {
      const size_t last = last_plain_bytes_.load();
      auto text = std::make_shared<const ResponseBody>(
          RenderText(snap, last > 0 ? last + last / 32 + 4096 : 0));
      ++renders_;
      last_plain_bytes_ = text->size();
      promise.set_value(std::move(text));
      return;
    }
    Result<ResponseBody> packed = Error{""};
    {
      std::lock_guard lock(gzip_mu_);
      packed = gzip_body_.Make(snap);
    }
    if (!packed.ok()) throw std::runtime_error(packed.error().message);
    ++compressions_;
    auto body = std::make_shared<const ResponseBody>(std::move(packed).value());
    {
      std::lock_guard lock(mu_);
      // Only while no newer snapshot was asked for: newest_gzip_ never goes back.
      if (entry_.source.lock() == source) newest_gzip_ = body;
    }
    promise.set_value(std::move(body));
  } catch (...) {
    promise.set_exception(std::current_exception());
    std::lock_guard lock(mu_);
    if (entry_.source.lock() == source) entry_ = Entry{};  // the next request retries
  }
}

std::pair<size_t, size_t> MetricsCache::last_gzip_chunks() const {
  std::lock_guard lock(gzip_mu_);
  return {gzip_body_.chunks(), gzip_body_.chunks_made()};
}

std::optional<size_t> MetricsCache::PeekSize(bool gzip) const {
  const auto snap = snapshots_.Get();
  std::lock_guard lock(mu_);
  if (entry_.source.lock() != snap) return std::nullopt;
  const Pending& body = gzip ? entry_.gzip : entry_.plain;
  if (!body.valid() || body.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    return std::nullopt;
  }
  try {
    return body.get()->size();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace vmtime::exposition
