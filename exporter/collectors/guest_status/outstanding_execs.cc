// The table of guest-exec programs that may still run (see
// outstanding_execs.h).
#include "exporter/collectors/guest_status/outstanding_execs.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace vmtime::guest_status {

OutstandingExecs::OutstandingExecs(size_t max_entries, int64_t max_age_ns)
    : max_entries_(std::max<size_t>(1, max_entries)), max_age_ns_(max_age_ns) {}

std::shared_ptr<OutstandingExecs> OutstandingExecs::Process() {
  static const auto table = std::make_shared<OutstandingExecs>();
  return table;
}

std::optional<OutstandingExec> OutstandingExecs::Get(const std::string& uuid, int64_t now_mono_ns) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(uuid);
  if (it == entries_.end()) return std::nullopt;
  if (now_mono_ns - it->second.since_mono_ns > max_age_ns_) {
    spdlog::warn(
        "guest_status: domain {}: guest-exec pid {} still not reaped after {:.0f} s; forgotten, "
        "probing resumes",
        uuid, it->second.pid, NsToSeconds(now_mono_ns - it->second.since_mono_ns));
    entries_.erase(it);
    return std::nullopt;
  }
  return it->second;
}

void OutstandingExecs::Remember(const std::string& uuid, int64_t pid, GuestCommandId command,
                                int64_t now_mono_ns) {
  std::lock_guard lock(mu_);
  auto it = entries_.find(uuid);
  if (it != entries_.end()) {
    if (it->second.pid != pid) it->second = {pid, command, now_mono_ns};
    return;
  }
  if (entries_.size() >= max_entries_) {
    auto oldest =
        std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
          return a.second.since_mono_ns < b.second.since_mono_ns;
        });
    spdlog::warn("guest_status: more than {} outstanding guest-exec pids; forgetting domain {}'s",
                 max_entries_, oldest->first);
    entries_.erase(oldest);
  }
  entries_.emplace(uuid, OutstandingExec{pid, command, now_mono_ns});
}

void OutstandingExecs::Forget(const std::string& uuid, int64_t pid) {
  std::lock_guard lock(mu_);
  if (auto it = entries_.find(uuid); it != entries_.end() && it->second.pid == pid) {
    entries_.erase(it);
  }
}

size_t OutstandingExecs::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

bool OutstandingExecs::BeginProbe(const std::string& uuid) {
  std::lock_guard lock(mu_);
  return probing_.insert(uuid).second;
}

void OutstandingExecs::EndProbe(const std::string& uuid) {
  std::lock_guard lock(mu_);
  probing_.erase(uuid);
}

}  // namespace vmtime::guest_status
