// See metadata_reader.h.
#include "exporter/collectors/libvirt/metadata_reader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string_view>
#include <unordered_map>

#include "exporter/collectors/libvirt/domain_metadata.h"
#include "exporter/core/worker_pool.h"

namespace vmtime::libvirt {
namespace {

constexpr std::chrono::milliseconds kShutdownGrace{200};
constexpr std::chrono::milliseconds kWatchdogPeriod{500};

// What one read found: the metadata and the raw text it came from (so the
// same bad content is logged once), or the error of the libvirt call.
struct ReadOutcome {
  bool call_failed = false;
  std::string error;
  std::string raw;  // every namespace's text, concatenated, for "same as before"
  DomainMetadata metadata;
  std::vector<std::string> problems;
};

// Blocking part of a read: touches only its arguments (co-owned or copied).
ReadOutcome ReadDomain(JobContext& ctx, const Clock& clock, LibvirtApi& api,
                       const MetadataOptions& o, const std::string& uuid, const std::string& name) {
  ReadOutcome out;
  const auto deadline_ns = static_cast<int64_t>(std::max(0.01, o.call_deadline_s) * 1e9);
  auto read = [&](const char* ns) -> std::optional<std::string> {
    if (out.call_failed || !ctx.ArmDeadline(clock.MonotonicNs() + deadline_ns)) {
      out.call_failed = true;
      return std::nullopt;
    }
    Result<std::optional<std::string>> got = api.GetMetadata(uuid, name, ns);
    if (!got.ok()) {
      out.call_failed = true;
      out.error = got.error().message;
      return std::nullopt;
    }
    if (*got) out.raw += **got;
    out.raw += '\0';
    return *got;
  };
  if (o.vmtime) {
    if (auto xml = read(kMetadataNamespace)) {
      auto parsed = ParseVmtimeMetadata(*xml);
      if (parsed.ok()) {
        out.metadata = std::move(parsed->metadata);
        out.problems = std::move(parsed->problems);
      } else {
        out.problems.push_back(parsed.error().message);
      }
    }
  }
  if (o.nova) {
    for (const char* ns : kNovaNamespaces) {
      auto xml = read(ns);
      if (!xml) continue;
      auto parsed = ParseNovaMetadata(*xml);
      if (!parsed.ok()) {
        out.problems.push_back(std::string("nova: ") + parsed.error().message);
        break;
      }
      for (auto& p : parsed->problems) out.problems.push_back("nova: " + p);
      MergeLabels(out.metadata, parsed->metadata, out.problems);
      break;
    }
  }
  return out;
}

}  // namespace

struct MetadataReader::Impl {
  Impl(const Clock& c, std::shared_ptr<LibvirtApi> a, MetadataOptions o)
      : clock(c), api(std::move(a)), options(o) {}

  struct Entry {
    SharedString name;
    // Last read; null while never read or read without metadata (most
    // domains: a pointer, not a DomainMetadata, in each of 10,000 entries).
    std::unique_ptr<const DomainMetadata> current;
    bool handed_out = true;  // `current` already taken by TakeChanged
    // Hash of the content last read (its problems, if any, were logged then):
    // a hash, not the text, which is kept per domain.
    size_t logged_raw_hash = 0;
    bool queued = false;
    uint64_t seen_pass = 0;  // the last Reconcile whose list named it
  };

  void Enqueue(const SharedString& uuid, Entry& e, bool urgent) {
    if (e.queued && !urgent) return;
    e.queued = true;
    JobOptions jo;
    jo.key = uuid.str();
    jo.urgent = urgent;
    jo.on_abandon = [this, uuid, name = e.name] {
      spdlog::warn(
          "libvirt: metadata read of domain '{}' exceeded {} s; retried on its next "
          "metadata event or reconnect",
          name, options.call_deadline_s);
    };
    auto job = [this, uuid, api_ref = api, opts = options, clk = &clock](JobContext& ctx) {
      std::string name;
      {
        auto lease = ctx.Enter();
        if (!lease) return;
        std::lock_guard lock(mu);
        auto it = domains.find(uuid);
        if (it == domains.end()) return;
        it->second.queued = false;
        name = it->second.name.str();
      }
      ReadOutcome out = ReadDomain(ctx, *clk, *api_ref, opts, uuid.str(), name);
      const bool in_time = ctx.Disarm();
      auto lease = ctx.Enter();
      if (!lease || !in_time) return;  // the reader is gone, or the result is late
      Finish(uuid, std::move(out));
    };
    if (pool->Submit(std::move(job), std::move(jo)) == WorkerPool::Submitted::kRejected) {
      e.queued = false;
    }
  }

