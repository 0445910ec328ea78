// tls_server_config parsing (every key, every bad value names file, line
// and key), TlsContexts loading errors and replacement with real PEM files
// made by the openssl tool, and the Host allow-list helpers.
#include "exporter/http/tls_config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "exporter/http/server.h"
#include "exporter/http/web_config.h"

namespace vmtime {
namespace {

Result<std::optional<TlsServerConfig>> Parse(const std::string& yaml) {
  return ParseTlsServerConfig(yaml, "web.yml", "/etc/vmtime");
}

std::string ParseError(const std::string& yaml) {
  auto r = Parse(yaml);
  EXPECT_FALSE(r.ok()) << yaml;
  return r.ok() ? "" : r.error().message;
}

constexpr const char* kMinimal = "tls_server_config:\n  cert_file: a.crt\n  key_file: /k/a.key\n";

TEST(TlsConfig, AbsentOrEmptyBlockMeansPlainHttp) {
  for (const char* yaml :
       {"", "basic_auth_users: {}\n", "tls_server_config:\n", "tls_server_config: {}\n"}) {
    auto r = Parse(yaml);
    ASSERT_TRUE(r.ok()) << yaml << r.error().message;
    EXPECT_FALSE(r->has_value()) << yaml;
  }
}

TEST(TlsConfig, MinimalBlockResolvesRelativePathsAgainstTheFilesDirectory) {
  auto r = Parse(kMinimal);
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_TRUE(r->has_value());
  const TlsServerConfig& c = **r;
  EXPECT_EQ(c.cert_file, "/etc/vmtime/a.crt");
  EXPECT_EQ(c.key_file, "/k/a.key");
  EXPECT_EQ(c.client_auth, ClientAuth::kNoClientCert);
  EXPECT_EQ(c.min_version, TlsVersion::kTls12);
  EXPECT_FALSE(c.max_version.has_value());
  EXPECT_TRUE(c.cipher_suites.empty());
  EXPECT_TRUE(c.prefer_server_cipher_suites);
}

TEST(TlsConfig, EveryKey) {
  auto r = Parse(std::string(kMinimal) +
                 "  client_auth_type: RequireAndVerifyClientCert\n"
                 "  client_ca_file: ca.pem\n"
                 "  min_version: TLS12\n"
                 "  max_version: TLS13\n"
                 "  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,\n"
                 "                  TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305]\n"
                 "  prefer_server_cipher_suites: false\n"
                 "  curve_preferences: [X25519, CurveP256]\n");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const TlsServerConfig& c = **r;
  EXPECT_EQ(c.client_auth, ClientAuth::kRequireAndVerifyClientCert);
  EXPECT_EQ(c.client_ca_file, "/etc/vmtime/ca.pem");
  EXPECT_EQ(c.max_version, TlsVersion::kTls13);
  EXPECT_EQ(c.cipher_suites, (std::vector<std::string>{"ECDHE-RSA-AES128-GCM-SHA256",
                                                       "ECDHE-ECDSA-CHACHA20-POLY1305"}));
  EXPECT_FALSE(c.prefer_server_cipher_suites);
  EXPECT_EQ(c.curve_groups, (std::vector<std::string>{"X25519", "P-256"}));
}

TEST(TlsConfig, EveryClientAuthType) {
  const std::pair<const char*, ClientAuth> kTypes[] = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert}};
  for (const auto& [name, type] : kTypes) {
    const bool ca = type != ClientAuth::kNoClientCert;
    auto r = Parse(std::string(kMinimal) + "  client_auth_type: " + name + "\n" +
                   (ca ? "  client_ca_file: ca.pem\n" : ""));
    ASSERT_TRUE(r.ok()) << name << ": " << r.error().message;
    EXPECT_EQ((*r)->client_auth, type) << name;
  }
}

struct BadCase {
  std::string yaml;
  std::string expected;  // a part of the message
};

