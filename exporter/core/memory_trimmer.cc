// See memory_trimmer.h.
#include "exporter/core/memory_trimmer.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

namespace vmtime {

MemoryTrimmer::MemoryTrimmer(const Clock& clock, int64_t min_interval_ns, TrimFn trim)
    : clock_(clock), min_interval_ns_(min_interval_ns), trim_(std::move(trim)) {
  thread_ = std::thread([this] { Loop(); });
}

MemoryTrimmer::~MemoryTrimmer() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void MemoryTrimmer::Poke() {
  {
    std::lock_guard lock(mu_);
    poked_ = true;
  }
  cv_.notify_all();
}

bool MemoryTrimmer::pending() const {
  std::lock_guard lock(mu_);
  return pending_;
}

uint64_t MemoryTrimmer::trims() const {
  std::lock_guard lock(mu_);
  return trims_;
}

bool MemoryTrimmer::WaitQuiet(int timeout_ms) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                      [&] { return !poked_ && !busy_; });
}

void MemoryTrimmer::DefaultTrim() {
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

void MemoryTrimmer::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    if (pending_) {
      // A trim is owed but the previous one is too recent: look again when
      // it is due (host monotonic, re-read at least every second).
      const int64_t due_in_ns = last_trim_mono_ns_ + min_interval_ns_ - clock_.MonotonicNs();
      const auto wait =
          std::chrono::nanoseconds(std::clamp<int64_t>(due_in_ns, 1'000'000, 1'000'000'000));
      cv_.wait_for(lock, wait, [&] { return poked_ || stop_; });
    } else {
      cv_.wait(lock, [&] { return poked_ || stop_; });
    }
    if (stop_) return;
    if (poked_) pending_ = true;
    poked_ = false;
    const int64_t now = clock_.MonotonicNs();
    if (trims_ > 0 && now - last_trim_mono_ns_ < min_interval_ns_) {
      cv_.notify_all();  // WaitQuiet: looked at, still owed
      continue;
    }
    pending_ = false;
    last_trim_mono_ns_ = now;
    busy_ = true;
    lock.unlock();
    trim_();
    const int64_t took = clock_.MonotonicNs() - now;
    spdlog::debug("memory: malloc_trim took {:.1f} ms", static_cast<double>(took) / 1e6);
    lock.lock();
    busy_ = false;
    ++trims_;
    cv_.notify_all();
  }
}

}  // namespace vmtime
