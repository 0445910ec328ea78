// Bounded guest-exec through the guest agent (see guest_exec.h).
#include "exporter/collectors/guest_status/guest_exec.h"

#include <algorithm>
#include <climits>
#include <map>
#include <nlohmann/json.hpp>

#include "exporter/collectors/guest_status/parse_text.h"

namespace vmtime::guest_status {
namespace {

using nlohmann::json;

bool MeansNotFound(std::string_view message) {
  std::string m = AsciiLower(message);
  return m.find("no such file") != std::string::npos ||
         m.find("cannot find the file") != std::string::npos ||
         m.find("enoent") != std::string::npos;
}

// Agent reply deadline for the time left, whole seconds, at least 1.
int CallTimeoutS(int64_t remaining_ns) {
  int64_t s = (remaining_ns + kNsPerSecond - 1) / kNsPerSecond;
  return static_cast<int>(std::clamp<int64_t>(s, 1, 3600));
}

GuestExecOutcome Failed(GuestExecOutcome::Kind kind, std::string message) {
  GuestExecOutcome o;
  o.kind = kind;
  o.message = std::move(message);
  return o;
}

// Every reply is untrusted input from inside the guest: a member may be
// missing or of any JSON type. The helpers below never call a throwing
// accessor on a value whose type they have not checked, and their errors
// name the request, the domain and the member ("error.desc", "return.pid").
struct ReplyContext {
  std::string_view request;  // "guest-exec-status"
  std::string_view uuid;     // the domain asked
};

std::string ReplyError(const ReplyContext& rc, std::string_view problem) {
  return std::string(rc.request) + " reply from domain " + std::string(rc.uuid) + ": " +
         std::string(problem);
}

std::string WrongType(const ReplyContext& rc, std::string_view field, const json& value,
                      std::string_view expected) {
  return ReplyError(rc, "\"" + std::string(field) + "\" is " + value.type_name() + ", expected " +
                            std::string(expected));
}

// The agent's own error ({"error":{"class":...,"desc":...}}) as a message;
// a desc or class of another type is named, never read as a string.
std::string AgentErrorText(const ReplyContext& rc, const json& error) {
  if (!error.is_object()) return WrongType(rc, "error", error, "an object");
  auto desc = error.find("desc");
  if (desc == error.end()) return ReplyError(rc, "agent error without \"error.desc\"");
  if (!desc->is_string()) return WrongType(rc, "error.desc", *desc, "a string");
  return std::string(rc.request) + ": " + desc->get<std::string>();
}

// The "return" member of a reply, or an error naming what was wrong.
Result<json> ReturnOf(const std::string& reply, const ReplyContext& rc) {
  json j = json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{ReplyError(rc, "reply is not a JSON object")};
  }
  auto it = j.find("return");
  if (it == j.end()) {
    if (auto e = j.find("error"); e != j.end()) return Error{AgentErrorText(rc, *e)};
    return Error{ReplyError(rc, "reply has no \"return\"")};
  }
  return *it;
}

// `obj[key]` when present with the expected type; nullptr when absent; an
// error naming "return.<key>" when present with another type.
using TypeCheck = bool (json::*)() const noexcept;
Result<const json*> Member(const ReplyContext& rc, const json& obj, const char* key,
                           TypeCheck check, std::string_view expected) {
  auto it = obj.find(key);
  if (it == obj.end()) return static_cast<const json*>(nullptr);
  if (!((*it).*check)()) return Error{WrongType(rc, std::string("return.") + key, *it, expected)};
  return &*it;
}

// An integer member within [lo, hi] (a number that does not fit is named too).
Result<std::optional<int64_t>> IntMember(const ReplyContext& rc, const json& obj, const char* key,
                                         int64_t lo, int64_t hi) {
  auto m = Member(rc, obj, key, &json::is_number_integer, "an integer");
  if (!m) return m.error();
  if (*m == nullptr) return std::optional<int64_t>();
  const json& v = **m;
  const bool fits = v.is_number_unsigned() ? v.get<uint64_t>() <= static_cast<uint64_t>(hi)
                                           : v.get<int64_t>() >= lo && v.get<int64_t>() <= hi;
  if (!fits) {
    return Error{
        ReplyError(rc, "\"return." + std::string(key) + "\" " + v.dump() + " is out of range")};
  }
  return std::optional<int64_t>(v.is_number_unsigned() ? static_cast<int64_t>(v.get<uint64_t>())
                                                       : v.get<int64_t>());
}

}  // namespace

