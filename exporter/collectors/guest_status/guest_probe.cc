// Per-guest probe: command selection, execution and error naming (see
// guest_probe.h).
#include "exporter/collectors/guest_status/guest_probe.h"

#include <algorithm>
#include <cmath>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {
namespace {

std::string WithKind(GuestStatusError kind, const std::string& message) {
  return std::string(GuestStatusErrorName(kind)) + ": " + message;
}

// The agent's reply deadline for a command budget: whole seconds, at least 1.
int AgentTimeoutS(double seconds) { return std::max(1, static_cast<int>(std::ceil(seconds))); }

GuestStatusObservation Failure(std::string daemon, GuestStatusError kind,
                               const std::string& message) {
  GuestStatusObservation obs;
  obs.daemon = std::move(daemon);
  obs.error = WithKind(kind, message);
  return obs;
}

// Step 1. A command an earlier probe left running must have exited before
// another starts: the failure to report while it still runs, else nullopt.
std::optional<GuestStatusObservation> CheckStuckCommand(GuestAgent& agent, const std::string& uuid,
                                                        const ProbeOptions& options,
                                                        ProbeMemory& memory) {
  if (!memory.stuck_pid) return std::nullopt;
  const GuestCommand& cmd =
      GetGuestCommand(memory.stuck_command.value_or(GuestCommandId::kChronycTracking));
  if (!ReapGuestExec(agent, uuid, *memory.stuck_pid, AgentTimeoutS(options.exec_timeout_s))) {
    return Failure(std::string(cmd.daemon), GuestStatusError::kTimeout,
                   std::string(cmd.display) + ": an earlier run (pid " +
                       std::to_string(*memory.stuck_pid) +
                       ") is still running in the guest; not starting another");
  }
  memory.stuck_pid.reset();
  memory.stuck_command.reset();
  return std::nullopt;
}

// Step 2. The guest's OS family, asked until known (guest-get-osinfo);
// without it (an old agent) every configured command is tried.
void LearnOs(GuestAgent& agent, const std::string& uuid, const ProbeOptions& options,
             ProbeMemory& memory) {
  if (memory.os_known) return;
  auto reply = agent.Command(uuid, R"({"execute":"guest-get-osinfo"})",
                             AgentTimeoutS(options.exec_timeout_s));
  if (reply) {
    memory.os = ParseOsInfoReply(*reply);
    memory.os_known = memory.os != GuestOsFamily::kUnknown;
  }
}

// What the candidates tried so far left behind.
struct Attempts {
  std::vector<std::string> absent;  // "chronyc -c tracking: not installed", ...
  std::optional<std::pair<GuestStatusError, std::string>> first_failure;
  std::string failed_daemon = "none";

  void Absent(const GuestCommand& cmd, std::string_view why) {
    absent.push_back(std::string(cmd.display) + ": " + std::string(why));
  }
  void Failed(const GuestCommand& cmd, GuestStatusError kind, std::string message) {
    if (first_failure) return;
    first_failure.emplace(kind, std::move(message));
    failed_daemon = std::string(cmd.daemon);
  }
  // The outcome once no candidate is left: the first real failure, else
  // "no_daemon" listing why each command did not count.
  GuestStatusObservation NothingWorked() const {
    if (first_failure) return Failure(failed_daemon, first_failure->first, first_failure->second);
    std::string message = "no time daemon found";
    for (size_t i = 0; i < absent.size(); ++i) message += (i ? "; " : " (") + absent[i];
    if (!absent.empty()) message += ")";
    return Failure("none", GuestStatusError::kNoDaemon, message);
  }
};

// Step 3b. A command that ran to its end: its parsed status (the probe is
// done), or nullopt after noting why it does not count.
std::optional<GuestStatusObservation> ReadExited(GuestCommandId id, const GuestExecOutcome& outcome,
                                                 const ProbeOptions& options, Attempts& attempts) {
  const GuestCommand& cmd = GetGuestCommand(id);
  if (outcome.exit_code != 0) {
    if (MeansDaemonNotRunning(cmd, outcome)) {
      attempts.Absent(cmd, "daemon not running");
      return std::nullopt;
    }
    std::string detail = std::string(Trim(outcome.err.empty() ? outcome.out : outcome.err));
    std::string how = outcome.signal ? "killed by signal " + std::to_string(outcome.signal)
                                     : "exited with code " + std::to_string(outcome.exit_code);
    attempts.Failed(cmd, GuestStatusError::kExecFailed,
                    std::string(cmd.display) + ": " + how + ": " + Quote(detail));
    return std::nullopt;
  }
  if (outcome.out_truncated) {
    attempts.Failed(cmd, GuestStatusError::kParseFailed,
                    std::string(cmd.display) + ": output truncated (over " +
                        std::to_string(options.max_output_bytes) + " bytes or by the agent)");
    return std::nullopt;
  }
  auto parsed = ParseGuestCommandOutput(id, outcome.out);
  if (!parsed) {
    attempts.Failed(cmd, GuestStatusError::kParseFailed, parsed.error().message);
    return std::nullopt;
  }
  if (parsed->daemon == "none") {  // e.g. timedatectl: no time service enabled
    attempts.Absent(cmd, "no time service enabled");
    return std::nullopt;
  }
  return std::move(*parsed);
}

}  // namespace

