// Basic auth (http/auth.h), the web config file (http/web_config.h) and the
// routing decision (http/router.h). Time is a FakeClock; the bcrypt cost of
// the dummy path is asserted through an injected, counting hasher, never
// through timing.
#include "exporter/http/auth.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "exporter/http/router.h"
#include "exporter/http/web_config.h"

namespace vmtime {
namespace {

using namespace std::string_literals;

std::string B64(const std::string& in) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(in[i]) << 16) |
                       (static_cast<unsigned char>(in[i + 1]) << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(kAlphabet[(v >> s) & 63]);
  }
  if (in.size() - i == 1) {
    const unsigned v = static_cast<unsigned char>(in[i]) << 16;
    out += std::string{kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63], '=', '='};
  } else if (in.size() - i == 2) {
    const unsigned v =
        (static_cast<unsigned char>(in[i]) << 16) | (static_cast<unsigned char>(in[i + 1]) << 8);
    out += std::string{kAlphabet[(v >> 18) & 63], kAlphabet[(v >> 12) & 63],
                       kAlphabet[(v >> 6) & 63], '='};
  }
  return out;
}

std::string Basic(const std::string& user_pass) { return "Basic " + B64(user_pass); }

// A real cost-4 bcrypt hash of "s3cret" (cheap enough for unit tests).
const std::string& AliceHash() {
  static const std::string hash = BcryptHash("s3cret", "$2b$04$abcdefghijklmnopqrstuu");
  return hash;
}

TEST(Base64, DecodesStrictRfc4648) {
  EXPECT_EQ(Base64Decode("YWxpY2U6czNjcmV0"), "alice:s3cret");
  EXPECT_EQ(Base64Decode("YQ=="), "a");
  EXPECT_EQ(Base64Decode("YWI="), "ab");
  EXPECT_EQ(Base64Decode(""), "");
  EXPECT_FALSE(Base64Decode("YQ"));        // padding missing
  EXPECT_FALSE(Base64Decode("Y==="));      // too much padding
  EXPECT_FALSE(Base64Decode("YQ==YQ=="));  // data after padding
  EXPECT_FALSE(Base64Decode("Y=Q="));
  EXPECT_FALSE(Base64Decode("YW-i"));  // URL alphabet is not Basic's
  EXPECT_FALSE(Base64Decode("YW i"));
  EXPECT_EQ(Base64Decode(B64("a\0b"s)), "a\0b"s);
}

TEST(ParseBasicAuthorization, SchemeIsCaseInsensitive) {
  for (const char* scheme : {"Basic", "basic", "BASIC", "bAsIc"}) {
    auto c = ParseBasicAuthorization(std::string(scheme) + " " + B64("alice:s3cret"));
    ASSERT_TRUE(c) << scheme << ": " << c.error().message;
    EXPECT_EQ(c->user, "alice");
    EXPECT_EQ(c->password, "s3cret");
  }
  auto spaced = ParseBasicAuthorization("Basic   " + B64("alice:a:b") + "  ");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->password, "a:b");  // the first ':' splits (RFC 7617)
}

TEST(ParseBasicAuthorization, RefusesMalformedHeadersAndControlBytes) {
  for (const std::string& h : std::vector<std::string>{
           ""s, "Basic"s, "Basic "s, "Basic\t" + B64("a:b"), "Basicx " + B64("a:b"),
           "Bearer " + B64("a:b"), " Basic " + B64("a:b"), "Basic " + B64("no-colon"),
           "Basic " + B64("alice:s3cret\0anything"s), "Basic " + B64("al\0ice:s3cret"s),
           "Basic " + B64("alice:s3\ncret"),
           "Basic YWxpY2U6czNjcmV0=", "Basic " + B64("a:b") + " x"}) {
    EXPECT_FALSE(ParseBasicAuthorization(h)) << "header: " << h;
  }
}

TEST(ConstantTimeEquals, ComparesLengthAndBytes) {
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "ab"));
  EXPECT_TRUE(ConstantTimeEquals("", ""));
}

TEST(BcryptCost, ReadsTheCostField) {
  EXPECT_EQ(BcryptCost("$2b$10$abc"), 10);
  EXPECT_EQ(BcryptCost("$2y$04$"), 4);
  EXPECT_EQ(BcryptCost(AliceHash()), 4);
  EXPECT_FALSE(BcryptCost("$1$10$abc"));
  EXPECT_FALSE(BcryptCost("$2x$10$abc"));
  EXPECT_FALSE(BcryptCost("$2b$1a$abc"));
  EXPECT_FALSE(BcryptCost("$2b"));
}

// Counts hasher calls and the settings they were given; each call "takes"
// `took_s` seconds of the fake clock.
struct CountingHasher {
  explicit CountingHasher(FakeClock* c) : clock(c) {}
  FakeClock* clock;
  double took_s = 0.1;
  std::vector<std::string> settings;
  std::function<void()> during;  // runs once inside the next hash (re-entrancy tests)

