#include "exporter/http/auth.h"

#include <crypt.h>
#include <openssl/evp.h>
#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <memory>
#include <random>

namespace vmtime {
namespace {

int Base64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// The kernel's CSPRNG (getrandom(2)), not OpenSSL's RAND_bytes: an
// Authenticator is built even without users, and RAND_bytes would
// initialise libcrypto (up to 1.9 MiB more resident) whether TLS or auth is
// configured or not (docs/performance.md, "HTTP connections").
std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    const ssize_t got = getrandom(out.data() + done, n - done, 0);
    if (got <= 0) break;  // EINTR before any byte, or no getrandom (ENOSYS)
    done += static_cast<size_t>(got);
  }
  if (done < n) {
    std::random_device rd;  // glibc's random_device also reads the kernel's source
    for (size_t i = done; i < n; ++i) out[i] = static_cast<char>(rd() & 0xff);
  }
  return out;
}

// A bcrypt setting ("$2b$NN$<22 salt chars>") with a random salt.
std::string DummySetting(int cost) {
  const std::string entropy = RandomBytes(16);
  std::array<char, CRYPT_GENSALT_OUTPUT_SIZE> out{};
  if (crypt_gensalt_rn("$2b$", static_cast<unsigned long>(cost), entropy.data(),
                       static_cast<int>(entropy.size()), out.data(),
                       static_cast<int>(out.size())) == nullptr) {
    return "$2b$10$abcdefghijklmnopqrstuu";  // cost 10, fixed salt
  }
  return out.data();
}

}  // namespace

std::optional<std::string> Base64Decode(std::string_view in) {
  if (in.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (size_t i = 0; i < in.size(); i += 4) {
    const bool last = i + 4 == in.size();
    int v[4];
    int padding = 0;
    for (int j = 0; j < 4; ++j) {
      const char c = in[i + j];
      if (c == '=' && last && j >= 2) {
        ++padding;
        v[j] = 0;
        continue;
      }
      if (padding > 0) return std::nullopt;  // data after '='
      v[j] = Base64Value(c);
      if (v[j] < 0) return std::nullopt;
    }
    const unsigned group = (static_cast<unsigned>(v[0]) << 18) |
                           (static_cast<unsigned>(v[1]) << 12) |
                           (static_cast<unsigned>(v[2]) << 6) | static_cast<unsigned>(v[3]);
    out.push_back(static_cast<char>((group >> 16) & 0xff));
    if (padding < 2) out.push_back(static_cast<char>((group >> 8) & 0xff));
    if (padding < 1) out.push_back(static_cast<char>(group & 0xff));
  }
  return out;
}

Result<BasicCredentials> ParseBasicAuthorization(std::string_view header) {
  if (header.empty()) return Error{"no Authorization header"};
  constexpr std::string_view kScheme = "basic";
  const size_t space = header.find(' ');
  if (space == std::string_view::npos || space != kScheme.size()) {
    return Error{"Authorization: expected scheme Basic"};
  }
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) {
      return Error{"Authorization: expected scheme Basic"};
    }
  }
  std::string_view token = header.substr(space);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty()) return Error{"Authorization: Basic without credentials"};
  const auto decoded = Base64Decode(token);
  if (!decoded) return Error{"Authorization: credentials are not valid base64"};
  for (char c : *decoded) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return Error{"Authorization: control byte in credentials"};
  }
  const size_t colon = decoded->find(':');
  if (colon == std::string::npos) return Error{"Authorization: credentials without ':'"};
  return BasicCredentials{decoded->substr(0, colon), decoded->substr(colon + 1)};
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

std::optional<int> BcryptCost(std::string_view hash) {
  // $2a$NN$, $2b$NN$, $2y$NN$
  if (hash.size() < 7 || hash[0] != '$' || hash[1] != '2' || hash[3] != '$' || hash[6] != '$') {
    return std::nullopt;
  }
  if (hash[2] != 'a' && hash[2] != 'b' && hash[2] != 'y') return std::nullopt;
  if (!std::isdigit(static_cast<unsigned char>(hash[4])) ||
      !std::isdigit(static_cast<unsigned char>(hash[5]))) {
    return std::nullopt;
  }
  return (hash[4] - '0') * 10 + (hash[5] - '0');
}

std::string BcryptHash(const std::string& password, const std::string& hash_or_setting) {
  // On the heap: crypt_data is 32 KiB, and on the stack every HTTP worker
  // that ever checked a password would keep those pages resident.
  auto data = std::make_unique<crypt_data>();
  const char* out = crypt_r(password.c_str(), hash_or_setting.c_str(), data.get());
  // libcrypt returns a string starting with '*' on failure.
  if (out == nullptr || out[0] == '*') return {};
  return out;
}

