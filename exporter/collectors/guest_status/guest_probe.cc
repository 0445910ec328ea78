// Per-guest probe: command selection, execution and error naming (see
// guest_probe.h).
#include "exporter/collectors/guest_status/guest_probe.h"

#include <algorithm>
#include <cmath>

#include "exporter/collectors/guest_status/parse_text.h"
#include "exporter/collectors/guest_status/parsers.h"

namespace vmtime::guest_status {
namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

std::string WithKind(GuestStatusError kind, const std::string& message) {
  return std::string(GuestStatusErrorName(kind)) + ": " + message;
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
  std::string text = Lower(outcome.out + "\n" + outcome.err);
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
  using Kind = GuestExecOutcome::Kind;
  const int64_t exec_timeout_ns =
      std::max<int64_t>(1, static_cast<int64_t>(options.exec_timeout_s * 1e9));
  auto finish = [&](GuestStatusObservation obs) {
    obs.uuid = uuid;
    obs.status.measured_mono_ns = clock.MonotonicNs();
    return obs;
  };
  auto failure = [&](std::string daemon, GuestStatusError kind, const std::string& message) {
    GuestStatusObservation obs;
    obs.daemon = std::move(daemon);
    obs.error = WithKind(kind, message);
    return finish(std::move(obs));
  };

  if (memory.stuck_pid) {
    const GuestCommand& cmd =
        GetGuestCommand(memory.stuck_command.value_or(GuestCommandId::kChronycTracking));
    int timeout_s = std::max(1, static_cast<int>(std::ceil(options.exec_timeout_s)));
    if (!ReapGuestExec(agent, uuid, *memory.stuck_pid, timeout_s)) {
      return failure(std::string(cmd.daemon), GuestStatusError::kTimeout,
                     std::string(cmd.display) + ": an earlier run (pid " +
                         std::to_string(*memory.stuck_pid) +
                         ") is still running in the guest; not starting another");
    }
    memory.stuck_pid.reset();
    memory.stuck_command.reset();
  }

  if (!memory.os_known) {
    int timeout_s = std::max(1, static_cast<int>(std::ceil(options.exec_timeout_s)));
    auto reply = agent.Command(uuid, R"({"execute":"guest-get-osinfo"})", timeout_s);
    if (reply) {
      memory.os = ParseOsInfoReply(*reply);
      memory.os_known = memory.os != GuestOsFamily::kUnknown;
    }
    // Without osinfo (old agent) every configured command is tried.
  }

  auto candidates = SelectCommands(memory.os, options.commands, memory.preferred);
  if (candidates.empty()) {
    return failure("none", GuestStatusError::kNoDaemon,
                   "no configured command applies to this guest's OS");
  }

  std::vector<std::string> absent;  // "chronyc -c tracking: not installed", ...
  std::optional<std::pair<GuestStatusError, std::string>> first_failure;
  std::string failed_daemon = "none";
  auto note_failure = [&](const GuestCommand& cmd, GuestStatusError kind, std::string message) {
    if (!first_failure) {
      first_failure.emplace(kind, std::move(message));
      failed_daemon = std::string(cmd.daemon);
    }
  };

  for (auto id : candidates) {
    if (stop.stop_requested()) break;
    const GuestCommand& cmd = GetGuestCommand(id);
    ExecLimits limits{clock.MonotonicNs() + exec_timeout_ns, options.max_output_bytes};
    GuestExecOutcome outcome = RunGuestExec(agent, uuid, cmd, limits, clock, sleep, stop);
    switch (outcome.kind) {
      case Kind::kNotFound:
        absent.push_back(std::string(cmd.display) + ": not installed");
        continue;
      case Kind::kTimeout:
        memory.preferred.reset();
        if (outcome.pid >= 0) {
          memory.stuck_pid = outcome.pid;
          memory.stuck_command = id;
        }
        return failure(std::string(cmd.daemon), GuestStatusError::kTimeout, outcome.message);
      case Kind::kFailed:
        // The agent itself failed (not responding, guest-exec disabled...):
        // the next command would fail the same way.
        memory.preferred.reset();
        return failure(first_failure ? failed_daemon : std::string(cmd.daemon),
                       first_failure ? first_failure->first : GuestStatusError::kExecFailed,
                       first_failure ? first_failure->second : outcome.message);
      case Kind::kExited:
        break;
    }
    if (outcome.exit_code != 0) {
      if (MeansDaemonNotRunning(cmd, outcome)) {
        absent.push_back(std::string(cmd.display) + ": daemon not running");
        continue;
      }
      std::string detail = std::string(Trim(outcome.err.empty() ? outcome.out : outcome.err));
      std::string how = outcome.signal ? "killed by signal " + std::to_string(outcome.signal)
                                       : "exited with code " + std::to_string(outcome.exit_code);
      note_failure(cmd, GuestStatusError::kExecFailed,
                   std::string(cmd.display) + ": " + how + ": " + Quote(detail));
      continue;
    }
    if (outcome.out_truncated) {
      note_failure(cmd, GuestStatusError::kParseFailed,
                   std::string(cmd.display) + ": output truncated (over " +
                       std::to_string(options.max_output_bytes) + " bytes or by the agent)");
      continue;
    }
    auto parsed = ParseGuestCommandOutput(id, outcome.out);
    if (!parsed) {
      note_failure(cmd, GuestStatusError::kParseFailed, parsed.error().message);
      continue;
    }
    if (parsed->daemon == "none") {  // e.g. timedatectl: no time service enabled
      absent.push_back(std::string(cmd.display) + ": no time service enabled");
      continue;
    }
    memory.preferred = id;
    return finish(std::move(*parsed));
  }

  memory.preferred.reset();
  if (first_failure) return failure(failed_daemon, first_failure->first, first_failure->second);
  std::string message = "no time daemon found";
  for (size_t i = 0; i < absent.size(); ++i) message += (i ? "; " : " (") + absent[i];
  if (!absent.empty()) message += ")";
  return failure("none", GuestStatusError::kNoDaemon, message);
}

}  // namespace vmtime::guest_status