  Authenticator::Hasher Fn() {
    return [this](const std::string& password, const std::string& setting) {
      settings.push_back(setting);
      clock->AdvanceSeconds(took_s);
      if (auto once = std::exchange(during, nullptr)) once();
      return real ? BcryptHash(password, setting) : std::string();
    };
  }
  bool real = true;  // false: no bcrypt, every password wrong
};

class AuthenticatorTest : public ::testing::Test {
 protected:
  FakeClock clock_;
  CountingHasher hasher_{&clock_};
  std::map<std::string, std::string> users_{
      {"alice", AliceHash()}, {"bob", BcryptHash("pw", "$2b$05$abcdefghijklmnopqrstuu")}};

  Authenticator Make(AuthLimits limits = {}) {
    return Authenticator(users_, clock_, limits, hasher_.Fn());
  }
  // Waits out the bcrypt cool-down.
  void Cool() { clock_.AdvanceSeconds(10); }
};

TEST_F(AuthenticatorTest, NoUsersAllowsEverything) {
  Authenticator a({}, clock_, {}, hasher_.Fn());
  EXPECT_FALSE(a.enabled());
  EXPECT_EQ(a.Check(""), AuthOutcome::kAllowed);
  EXPECT_TRUE(hasher_.settings.empty());
}

TEST_F(AuthenticatorTest, GoodPasswordAllowedAndCached) {
  auto a = Make();
  EXPECT_EQ(a.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);
  EXPECT_EQ(a.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);        // no cool-down: cached
  EXPECT_EQ(a.Check("basic " + B64("alice:s3cret")), AuthOutcome::kBusy);  // other header
  EXPECT_EQ(hasher_.settings.size(), 1u);
  EXPECT_EQ(a.hashes_run(), 1u);
}

TEST_F(AuthenticatorTest, UnknownUserPaysADummyHashOfTheHighestCost) {
  auto a = Make();
  EXPECT_EQ(BcryptCost(a.dummy_setting()), 5);  // bob's cost 5 > alice's 4
  // The dummy setting is a real bcrypt setting: libcrypt computes a full hash.
  EXPECT_EQ(BcryptHash("x", a.dummy_setting()).size(), 60u);
  EXPECT_EQ(a.Check(Basic("mallory:s3cret")), AuthOutcome::kDenied);
  ASSERT_EQ(hasher_.settings.size(), 1u);
  EXPECT_EQ(hasher_.settings[0], a.dummy_setting());
  Cool();
  // A known user with a wrong password takes the same path: one hash.
  EXPECT_EQ(a.Check(Basic("alice:wrong")), AuthOutcome::kDenied);
  ASSERT_EQ(hasher_.settings.size(), 2u);
  EXPECT_EQ(hasher_.settings[1], AliceHash());
  // Alice's password under another name is refused although the dummy
  // path computed a hash.
  Cool();
  EXPECT_EQ(a.Check(Basic("nobody:s3cret")), AuthOutcome::kDenied);
}

TEST_F(AuthenticatorTest, FailuresAreCachedSoRepeatsCostNoHash) {
  auto a = Make();
  EXPECT_EQ(a.Check(Basic("alice:wrong")), AuthOutcome::kDenied);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.Check(Basic("alice:wrong")), AuthOutcome::kDenied);
  EXPECT_EQ(a.Check(Basic("mallory:x")), AuthOutcome::kBusy);  // cooling down
  EXPECT_EQ(hasher_.settings.size(), 1u);
}

TEST_F(AuthenticatorTest, MalformedHeadersAndNulNeverReachBcrypt) {
  auto a = Make();
  EXPECT_EQ(a.Check(""), AuthOutcome::kDenied);
  EXPECT_EQ(a.Check("Bearer abc"), AuthOutcome::kDenied);
  EXPECT_EQ(a.Check(Basic("alice:s3cret\0anything"s)), AuthOutcome::kDenied);
  EXPECT_EQ(a.Check("Basic YWxpY2U6czNjcmV0="), AuthOutcome::kDenied);
  EXPECT_TRUE(hasher_.settings.empty());
}