Authenticator::Authenticator(std::map<std::string, std::string> users, const Clock& clock,
                             AuthLimits limits, Hasher hasher)
    : users_(std::move(users)),
      clock_(clock),
      limits_(limits),
      hasher_(hasher ? std::move(hasher) : Hasher(BcryptHash)),
      cache_key_(RandomBytes(32)) {
  limits_.bcrypt_core_share = std::clamp(limits_.bcrypt_core_share, 0.01, 1.0);
  int cost = 4;  // bcrypt's minimum
  for (const auto& [user, hash] : users_) cost = std::max(cost, BcryptCost(hash).value_or(cost));
  dummy_setting_ = DummySetting(cost);
}

Authenticator::Digest Authenticator::Key(std::string_view header) const {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, cache_key_.data(), cache_key_.size()) != 1 ||
      EVP_DigestUpdate(ctx, header.data(), header.size()) != 1 ||
      EVP_DigestFinal_ex(ctx, md.data(), &len) != 1) {
    len = 0;  // no digest: the empty key is never cached (see Remember)
  }
  EVP_MD_CTX_free(ctx);
  return Digest(reinterpret_cast<const char*>(md.data()), len);
}

std::optional<bool> Authenticator::Cached(const Digest& key) const {
  if (key.empty()) return std::nullopt;
  std::lock_guard lock(mu_);
  for (Cache* cache : {&successes_, &failures_}) {
    auto it = cache->index.find(key);
    if (it == cache->index.end()) continue;
    cache->order.splice(cache->order.begin(), cache->order, it->second);
    return cache == &successes_;
  }
  return std::nullopt;
}

void Authenticator::Remember(const Digest& key, bool allowed, const std::string& user) const {
  if (key.empty()) return;
  std::lock_guard lock(mu_);
  Cache& cache = allowed ? successes_ : failures_;
  const size_t limit = allowed ? limits_.success_cache_entries : limits_.failure_cache_entries;
  if (limit == 0 || cache.index.count(key) > 0) return;
  cache.order.push_front({key, allowed ? user : std::string()});
  cache.index[key] = cache.order.begin();
  while (cache.order.size() > limit) {
    cache.index.erase(cache.order.back().key);
    cache.order.pop_back();
  }
}

void Authenticator::KeepSuccessesFrom(const Authenticator& previous) {
  std::scoped_lock lock(mu_, previous.mu_);
  cache_key_ = previous.cache_key_;  // same digests for the same headers
  successes_ = {};
  failures_ = {};
  // Oldest first, so the most recent ends up in front.
  for (auto it = previous.successes_.order.rbegin(); it != previous.successes_.order.rend(); ++it) {
    auto now = users_.find(it->user);
    auto before = previous.users_.find(it->user);
    if (now == users_.end() || before == previous.users_.end() ||
        !ConstantTimeEquals(now->second, before->second)) {
      continue;
    }
    if (successes_.order.size() >= limits_.success_cache_entries) break;
    successes_.order.push_front(*it);
    successes_.index[it->key] = successes_.order.begin();
  }
}

bool Authenticator::TryAcquire() const {
  std::lock_guard lock(mu_);
  if (hashing_ || clock_.MonotonicNs() < next_start_ns_) return false;
  hashing_ = true;
  return true;
}

void Authenticator::Release(int64_t started_ns) const {
  const int64_t now = clock_.MonotonicNs();
  const int64_t took_ns = std::max<int64_t>(0, now - started_ns);
  const double idle = 1.0 / limits_.bcrypt_core_share - 1.0;
  std::lock_guard lock(mu_);
  hashing_ = false;
  ++hashes_run_;
  next_start_ns_ = now + static_cast<int64_t>(static_cast<double>(took_ns) * idle);
}

bool Authenticator::Verify(const BasicCredentials& creds) const {
  // Known and unknown users take the same path: one hash of the same cost.
  auto it = users_.find(creds.user);
  const bool known = it != users_.end();
  const std::string& setting = known ? it->second : dummy_setting_;
  const std::string computed = hasher_(creds.password, setting);
  const bool match = !computed.empty() && ConstantTimeEquals(computed, setting);
  return known && match;
}

AuthOutcome Authenticator::Check(std::string_view authorization) const {
  if (!enabled()) return AuthOutcome::kAllowed;
  const Digest key = Key(authorization);
  if (auto cached = Cached(key)) return *cached ? AuthOutcome::kAllowed : AuthOutcome::kDenied;
  auto creds = ParseBasicAuthorization(authorization);
  if (!creds) return AuthOutcome::kDenied;  // malformed: no bcrypt, nothing to cache
  if (!TryAcquire()) return AuthOutcome::kBusy;
  const int64_t started = clock_.MonotonicNs();
  bool allowed = false;
  try {
    allowed = Verify(*creds);
  } catch (...) {
    Release(started);
    throw;
  }
  Release(started);
  Remember(key, allowed, creds->user);
  return allowed ? AuthOutcome::kAllowed : AuthOutcome::kDenied;
}

uint64_t Authenticator::hashes_run() const {
  std::lock_guard lock(mu_);
  return hashes_run_;
}

}  // namespace vmtime