TEST(TlsConfig, EveryBadKeyOrValueIsNamedWithFileAndLine) {
  const std::string m = kMinimal;
  const std::vector<BadCase> kCases = {
      {"tls_server_config: [a]\n", "web.yml:1:20: tls_server_config: expected a mapping"},
      {"tls_server_config: {bogus: 1}\n", "tls_server_config.bogus: unknown key (known: cert_file"},
      {"tls_server_config:\n  key_file: k\n", "cert_file and key_file are both required"},
      {"tls_server_config:\n  cert_file: c\n", "cert_file and key_file are both required"},
      {"tls_server_config:\n  cert_file: ''\n  key_file: k\n",
       "tls_server_config.cert_file: empty path"},
      {"tls_server_config:\n  cert_file: [c]\n  key_file: k\n", "cert_file: expected a string"},
      {"tls_server_config:\n  cert_file: c\n  cert_file: d\n  key_file: k\n",
       "web.yml:3:3: tls_server_config.cert_file: duplicate key"},
      {m + "  client_auth_type: Sometimes\n",
       "web.yml:4:21: tls_server_config.client_auth_type: 'Sometimes' is not one of NoClientCert"},
      {m + "  client_auth_type: RequireAndVerifyClientCert\n",
       "VerifyClientCertIfGiven and RequireAndVerifyClientCert need client_ca_file"},
      {m + "  client_auth_type: VerifyClientCertIfGiven\n", "need client_ca_file"},
      {m + "  client_ca_file: ca.pem\n",
       "client_ca_file is set but client_auth_type is NoClientCert"},
      {m + "  client_ca_file: ''\n", "client_ca_file: empty path"},
      {m + "  min_version: TLS11\n", "min_version: 'TLS11' is not offered (TLS 1.0 and 1.1"},
      {m + "  min_version: TLS10\n", "min_version: 'TLS10' is not offered"},
      {m + "  min_version: TLS14\n",
       "web.yml:4:16: tls_server_config.min_version: 'TLS14' is not one of TLS12, TLS13"},
      {m + "  max_version: tls13\n", "max_version: 'tls13' is not one of TLS12, TLS13"},
      {m + "  min_version: TLS13\n  max_version: TLS12\n", "max_version is below min_version"},
      {m + "  cipher_suites: TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n",
       "cipher_suites: expected a list of strings"},
      {m + "  cipher_suites: [[a]]\n", "cipher_suites: expected a list of strings"},
      {m + "  cipher_suites: [TLS_NOPE_WITH_NOTHING]\n",
       "unknown cipher suite 'TLS_NOPE_WITH_NOTHING'"},
      {m + "  cipher_suites: [ECDHE-RSA-AES128-GCM-SHA256]\n",
       "unknown cipher suite 'ECDHE-RSA-AES128-GCM-SHA256' (IANA names"},
      {m + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", "is a TLS 1.3 suite"},
      {m + "  prefer_server_cipher_suites: maybe\n",
       "prefer_server_cipher_suites: expected true or false"},
      {m + "  curve_preferences: [P-256]\n", "curve_preferences: 'P-256' is not one of CurveP256"},
      {m + "  curve_preferences: X25519\n", "curve_preferences: expected a list of strings"},
      {m + "  cert: '-----BEGIN'\n", "tls_server_config.cert: not supported by vmtime-exporter"},
      {m + "  key: '-----BEGIN'\n", "tls_server_config.key: not supported"},
      {m + "  client_ca: x\n", "tls_server_config.client_ca: not supported"},
      {m + "  client_allowed_sans: [a]\n", "client_allowed_sans: not supported"},
      {"tls_server_config:\n  cert_file: [\n", "web.yml:3:1: invalid YAML"},
  };
  for (const auto& c : kCases) {
    const std::string msg = ParseError(c.yaml);
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.yaml << "\n-> " << msg;
    EXPECT_EQ(msg.rfind("web.yml", 0), 0u) << msg;
  }
}

TEST(TlsConfig, BasicAuthParserAcceptsTheTlsBlock) {
  auto auth = BasicAuth::Parse(std::string(kMinimal), "web.yml");
  EXPECT_TRUE(auth.ok()) << auth.error().message;
}

TEST(TlsConfig, LoadNamesAMissingFile) {
  auto r = LoadTlsServerConfig("/nonexistent/web.yml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "/nonexistent/web.yml: cannot open web config file: No such file or directory");
  auto none = LoadTlsServerConfig("");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
}

// Real PEM files from the openssl tool in a private directory.
class TlsFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vmtime-tls-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* name : {"a", "b"}) {
      const std::string cmd =
          "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj "
          "/CN=" +
          std::string(name) + " -keyout " + dir_ + "/" + name + ".key -out " + dir_ + "/" + name +
          ".crt 2>/dev/null";
      ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    }
    std::ofstream(dir_ + "/junk.pem") << "not a certificate\n";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  TlsServerConfig Config(const std::string& cert, const std::string& key) const {
    TlsServerConfig c;
    c.cert_file = dir_ + "/" + cert;
    c.key_file = dir_ + "/" + key;
    return c;
  }
  std::string dir_;
};

