// libFuzzer target: Base64 and the Authorization header check
// (http/auth.h). Input: a header value. Invariants: decoding is strict
// (what decodes re-encodes to the same length), accepted credentials have a
// ':'-free user and no control bytes, and the Authenticator only allows the
// one configured credential (user "alice", password "pw", under a hasher
// without bcrypt's cost) and never runs a hash for a header it refused to
// parse.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "exporter/core/clock.h"
#include "exporter/http/auth.h"

namespace {
const std::string kHash = "$2b$04$" + std::string(53, 'h');
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string header(reinterpret_cast<const char*>(data), size);
  if (auto decoded = vmtime::Base64Decode(header)) {
    if ((decoded->size() + 2) / 3 * 4 != header.size()) std::abort();
  }
  auto creds = vmtime::ParseBasicAuthorization(header);
  if (creds.ok()) {
    if (creds->user.find(':') != std::string::npos) std::abort();
    for (char c : creds->user + creds->password) {
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) std::abort();
    }
  }
  static vmtime::FakeClock clock;
  int hashes = 0;
  vmtime::Authenticator auth({{"alice", kHash}}, clock, {.bcrypt_core_share = 1.0},
                             [&](const std::string& pw, const std::string& h) {
                               ++hashes;
                               return pw == "pw" ? h : std::string();
                             });
  const auto outcome = auth.Check(header);
  const bool good = creds.ok() && creds->user == "alice" && creds->password == "pw";
  if ((outcome == vmtime::AuthOutcome::kAllowed) != good) std::abort();
  if (!creds.ok() && hashes != 0) std::abort();
  if (creds.ok() && hashes != 1) std::abort();  // known or not: exactly one hash
  // The second check is answered from the cache.
  if (auth.Check(header) != outcome || hashes > 1) std::abort();
  return 0;
}