  void Finish(const SharedString& uuid, ReadOutcome out) {
    std::function<void()> wake_fn;
    {
      std::lock_guard lock(mu);
      auto it = domains.find(uuid);
      if (it == domains.end()) return;  // vanished meanwhile
      Entry& e = it->second;
      if (out.call_failed) {
        // Keep what was read before; a vanished domain is forgotten at the next list.
        spdlog::debug("libvirt: metadata of domain '{}' not read: {}", e.name, out.error);
        return;
      }
      const size_t raw_hash = std::hash<std::string_view>{}(out.raw);
      if (!out.problems.empty() && raw_hash != e.logged_raw_hash) {
        std::string all;
        for (const auto& p : out.problems) all += (all.empty() ? "" : "; ") + p;
        spdlog::warn("libvirt: domain '{}': metadata partly ignored: {}", e.name, all);
      }
      e.logged_raw_hash = raw_hash;
      // Never read counts as none: a domain without metadata (most of
      // them) is no news, so 10,000 plain domains hand out nothing. (An
      // empty `current` not handed out yet stays: it is the news.)
      const bool was_none = !e.current || *e.current == DomainMetadata{};
      const bool stays_none = was_none && out.metadata == DomainMetadata{};
      if (!stays_none && (!e.current || *e.current != out.metadata)) {
        e.current = std::make_unique<const DomainMetadata>(std::move(out.metadata));
        e.handed_out = false;
        changed.push_back(uuid);
        if (wake && !wake_pending) {
          wake_pending = true;
          wake_fn = wake;
        }
      }
    }
    if (wake_fn) wake_fn();
  }

  const Clock& clock;
  std::shared_ptr<LibvirtApi> api;
  const MetadataOptions options;
  std::mutex mu;
  std::unordered_map<SharedString, Entry, SharedStringHash, SharedStringEqual> domains;  // by uuid
  std::vector<SharedString> changed;  // uuids with handed_out == false (may repeat)
  uint64_t pass = 0;                  // Reconcile calls so far
  std::function<void()> wake;
  bool wake_pending = false;
  uint64_t generation = 0;
  bool shutdown = false;
  std::unique_ptr<WorkerPool> pool;  // last: shut down before the members above go
};

MetadataReader::MetadataReader(const Clock& clock, std::shared_ptr<LibvirtApi> api,
                               MetadataOptions options)
    : impl_(std::make_shared<Impl>(clock, std::move(api), options)) {
  WorkerPoolOptions o;
  o.name = "libvirt metadata reader";
  o.workers = 1;
  o.max_stuck = 1;
  if (options.background_tick) o.watchdog_period = kWatchdogPeriod;
  impl_->pool = std::make_unique<WorkerPool>(clock, std::move(o));
}

MetadataReader::~MetadataReader() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->shutdown = true;
    impl_->wake = nullptr;
  }
  impl_->pool->Shutdown(kShutdownGrace);
}

void MetadataReader::Reconcile(const std::vector<DomainInfo>& domains, uint64_t generation) {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  if (im.shutdown) return;
  const bool reconnected = generation != im.generation;
  im.generation = generation;
  // In place: a steady fleet's list allocates and frees no table node.
  const uint64_t pass = ++im.pass;
  for (const auto& d : domains) {
    auto [it, inserted] = im.domains.try_emplace(d.uuid);
    Impl::Entry& e = it->second;
    if (e.name != d.name) e.name = d.name;
    e.seen_pass = pass;
    if (inserted || reconnected) im.Enqueue(it->first, e, /*urgent=*/false);
  }
  std::erase_if(im.domains, [pass](const auto& kv) { return kv.second.seen_pass != pass; });
}

void MetadataReader::Invalidate(const std::string& uuid, const std::string& name) {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  if (im.shutdown) return;
  auto [it, inserted] = im.domains.try_emplace(uuid);
  if (inserted) it->second.name = name;
  im.Enqueue(it->first, it->second, /*urgent=*/true);
}

std::vector<std::pair<SharedString, DomainMetadata>> MetadataReader::TakeChanged() {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  im.wake_pending = false;
  std::vector<std::pair<SharedString, DomainMetadata>> out;
  for (const auto& uuid : im.changed) {
    auto it = im.domains.find(uuid);
    if (it == im.domains.end() || it->second.handed_out || !it->second.current) continue;
    it->second.handed_out = true;
    out.emplace_back(uuid, *it->second.current);
  }
  im.changed.clear();
  return out;
}

void MetadataReader::SetWakeup(std::function<void()> wake) {
  std::lock_guard lock(impl_->mu);
  impl_->wake = std::move(wake);
  impl_->wake_pending = false;
}

void MetadataReader::Tick() { impl_->pool->Tick(); }

bool MetadataReader::WaitIdle(std::chrono::milliseconds timeout) {
  return impl_->pool->WaitIdle(timeout);
}

}  // namespace vmtime::libvirt