TEST_F(TlsFiles, LoadsAndReplaces) {
  auto t = TlsContexts::Create(Config("a.crt", "a.key"));
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_NE((*t)->front(), nullptr);
  EXPECT_TRUE((*t)->Replace(Config("b.crt", "b.key")).ok());
  EXPECT_EQ((*t)->config().cert_file, dir_ + "/b.crt");
  // A bad replacement keeps the running one.
  Status bad = (*t)->Replace(Config("a.crt", "b.key"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("tls_server_config.key_file: " + dir_ +
                               "/b.key: does not match cert_file"),
            std::string::npos)
      << bad.message();
  EXPECT_EQ((*t)->config().cert_file, dir_ + "/b.crt");
}

TEST_F(TlsFiles, LoadErrorsNameKeyAndFile) {
  const std::vector<std::pair<TlsServerConfig, std::string>> kCases = {
      {Config("missing.crt", "a.key"),
       "tls_server_config.cert_file: " + dir_ + "/missing.crt: No such file or directory"},
      {Config("a.crt", "missing.key"),
       "tls_server_config.key_file: " + dir_ + "/missing.key: No such file or directory"},
      {Config("junk.pem", "a.key"),
       "tls_server_config.cert_file: " + dir_ + "/junk.pem: not a PEM certificate"},
      {Config("a.crt", "junk.pem"),
       "tls_server_config.key_file: " + dir_ + "/junk.pem: not a PEM private key"},
      {Config("a.crt", "b.key"), "does not match cert_file"},
  };
  for (const auto& [config, expected] : kCases) {
    auto t = TlsContexts::Create(config);
    ASSERT_FALSE(t.ok()) << expected;
    EXPECT_NE(t.error().message.find(expected), std::string::npos) << t.error().message;
  }
  TlsServerConfig ca = Config("a.crt", "a.key");
  ca.client_auth = ClientAuth::kRequireAndVerifyClientCert;
  ca.client_ca_file = dir_ + "/junk.pem";
  auto t = TlsContexts::Create(ca);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.error().message.find("tls_server_config.client_ca_file: " + dir_ +
                                   "/junk.pem: no PEM CA certificate"),
            std::string::npos)
      << t.error().message;
}

TEST(HostAllowList, NamesArePortlessLowerCaseWithoutTrailingDot) {
  EXPECT_EQ(HostName("Example.COM:9958"), "example.com");
  EXPECT_EQ(HostName("example.com."), "example.com");
  EXPECT_EQ(HostName("[::1]:9958"), "[::1]");
  EXPECT_EQ(HostName("127.0.0.1"), "127.0.0.1");
  const std::vector<std::string> allowed = {"hv1.example.com", "127.0.0.1"};
  EXPECT_TRUE(HostAllowed({}, nullptr));
  EXPECT_TRUE(HostAllowed({}, "evil.example"));
  EXPECT_TRUE(HostAllowed(allowed, "HV1.example.com:9958"));
  EXPECT_TRUE(HostAllowed(allowed, "127.0.0.1:9958"));
  EXPECT_FALSE(HostAllowed(allowed, "evil.example:9958"));
  EXPECT_FALSE(HostAllowed(allowed, "hv1.example.com.evil.example"));
  EXPECT_FALSE(HostAllowed(allowed, nullptr));
  EXPECT_FALSE(HostAllowed(allowed, ""));
}

}  // namespace
}  // namespace vmtime