TEST_F(AuthenticatorTest, BcryptBudgetIsAShareOfOneCore) {
  // Each hash "takes" 0.1 s; at a 25% share the next may start 0.3 s later.
  hasher_.real = false;
  auto a = Make({.bcrypt_core_share = 0.25});
  EXPECT_EQ(a.Check(Basic("alice:w1")), AuthOutcome::kDenied);
  clock_.AdvanceSeconds(0.29);
  EXPECT_EQ(a.Check(Basic("alice:w2")), AuthOutcome::kBusy);
  clock_.AdvanceSeconds(0.02);
  EXPECT_EQ(a.Check(Basic("alice:w2")), AuthOutcome::kDenied);
  EXPECT_EQ(hasher_.settings.size(), 2u);
  // Over 100 s of fake time, at most 25 s of hashing are admitted.
  int hashed = 0;
  for (int i = 0; i < 1000; ++i) {
    const size_t before = hasher_.settings.size();
    (void)a.Check(Basic("alice:x" + std::to_string(i)));
    hashed += static_cast<int>(hasher_.settings.size() - before);
    clock_.AdvanceSeconds(0.1);  // 1000 requests over 100 s (+ hash time)
  }
  EXPECT_LE(hashed * 0.1, 0.25 * (100 + hashed * 0.1) + 0.1);
  EXPECT_GE(hashed, 200);  // and the budget is actually used
}

TEST_F(AuthenticatorTest, OneHashAtATimeOthersGetBusy) {
  auto a = Make({.bcrypt_core_share = 1.0});
  AuthOutcome inner = AuthOutcome::kAllowed;
  hasher_.during = [&] {
    inner = a.Check(Basic("bob:pw"));  // arrives while alice's hash runs
  };
  EXPECT_EQ(a.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);
  EXPECT_EQ(inner, AuthOutcome::kBusy);
  EXPECT_EQ(a.Check(Basic("bob:pw")), AuthOutcome::kAllowed);  // share 1.0: no cool-down
}

TEST_F(AuthenticatorTest, FailureCacheIsBoundedAndCannotEvictSuccesses) {
  auto a = Make({.bcrypt_core_share = 1.0, .success_cache_entries = 4, .failure_cache_entries = 2});
  EXPECT_EQ(a.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);
  for (const char* w : {"alice:w1", "alice:w2", "alice:w3"}) {
    EXPECT_EQ(a.Check(Basic(w)), AuthOutcome::kDenied);
  }
  const size_t hashes = hasher_.settings.size();
  EXPECT_EQ(hashes, 4u);
  EXPECT_EQ(a.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);  // still cached
  EXPECT_EQ(a.Check(Basic("alice:w3")), AuthOutcome::kDenied);       // cached
  EXPECT_EQ(hasher_.settings.size(), hashes);
  EXPECT_EQ(a.Check(Basic("alice:w1")), AuthOutcome::kDenied);  // evicted: hashed again
  EXPECT_EQ(hasher_.settings.size(), hashes + 1);
}

TEST_F(AuthenticatorTest, ReloadKeepsOnlySuccessesOfUnchangedUsers) {
  auto old_auth = Make({.bcrypt_core_share = 1.0});
  EXPECT_EQ(old_auth.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);
  EXPECT_EQ(old_auth.Check(Basic("bob:pw")), AuthOutcome::kAllowed);
  EXPECT_EQ(old_auth.Check(Basic("carol:pw")), AuthOutcome::kDenied);
  ASSERT_EQ(hasher_.settings.size(), 3u);
  // Reload: alice unchanged, bob removed, carol added with password "pw".
  users_.erase("bob");
  users_["carol"] = BcryptHash("pw", "$2b$04$abcdefghijklmnopqrstuu");
  Authenticator next(users_, clock_, {.bcrypt_core_share = 0.25}, hasher_.Fn());
  next.KeepSuccessesFrom(old_auth);
  EXPECT_EQ(next.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);  // cached, no hash
  EXPECT_EQ(hasher_.settings.size(), 3u);
  EXPECT_EQ(next.Check(Basic("bob:pw")), AuthOutcome::kDenied);  // removed: not carried
  EXPECT_EQ(hasher_.settings.size(), 4u);
  Cool();
  EXPECT_EQ(next.Check(Basic("carol:pw")), AuthOutcome::kAllowed);  // old failure not carried
  // A changed hash drops alice's cached success.
  users_["alice"] = BcryptHash("new", "$2b$04$abcdefghijklmnopqrstuu");
  Authenticator third(users_, clock_, {.bcrypt_core_share = 1.0}, hasher_.Fn());
  third.KeepSuccessesFrom(next);
  EXPECT_EQ(third.Check(Basic("alice:s3cret")), AuthOutcome::kDenied);
  EXPECT_EQ(third.Check(Basic("carol:pw")), AuthOutcome::kAllowed);  // carried
}

TEST_F(AuthenticatorTest, RealBcryptWithoutInjection) {
  Authenticator a(users_, clock_);
  EXPECT_EQ(a.Check(Basic("alice:s3cret")), AuthOutcome::kAllowed);
  Cool();
  EXPECT_EQ(a.Check(Basic("bob:pw")), AuthOutcome::kAllowed);
  Cool();
  EXPECT_EQ(a.Check(Basic("bob:s3cret")), AuthOutcome::kDenied);
  Cool();
  EXPECT_EQ(a.Check(Basic("alice:s3cretX")), AuthOutcome::kDenied);
  EXPECT_EQ(a.hashes_run(), 4u);
}

