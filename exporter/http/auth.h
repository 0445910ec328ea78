// HTTP basic authentication (RFC 7617) that costs the same for everyone.
//
// An Authenticator is immutable apart from its caches and is swapped as a
// whole on reload, so a removed user is refused by the next request. Every
// uncached credential, known user or not, pays one bcrypt computation of the
// same cost: an unknown user is checked against a dummy bcrypt setting whose
// cost is the highest configured cost, so the answer time does not tell
// whether a user exists. Outcomes are cached under a keyed SHA-256 digest of
// the Authorization header (successes and failures in separate bounded
// caches, so failures cannot evict successes); secrets are never used as map
// keys and hashes are compared in constant time.
//
// bcrypt work is bounded: one verification at a time, and after a
// verification that took d seconds no new one starts for d * (1 / share - 1)
// seconds, so uncached credentials use at most `share` of one core (25% by
// default). A request that finds the slot busy or cooling down is not queued:
// it gets kBusy (HTTP 429 with Retry-After), so attackers cannot hold server
// threads. Prometheus sends the same header on every scrape, which is served
// from the success cache without bcrypt.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "exporter/core/clock.h"
#include "exporter/core/result.h"

namespace vmtime {

// Strict RFC 4648 base64 (standard alphabet, padding required, length a
// multiple of 4). Returns nullopt for anything else.
std::optional<std::string> Base64Decode(std::string_view in);

struct BasicCredentials {
  std::string user;
  std::string password;
};

// Parses an Authorization header value: scheme "Basic" in any letter case,
// one or more spaces, a base64 token, optional trailing spaces. The decoded
// text must contain a ':' and no NUL or other control byte. The error names
// what is wrong, never the secret.
Result<BasicCredentials> ParseBasicAuthorization(std::string_view header);

// True when a and b have the same length and bytes; the time taken depends
// only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// The cost of a bcrypt hash or setting ("$2b$10$..." -> 10), or nullopt.
std::optional<int> BcryptCost(std::string_view hash);

enum class AuthOutcome { kAllowed, kDenied, kBusy };

struct AuthLimits {
  double bcrypt_core_share = 0.25;  // fraction of one core for uncached checks
  size_t success_cache_entries = 1024;
  size_t failure_cache_entries = 4096;
};

class Authenticator {
 public:
  // Computes bcrypt(password, hash_or_setting) and returns the result
  // (empty on error). Injectable so tests can count calls.
  using Hasher = std::function<std::string(const std::string& password, const std::string& hash)>;

  // users: user name -> bcrypt hash. An empty map disables auth.
  Authenticator(std::map<std::string, std::string> users, const Clock& clock,
                AuthLimits limits = {}, Hasher hasher = {});

  bool enabled() const { return !users_.empty(); }
  // `authorization` is the raw Authorization header value (may be empty).
  AuthOutcome Check(std::string_view authorization) const;

  // Reload: takes over `previous`'s cached successes of users whose hash is
  // unchanged, so a scraper keeps its cached credential across a reload
  // (and needs no bcrypt slot while wrong passwords flood). Removed users
  // and changed hashes are not carried; failures never are (a user may have
  // been added). Call before the authenticator is shared.
  void KeepSuccessesFrom(const Authenticator& previous);

  // Counters for tests and the log.
  uint64_t hashes_run() const;
  const std::string& dummy_setting() const { return dummy_setting_; }

 private:
  using Digest = std::string;  // 32 raw bytes
  Digest Key(std::string_view header) const;
  std::optional<bool> Cached(const Digest& key) const;
  void Remember(const Digest& key, bool allowed, const std::string& user) const;
  bool TryAcquire() const;
  void Release(int64_t started_ns) const;
  bool Verify(const BasicCredentials& creds) const;

  std::map<std::string, std::string> users_;
  const Clock& clock_;
  AuthLimits limits_;
  Hasher hasher_;
  std::string dummy_setting_;  // bcrypt setting at the highest configured cost
  std::string cache_key_;      // random per instance: digests cannot be precomputed

  // Bounded LRU caches of digests (the user is kept for successes only).
  struct Entry {
    Digest key;
    std::string user;
  };
  struct Cache {
    std::list<Entry> order;  // most recent first
    std::unordered_map<Digest, std::list<Entry>::iterator> index;
  };
  mutable std::mutex mu_;
  mutable Cache successes_;
  mutable Cache failures_;
  mutable bool hashing_ = false;
  mutable int64_t next_start_ns_ = 0;  // monotonic; no bcrypt before this
  mutable uint64_t hashes_run_ = 0;
};

// libcrypt's bcrypt.
std::string BcryptHash(const std::string& password, const std::string& hash_or_setting);

}  // namespace vmtime
