// OutstandingExecs: the guest-exec programs this process started that may
// still run in their guest, one per domain (the probe never starts a second
// while one is outstanding), and the domains a probe is running in now.
//
// A program is outstanding after a timeout (it still runs) or after a
// failure once it was started (guest-exec-status failed: nobody knows
// whether it ended). Its pid stays here until a later guest-exec-status
// shows it has exited or the agent no longer knows it, so its status is
// reaped and no second command runs beside it. The table is shared (a
// shared_ptr co-owned by every probe) and outlives a collector: a reload
// that re-creates the guest_status collector hands the same table to the new
// instance (OutstandingExecs::Process()), and a probe left behind in libvirt
// by the old instance records its outcome here when it returns. Bounded:
// at most max_entries domains (the oldest entry goes first) and max_age
// (an entry older than that is forgotten, logged, and the guest is probed
// again). Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "exporter/core/clock.h"
#include "exporter/model/guest_commands.h"

namespace vmtime::guest_status {

struct OutstandingExec {
  int64_t pid = -1;
  GuestCommandId command = GuestCommandId::kChronycTracking;
  int64_t since_mono_ns = 0;  // when first left outstanding (host monotonic)
};

class OutstandingExecs {
 public:
  static constexpr size_t kDefaultMaxEntries = 16384;
  static constexpr int64_t kDefaultMaxAgeNs = 3600 * kNsPerSecond;

  explicit OutstandingExecs(size_t max_entries = kDefaultMaxEntries,
                            int64_t max_age_ns = kDefaultMaxAgeNs);

  // The process-wide table the real collector uses (never freed).
  static std::shared_ptr<OutstandingExecs> Process();

  // The program outstanding in `uuid`, unless it is older than max_age at
  // `now` (then it is forgotten with a warning).
  std::optional<OutstandingExec> Get(const std::string& uuid, int64_t now_mono_ns);
  // Remembers `pid` for `uuid`; an entry with the same pid keeps its age.
  void Remember(const std::string& uuid, int64_t pid, GuestCommandId command, int64_t now_mono_ns);
  // Forgets `uuid`'s entry if it is still `pid`.
  void Forget(const std::string& uuid, int64_t pid);
  size_t size() const;

  // At most one probe per domain in the whole process, whichever collector
  // instance runs it: false when one is running already.
  bool BeginProbe(const std::string& uuid);
  void EndProbe(const std::string& uuid);

 private:
  const size_t max_entries_;
  const int64_t max_age_ns_;
  mutable std::mutex mu_;
  std::map<std::string, OutstandingExec> entries_;
  std::set<std::string> probing_;
};

}  // namespace vmtime::guest_status