std::vector<GuestCommandId> SelectCommands(GuestOsFamily os,
                                           std::span<const GuestCommandId> configured,
                                           std::optional<GuestCommandId> preferred) {
  auto applies = [&](GuestCommandId id) {
    return os == GuestOsFamily::kUnknown || GetGuestCommand(id).os == os;
  };
  std::vector<GuestCommandId> out;
  if (preferred && applies(*preferred) &&
      std::find(configured.begin(), configured.end(), *preferred) != configured.end()) {
    out.push_back(*preferred);
  }
  for (auto id : configured) {
    if (applies(id) && std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
  return out;
}

bool MeansDaemonNotRunning(const GuestCommand& command, const GuestExecOutcome& outcome) {
  if (outcome.kind != GuestExecOutcome::Kind::kExited || outcome.exit_code == 0) return false;
  std::string text = AsciiLower(outcome.out + "\n" + outcome.err);
  auto has = [&](std::string_view s) { return text.find(s) != std::string::npos; };
  switch (command.id) {
    case GuestCommandId::kChronycTracking:
      return has("506 cannot talk to daemon") || has("cannot talk to daemon");
    case GuestCommandId::kNtpqRv:
      return has("connection refused");
    case GuestCommandId::kTimedatectlShow:
      return has("failed to connect to bus") || has("not been booted with systemd");
    case GuestCommandId::kW32tmStatus:
      return has("80070426") || has("service has not been started");
  }
  return false;
}

GuestStatusObservation ProbeGuest(GuestAgent& agent, const std::string& uuid,
                                  const ProbeOptions& options, ProbeMemory& memory,
                                  const Clock& clock, const Sleeper& sleep, std::stop_token stop) {
  auto finish = [&](GuestStatusObservation obs) {
    obs.uuid = uuid;
    obs.status.measured_mono_ns = clock.MonotonicNs();
    return obs;
  };
  if (auto busy = CheckStuckCommand(agent, uuid, options, memory)) return finish(std::move(*busy));
  LearnOs(agent, uuid, options, memory);
  const auto candidates = SelectCommands(memory.os, options.commands, memory.preferred);
  if (candidates.empty()) {
    return finish(Failure("none", GuestStatusError::kNoDaemon,
                          "no configured command applies to this guest's OS"));
  }
  // Step 3: the candidates in order, until one yields a status or ends the probe.
  const int64_t exec_timeout_ns =
      std::max<int64_t>(1, static_cast<int64_t>(options.exec_timeout_s * 1e9));
  Attempts attempts;
  for (auto id : candidates) {
    if (stop.stop_requested()) break;
    const GuestCommand& cmd = GetGuestCommand(id);
    ExecLimits limits{clock.MonotonicNs() + exec_timeout_ns, options.max_output_bytes};
    GuestExecOutcome outcome = RunGuestExec(agent, uuid, cmd, limits, clock, sleep, stop);
    switch (outcome.kind) {
      case GuestExecOutcome::Kind::kNotFound:
        attempts.Absent(cmd, "not installed");
        continue;
      case GuestExecOutcome::Kind::kTimeout:
        // Still running in the guest: remembered, so the next probe waits for it.
        memory.preferred.reset();
        if (outcome.pid >= 0) {
          memory.stuck_pid = outcome.pid;
          memory.stuck_command = id;
        }
        return finish(
            Failure(std::string(cmd.daemon), GuestStatusError::kTimeout, outcome.message));
      case GuestExecOutcome::Kind::kFailed:
        // The agent itself failed (not responding, guest-exec disabled...):
        // the next command would fail the same way. A program it started
        // may still run: remembered like a timeout, reaped before the next.
        memory.preferred.reset();
        if (outcome.pid >= 0) {
          memory.stuck_pid = outcome.pid;
          memory.stuck_command = id;
        }
        attempts.Failed(cmd, GuestStatusError::kExecFailed, outcome.message);
        return finish(attempts.NothingWorked());
      case GuestExecOutcome::Kind::kExited:
        if (auto status = ReadExited(id, outcome, options, attempts)) {
          memory.preferred = id;
          return finish(std::move(*status));
        }
        continue;
    }
  }
  memory.preferred.reset();
  return finish(attempts.NothingWorked());
}

}  // namespace vmtime::guest_status
