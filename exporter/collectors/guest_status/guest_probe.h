// Probing one guest: picks the commands for its OS (guest-get-osinfo,
// cached), runs them one at a time through RunGuestExec until one yields a
// parsable status, and turns every other outcome into a named, bounded
// error kind. This is the collector's per-guest logic, free of threads and
// of libvirt, so it is unit-tested with a fake GuestAgent and FakeClock.
//
// Order: the command that worked last time for this guest first, then the
// configured ones in configuration order. "Not installed" (the agent cannot
// start the program) and "daemon not running" (e.g. chronyc's "506 Cannot
// talk to daemon") move on to the next command; if none is left the guest
// has no daemon: state unknown, error "no_daemon: ...". A command that runs
// past exec_timeout_s stops the probe (error "timeout: ..."), so one slow
// guest costs at most one deadline per round, and is remembered: the next
// probe first checks (one guest-exec-status) that it has exited and starts
// nothing while it still runs, so a guest never has two of our commands
// running at once.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "exporter/collectors/guest_status/guest_exec.h"
#include "exporter/model/guest_status_error.h"
#include "exporter/model/observations.h"

namespace vmtime::guest_status {

struct ProbeOptions {
  std::vector<GuestCommandId> commands;  // configured, in order
  double exec_timeout_s = 5;             // per command
  size_t max_output_bytes = 65536;
};

// What the collector remembers about a guest between rounds.
struct ProbeMemory {
  bool os_known = false;
  GuestOsFamily os = GuestOsFamily::kUnknown;
  std::optional<GuestCommandId> preferred;  // the command that worked last
  // A command that outlived its deadline still runs in the guest: no new
  // guest-exec for this guest until a status poll shows it has exited.
  std::optional<int64_t> stuck_pid;
  std::optional<GuestCommandId> stuck_command;
};

// Commands to try for a guest of this OS family: `preferred` first (when
// still configured and applicable), then the configured ones that apply
// (an unknown OS gets all of them).
std::vector<GuestCommandId> SelectCommands(GuestOsFamily os,
                                           std::span<const GuestCommandId> configured,
                                           std::optional<GuestCommandId> preferred);

// True when a command that exited non-zero says its daemon is not running.
bool MeansDaemonNotRunning(const GuestCommand& command, const GuestExecOutcome& outcome);

// Probes one guest; never throws. uuid and status.measured_mono_ns (host
// monotonic at the end of the probe) are filled.
GuestStatusObservation ProbeGuest(GuestAgent& agent, const std::string& uuid,
                                  const ProbeOptions& options, ProbeMemory& memory,
                                  const Clock& clock, const Sleeper& sleep,
                                  std::stop_token stop = {});

}  // namespace vmtime::guest_status
