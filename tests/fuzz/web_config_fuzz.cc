// libFuzzer target: the --web.config.file parsers over arbitrary text:
// basic_auth_users (http/web_config.h), then an Authenticator built from
// whatever it accepted, and tls_server_config (http/tls_config.h).
// Accepted users have bcrypt-shaped hashes and names without ':' or NUL; an
// accepted TLS block names both files, resolved against the file's
// directory; refusals name the file.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "exporter/core/clock.h"
#include "exporter/http/auth.h"
#include "exporter/http/tls_config.h"
#include "exporter/http/web_config.h"

namespace {

void CheckTls(const std::string& text) {
  auto tls = vmtime::ParseTlsServerConfig(text, "web.yml", "/etc/vmtime");
  if (!tls.ok()) {
    if (tls.error().message.rfind("web.yml", 0) != 0) std::abort();
    return;
  }
  if (!tls->has_value()) return;
  const vmtime::TlsServerConfig& c = **tls;
  if (c.cert_file.empty() || c.key_file.empty()) std::abort();
  if (c.cert_file[0] != '/' || c.key_file[0] != '/') std::abort();
  if (!c.client_ca_file.empty() && c.client_ca_file[0] != '/') std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  CheckTls(text);
  auto r = vmtime::BasicAuth::Parse(text, "web.yml");
  if (!r.ok()) {
    if (r.error().message.rfind("web.yml", 0) != 0) std::abort();
    return 0;
  }
  for (const auto& [user, hash] : r->users()) {
    if (user.empty() || user.find(':') != std::string::npos) std::abort();
    if (user.find('\0') != std::string::npos) std::abort();
    if (!vmtime::BcryptCost(hash) || hash.size() != 60) std::abort();
  }
  static vmtime::FakeClock clock;
  // A hasher without bcrypt's cost: the fuzzer explores, bcrypt is libcrypt's.
  vmtime::Authenticator auth(
      r->users(), clock, {},
      [](const std::string& pw, const std::string& h) { return pw == "pw" ? h : std::string(); });
  if (auth.enabled() != !r->users().empty()) std::abort();
  if (vmtime::BcryptCost(auth.dummy_setting()).value_or(0) < 4) std::abort();
  return 0;
}
