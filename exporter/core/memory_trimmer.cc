// See memory_trimmer.h.
#include "exporter/core/memory_trimmer.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <spdlog/spdlog.h>

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
    cv_.wait(lock, [&] { return poked_ || stop_; });
    if (stop_) return;
    poked_ = false;
    const int64_t now = clock_.MonotonicNs();
    if (trimmed_once_ && now - last_trim_mono_ns_ < min_interval_ns_) {
      cv_.notify_all();  // WaitQuiet
      continue;
    }
    trimmed_once_ = true;
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
