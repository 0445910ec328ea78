// guest-exec through the guest agent, bounded: starts one fixed command
// with capture-output, polls guest-exec-status with its pid until it has
// exited or the deadline (host monotonic) passes, base64-decodes out-data
// and err-data capped at max_output_bytes, and reports out-truncated. Also
// guest-get-osinfo, reduced to the OS family that picks the commands.
//
// Waiting between polls goes through an injected sleeper, so the loop is
// tested with FakeClock and no real sleeps.
#pragma once

#include <cstdint>
#include <functional>
#include <stop_token>
#include <string>

#include "exporter/collectors/guest_status/guest_agent.h"
#include "exporter/core/clock.h"
#include "exporter/model/guest_commands.h"

namespace vmtime::guest_status {

struct GuestExecOutcome {
  enum class Kind {
    kExited,    // the program ran and exited (exit_code / signal set)
    kNotFound,  // the agent could not start it: not installed in the guest
    kTimeout,   // still running at the deadline (left running in the guest)
    kFailed,    // agent error or malformed reply
  };
  Kind kind = Kind::kFailed;
  int exit_code = 0;           // when exited normally
  int signal = 0;              // when killed by a signal (exit_code then -1)
  std::string out;             // stdout, at most max_output_bytes
  std::string err;             // stderr, at most max_output_bytes
  bool out_truncated = false;  // by the agent or by max_output_bytes
  bool err_truncated = false;
  std::string message;  // for kNotFound/kTimeout/kFailed: what happened
  // The guest pid once started, kept on kTimeout and on a kFailed after the
  // start (a failed guest-exec-status): the program may still run and its
  // status must be reaped before another starts. -1 when nothing runs.
  int64_t pid = -1;
};

// One guest-exec-status poll of a process left running by an earlier
// timeout: true when it has exited (or the agent no longer knows it), so
// another command may start.
bool ReapGuestExec(GuestAgent& agent, const std::string& uuid, int64_t pid, int timeout_s);

struct ExecLimits {
  int64_t deadline_mono_ns = 0;  // host monotonic
  size_t max_output_bytes = 65536;
};

using Sleeper = std::function<void(int64_t ns)>;

GuestExecOutcome RunGuestExec(GuestAgent& agent, const std::string& uuid,
                              const GuestCommand& command, const ExecLimits& limits,
                              const Clock& clock, const Sleeper& sleep, std::stop_token stop = {});

// The JSON of the guest-exec request for `command` (no shell, fixed argv).
std::string GuestExecRequestJson(const GuestCommand& command);

// guest-get-osinfo reply -> OS family: "mswindows" id or a Windows name is
// kWindows; any other reply with a kernel-release is kLinux (BSDs are not
// distinguished: they run the same tools); no such field -> kUnknown. A
// reply that is not JSON, an agent error, or a member of the wrong type is
// an error naming the request, the domain `uuid` and the member.
Result<GuestOsFamily> ParseOsInfo(const std::string& reply_json, std::string_view uuid);
// ParseOsInfo with every error read as kUnknown.
GuestOsFamily ParseOsInfoReply(const std::string& reply_json);

// base64 (RFC 4648, padding optional, whitespace ignored) decoded into at
// most `max_bytes`; sets *truncated when more was there. nullopt on a
// character outside the alphabet.
std::optional<std::string> DecodeBase64(std::string_view in, size_t max_bytes, bool* truncated);

}  // namespace vmtime::guest_status
