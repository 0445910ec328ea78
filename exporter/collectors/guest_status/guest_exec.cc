// Bounded guest-exec through the guest agent (see guest_exec.h).
#include "exporter/collectors/guest_status/guest_exec.h"

#include <algorithm>
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

// The "return" member of a reply, or an error naming what was wrong.
Result<json> ReturnOf(const std::string& reply, std::string_view what) {
  json j = json::parse(reply, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) {
    return Error{std::string(what) + ": reply is not a JSON object"};
  }
  auto it = j.find("return");
  if (it == j.end()) {
    if (auto e = j.find("error"); e != j.end() && e->is_object()) {
      std::string desc = e->value("desc", std::string("agent error"));
      return Error{std::string(what) + ": " + desc};
    }
    return Error{std::string(what) + ": reply has no \"return\""};
  }
  return *it;
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

GuestOsFamily ParseOsInfoReply(const std::string& reply_json) {
  auto ret = ReturnOf(reply_json, "guest-get-osinfo");
  if (!ret || !ret->is_object()) return GuestOsFamily::kUnknown;
  const json& r = *ret;
  auto str = [&](const char* k) {
    auto it = r.find(k);
    return it != r.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  if (str("id") == "mswindows" || AsciiLower(str("name")).find("windows") != std::string::npos ||
      AsciiLower(str("kernel-version")).find("windows") != std::string::npos) {
    return GuestOsFamily::kWindows;
  }
  if (!str("kernel-release").empty() || !str("id").empty()) return GuestOsFamily::kLinux;
  return GuestOsFamily::kUnknown;
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
  auto st = ReturnOf(*reply, "guest-exec-status");
  if (!st || !st->is_object()) return false;
  auto exited = st->find("exited");
  return exited != st->end() && exited->is_boolean() && exited->get<bool>();
}

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
  auto ret = ReturnOf(*started, "guest-exec");
  if (!ret) return Failed(Kind::kFailed, what + ": " + ret.error().message);
  auto pid_it = ret->is_object() ? ret->find("pid") : ret->end();
  if (!ret->is_object() || pid_it == ret->end() || !pid_it->is_number_integer()) {
    return Failed(Kind::kFailed, what + ": guest-exec reply has no integer pid");
  }
  const int64_t pid = pid_it->get<int64_t>();
  const std::string status_req =
      json{{"execute", "guest-exec-status"}, {"arguments", {{"pid", pid}}}}.dump();

  int64_t pause_ns = 10'000'000;  // 10 ms, doubled up to 250 ms
  while (true) {
    remaining = limits.deadline_mono_ns - clock.MonotonicNs();
    if (remaining <= 0) {
      GuestExecOutcome o = Failed(Kind::kTimeout, what + ": still running at the deadline (pid " +
                                                      std::to_string(pid) + " in the guest)");
      o.pid = pid;
      return o;
    }
    if (stop.stop_requested()) return Failed(Kind::kFailed, what + ": exporter shutting down");
    auto reply = agent.Command(uuid, status_req, CallTimeoutS(remaining));
    if (!reply)
      return Failed(Kind::kFailed, what + ": guest-exec-status: " + reply.error().message);
    auto st = ReturnOf(*reply, "guest-exec-status");
    if (!st) return Failed(Kind::kFailed, what + ": " + st.error().message);
    if (!st->is_object()) return Failed(Kind::kFailed, what + ": guest-exec-status: not an object");
    const json& s = *st;
    auto exited = s.find("exited");
    if (exited == s.end() || !exited->is_boolean()) {
      return Failed(Kind::kFailed, what + ": guest-exec-status reply has no \"exited\"");
    }
    if (exited->get<bool>()) {
      GuestExecOutcome o;
      o.kind = Kind::kExited;
      if (auto c = s.find("exitcode"); c != s.end() && c->is_number_integer()) {
        o.exit_code = c->get<int>();
      } else if (auto g = s.find("signal"); g != s.end() && g->is_number_integer()) {
        o.signal = g->get<int>();
        o.exit_code = -1;
      }
      auto decode = [&](const char* data_key, const char* trunc_key, std::string* out,
                        bool* truncated) -> bool {
        if (auto t = s.find(trunc_key); t != s.end() && t->is_boolean() && t->get<bool>()) {
          *truncated = true;
        }
        auto d = s.find(data_key);
        if (d == s.end()) return true;
        if (!d->is_string()) return false;
        auto bytes =
            DecodeBase64(d->get_ref<const std::string&>(), limits.max_output_bytes, truncated);
        if (!bytes) return false;
        *out = std::move(*bytes);
        return true;
      };
      if (!decode("out-data", "out-truncated", &o.out, &o.out_truncated)) {
        return Failed(Kind::kFailed, what + ": out-data is not base64");
      }
      if (!decode("err-data", "err-truncated", &o.err, &o.err_truncated)) {
        return Failed(Kind::kFailed, what + ": err-data is not base64");
      }
      return o;
    }
    int64_t nap = std::min(pause_ns, limits.deadline_mono_ns - clock.MonotonicNs());
    if (nap > 0) sleep(nap);
    pause_ns = std::min<int64_t>(pause_ns * 2, 250'000'000);
  }
}

}  // namespace vmtime::guest_status