TEST(WebConfigFile, ParsesUsersAndWarnsAboveCost12) {
  const std::string h10 = "$2b$10$" + std::string(53, 'a');
  const std::string h13 = "$2b$13$" + std::string(53, 'a');
  auto w =
      BasicAuth::Parse("basic_auth_users:\n  alice: " + h10 + "\n  bob: " + h13 + "\n", "w.yml");
  ASSERT_TRUE(w) << w.error().message;
  EXPECT_EQ(w->users().size(), 2u);
  ASSERT_EQ(w->warnings().size(), 1u);
  EXPECT_EQ(
      w->warnings()[0].rfind("w.yml:3:8: basic_auth_users.bob: bcrypt cost 13 is above 12", 0), 0u)
      << w->warnings()[0];
}

TEST(WebConfigFile, RefusesBadHashesAndNamesWithPosition) {
  auto short_hash = BasicAuth::Parse("basic_auth_users:\n  alice: $2b$10$short\n", "w.yml");
  ASSERT_FALSE(short_hash);
  EXPECT_EQ(
      short_hash.error().message.rfind("w.yml:2:10: basic_auth_users.alice: expected a bcrypt", 0),
      0u)
      << short_hash.error().message;
  auto colon = BasicAuth::Parse("basic_auth_users:\n  'a:b': $2b$10$" + std::string(53, 'a') + "\n",
                                "w.yml");
  ASSERT_FALSE(colon);
  EXPECT_NE(colon.error().message.find("user name must be non-empty without ':'"),
            std::string::npos);
  auto yaml = BasicAuth::Parse("basic_auth_users: [\n", "w.yml");
  ASSERT_FALSE(yaml);
  EXPECT_NE(yaml.error().message.find("w.yml:"), std::string::npos);
  EXPECT_FALSE(BasicAuth::Parse("basic_auth_user: {}\n", "w.yml"));
}

TEST(Router, DecidesEndpointsMethodsAuthAndLifecycle) {
  int auth_calls = 0;
  auto allow = [&] {
    ++auth_calls;
    return AuthOutcome::kAllowed;
  };
  const RouteOptions off{"/metrics", false};
  const RouteOptions on{"/metrics", true};
  EXPECT_EQ(DecideRoute("GET", "/healthz", off, allow).endpoint, Endpoint::kHealthz);
  EXPECT_EQ(auth_calls, 0);  // liveness needs no auth
  EXPECT_EQ(DecideRoute("POST", "/healthz", off, allow).status, 405);
  EXPECT_EQ(DecideRoute("GET", "/metrics", off, allow).endpoint, Endpoint::kTelemetry);
  EXPECT_EQ(DecideRoute("HEAD", "/metrics", off, allow).endpoint, Endpoint::kTelemetry);
  EXPECT_EQ(DecideRoute("GET", "/prom", RouteOptions{"/prom", false}, allow).endpoint,
            Endpoint::kTelemetry);
  EXPECT_EQ(DecideRoute("GET", "/readyz", off, allow).endpoint, Endpoint::kReadyz);
  EXPECT_EQ(DecideRoute("GET", "/api/v1/targets", off, allow).endpoint, Endpoint::kTargets);
  EXPECT_EQ(DecideRoute("GET", "/", off, allow).endpoint, Endpoint::kStatusPage);
  EXPECT_EQ(DecideRoute("GET", "/nope", off, allow).status, 404);
  EXPECT_EQ(DecideRoute("DELETE", "/metrics", off, allow).allow, "GET, HEAD");
  // Lifecycle: 405 for the wrong method either way, 403 when off, 200 when on.
  EXPECT_EQ(DecideRoute("GET", "/-/reload", off, allow).status, 405);
  EXPECT_EQ(DecideRoute("GET", "/-/reload", off, allow).allow, "POST, PUT");
  const auto refused = DecideRoute("POST", "/-/reload", off, allow);
  EXPECT_EQ(refused.endpoint, Endpoint::kLifecycleDisabled);
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(DecideRoute("PUT", "/-/reload", on, allow).endpoint, Endpoint::kReload);
  // Auth comes before everything but /healthz, reload included.
  auto deny = [] { return AuthOutcome::kDenied; };
  auto busy = [] { return AuthOutcome::kBusy; };
  EXPECT_EQ(DecideRoute("POST", "/-/reload", on, deny).status, 401);
  EXPECT_EQ(DecideRoute("GET", "/nope", off, deny).status, 401);
  EXPECT_EQ(DecideRoute("GET", "/metrics", off, busy).status, 429);
  EXPECT_EQ(DecideRoute("GET", "/healthz", off, deny).status, 200);
}

}  // namespace
}  // namespace vmtime