std::optional<std::string> DecodeBase64(std::string_view in, size_t max_bytes, bool* truncated) {
  std::string out;
  out.reserve(std::min(max_bytes, in.size() / 4 * 3 + 3));
  uint32_t acc = 0;
  int bits = 0;
  bool padding = false;
  for (char c : in) {
    int v;
    if (c >= 'A' && c <= 'Z') {
      v = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      v = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      v = c - '0' + 52;
    } else if (c == '+') {
      v = 62;
    } else if (c == '/') {
      v = 63;
    } else if (c == '=') {
      padding = true;
      continue;
    } else if (c == '\n' || c == '\r' || c == ' ' || c == '\t') {
      continue;
    } else {
      return std::nullopt;
    }
    if (padding) return std::nullopt;  // data after '='
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (out.size() >= max_bytes) {
        if (truncated) *truncated = true;
        return out;
      }
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  return out;
}

std::string GuestExecRequestJson(const GuestCommand& command) {
  json args = json::array();
  for (auto a : command.args) args.push_back(std::string(a));
  json req = {{"execute", "guest-exec"},
              {"arguments",
               {{"path", std::string(command.path)}, {"arg", args}, {"capture-output", true}}}};
  return req.dump();
}

Result<GuestOsFamily> ParseOsInfo(const std::string& reply_json, std::string_view uuid) {
  const ReplyContext rc{"guest-get-osinfo", uuid};
  auto ret = ReturnOf(reply_json, rc);
  if (!ret) return ret.error();
  if (!ret->is_object()) return Error{WrongType(rc, "return", *ret, "an object")};
  const json& r = *ret;
  std::map<std::string, std::string> fields;
  for (const char* key : {"id", "name", "kernel-version", "kernel-release"}) {
    auto m = Member(rc, r, key, &json::is_string, "a string");
    if (!m) return m.error();
    if (*m != nullptr) fields[key] = (*m)->get<std::string>();
  }
  if (fields["id"] == "mswindows" ||
      AsciiLower(fields["name"]).find("windows") != std::string::npos ||
      AsciiLower(fields["kernel-version"]).find("windows") != std::string::npos) {
    return GuestOsFamily::kWindows;
  }
  if (!fields["kernel-release"].empty() || !fields["id"].empty()) return GuestOsFamily::kLinux;
  return GuestOsFamily::kUnknown;
}

GuestOsFamily ParseOsInfoReply(const std::string& reply_json) {
  auto os = ParseOsInfo(reply_json, "?");
  return os ? *os : GuestOsFamily::kUnknown;
}

bool ReapGuestExec(GuestAgent& agent, const std::string& uuid, int64_t pid, int timeout_s) {
  const std::string req =
      json{{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}}.dump();
  auto reply = agent.Command(uuid, req, std::max(1, timeout_s));
  if (!reply) {
    // qemu-ga forgets a pid once its exit was reported or the agent
    // restarted: "Invalid parameter 'pid'". Anything else: still unknown.
    return AsciiLower(reply.error().message).find("invalid parameter") != std::string::npos;
  }
  const ReplyContext rc{"guest-exec-status", uuid};
  auto st = ReturnOf(*reply, rc);
  if (!st || !st->is_object()) return false;
  auto exited = Member(rc, *st, "exited", &json::is_boolean, "a boolean");
  return exited && *exited != nullptr && (*exited)->get<bool>();
}

namespace {

// The pid from a guest-exec reply ({"return":{"pid":N}}), N > 0.
Result<int64_t> ExecPid(const std::string& reply, const ReplyContext& rc) {
  auto ret = ReturnOf(reply, rc);
  if (!ret) return ret.error();
  if (!ret->is_object()) return Error{WrongType(rc, "return", *ret, "an object")};
  auto pid = IntMember(rc, *ret, "pid", 1, INT64_MAX);
  if (!pid) return pid.error();
  if (!*pid) return Error{ReplyError(rc, "no \"return.pid\"")};
  return **pid;
}

// "out-data"/"err-data" (base64, capped) and their "-truncated" flags.
Status DecodeStream(const ReplyContext& rc, const json& s, const char* data_key,
                    const char* trunc_key, size_t max_bytes, std::string* out, bool* truncated) {
  auto t = Member(rc, s, trunc_key, &json::is_boolean, "a boolean");
  if (!t) return t.error();
  if (*t != nullptr && (*t)->get<bool>()) *truncated = true;
  auto d = Member(rc, s, data_key, &json::is_string, "a string");
  if (!d) return d.error();
  if (*d == nullptr) return Status::Ok();
  auto bytes = DecodeBase64((*d)->get_ref<const std::string&>(), max_bytes, truncated);
  if (!bytes)
    return Error{ReplyError(rc, "\"return." + std::string(data_key) + "\" is not base64")};
  *out = std::move(*bytes);
  return Status::Ok();
}

// A guest-exec-status "return" object that says exited: the outcome, or
// the first member of the wrong type.
Result<GuestExecOutcome> ReadExitStatus(const ReplyContext& rc, const json& s, size_t max_bytes) {
  GuestExecOutcome o;
  o.kind = GuestExecOutcome::Kind::kExited;
  auto code = IntMember(rc, s, "exitcode", INT32_MIN, INT32_MAX);
  if (!code) return code.error();
  auto signal = IntMember(rc, s, "signal", 0, INT32_MAX);
  if (!signal) return signal.error();
  if (*code) {
    o.exit_code = static_cast<int>(**code);
  } else if (*signal) {
    o.signal = static_cast<int>(**signal);
    o.exit_code = -1;
  }
  if (Status st =
          DecodeStream(rc, s, "out-data", "out-truncated", max_bytes, &o.out, &o.out_truncated);
      !st.ok()) {
    return st.error();
  }
  if (Status st =
          DecodeStream(rc, s, "err-data", "err-truncated", max_bytes, &o.err, &o.err_truncated);
      !st.ok()) {
    return st.error();
  }
  return o;
}

}  // namespace

GuestExecOutcome RunGuestExec(GuestAgent& agent, const std::string& uuid,
                              const GuestCommand& command, const ExecLimits& limits,
                              const Clock& clock, const Sleeper& sleep, std::stop_token stop) {
  using Kind = GuestExecOutcome::Kind;
  const std::string what(command.display);
  int64_t remaining = limits.deadline_mono_ns - clock.MonotonicNs();
  if (remaining <= 0) return Failed(Kind::kTimeout, what + ": no time left before the deadline");

  auto started = agent.Command(uuid, GuestExecRequestJson(command), CallTimeoutS(remaining));
  if (!started) {
    const std::string& m = started.error().message;
    return Failed(MeansNotFound(m) ? Kind::kNotFound : Kind::kFailed, what + ": guest-exec: " + m);
  }
  auto pid_or = ExecPid(*started, ReplyContext{"guest-exec", uuid});
  if (!pid_or) return Failed(Kind::kFailed, what + ": " + pid_or.error().message);
  const int64_t pid = *pid_or;
  const std::string status_req =
      json{{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}}.dump();
  const ReplyContext rc{"guest-exec-status", uuid};
  // From here on the program may still run in the guest: every failure
  // carries its pid, so the caller can reap it later.
  auto failed = [&](Kind kind, std::string message) {
    GuestExecOutcome o = Failed(kind, std::move(message));
    o.pid = pid;
    return o;
  };

  int64_t pause_ns = 10'000'000;  // 10 ms, doubled up to 250 ms
  while (true) {
    remaining = limits.deadline_mono_ns - clock.MonotonicNs();
    if (remaining <= 0) {
      return failed(Kind::kTimeout, what + ": still running at the deadline (pid " +
                                        std::to_string(pid) + " in the guest)");
    }
    if (stop.stop_requested()) return failed(Kind::kFailed, what + ": exporter shutting down");
    auto reply = agent.Command(uuid, status_req, CallTimeoutS(remaining));
    if (!reply) {
      return failed(Kind::kFailed, what + ": guest-exec-status: " + reply.error().message);
    }
    auto st = ReturnOf(*reply, rc);
    if (!st) return failed(Kind::kFailed, what + ": " + st.error().message);
    if (!st->is_object()) {
      return failed(Kind::kFailed, what + ": " + WrongType(rc, "return", *st, "an object"));
    }
    auto exited = Member(rc, *st, "exited", &json::is_boolean, "a boolean");
    if (!exited) return failed(Kind::kFailed, what + ": " + exited.error().message);
    if (*exited == nullptr) {
      return failed(Kind::kFailed, what + ": " + ReplyError(rc, "no \"return.exited\""));
    }
    if ((*exited)->get<bool>()) {
      // Exited and reported: the agent has forgotten the pid, nothing to reap.
      auto o = ReadExitStatus(rc, *st, limits.max_output_bytes);
      if (!o) return Failed(Kind::kFailed, what + ": " + o.error().message);
      return std::move(*o);
    }
    int64_t nap = std::min(pause_ns, limits.deadline_mono_ns - clock.MonotonicNs());
    if (nap > 0) sleep(nap);
    pause_ns = std::min<int64_t>(pause_ns * 2, 250'000'000);
  }
}

}  // namespace vmtime::guest_status
