#include "exporter/http/tls_config.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace vmtime {
namespace {

constexpr const char* kBlock = "tls_server_config";
constexpr const char* kKnownKeys =
    "cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version, "
    "cipher_suites, prefer_server_cipher_suites, curve_preferences";

std::string Where(const std::string& source, const YAML::Mark& m) {
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

// "source:line:col: tls_server_config.key: what"
Error KeyError(const std::string& source, const YAML::Node& at, const std::string& key,
               const std::string& what) {
  return Error{Where(source, at.Mark()) + ": " + kBlock + "." + key + ": " + what};
}

// The OpenSSL error queue as one line, emptied.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

// IANA (and Go) cipher suite name -> OpenSSL name, for every suite this
// libssl has; `tls13` collects the TLS 1.3 ones (not configurable).
struct CipherNames {
  std::map<std::string, std::string> tls12;
  std::set<std::string> tls13;
};

const CipherNames& Ciphers() {
  static const CipherNames kNames = [] {
    CipherNames names;
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) return names;
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL");
    STACK_OF(SSL_CIPHER)* list = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; list != nullptr && i < sk_SSL_CIPHER_num(list); ++i) {
      const SSL_CIPHER* c = sk_SSL_CIPHER_value(list, i);
      const char* standard = SSL_CIPHER_standard_name(c);
      if (standard == nullptr) continue;
      if (std::strcmp(SSL_CIPHER_get_version(c), "TLSv1.3") == 0) {
        names.tls13.insert(standard);
      } else {
        names.tls12[standard] = SSL_CIPHER_get_name(c);
      }
    }
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return names;
  }();
  return kNames;
}

Result<std::string> CipherName(const std::string& name) {
  const CipherNames& names = Ciphers();
  if (names.tls13.count(name) > 0) {
    return Error{"'" + name +
                 "' is a TLS 1.3 suite; TLS 1.3 suites are not configurable (as in the "
                 "exporter-toolkit): list TLS 1.2 suites only"};
  }
  auto it = names.tls12.find(name);
  // Go also accepts the CHACHA20 suites without their "_SHA256" tail.
  if (it == names.tls12.end()) it = names.tls12.find(name + "_SHA256");
  if (it == names.tls12.end() || name.rfind("TLS_", 0) != 0) {
    return Error{"unknown cipher suite '" + name +
                 "' (IANA names, e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)"};
  }
  return it->second;
}

Result<std::string> Scalar(const std::string& source, const YAML::Node& v, const std::string& key) {
  if (!v.IsScalar()) return KeyError(source, v, key, "expected a string");
  return v.Scalar();
}

Result<std::vector<std::string>> ScalarList(const std::string& source, const YAML::Node& v,
                                            const std::string& key) {
  std::vector<std::string> out;
  if (v.IsNull()) return out;
  if (!v.IsSequence()) return KeyError(source, v, key, "expected a list of strings");
  for (const auto& item : v) {
    if (!item.IsScalar()) return KeyError(source, item, key, "expected a list of strings");
    out.push_back(item.Scalar());
  }
  return out;
}

Result<TlsVersion> Version(const std::string& source, const YAML::Node& v, const std::string& key) {
  auto s = Scalar(source, v, key);
  if (!s) return s.error();
  if (*s == "TLS12") return TlsVersion::kTls12;
  if (*s == "TLS13") return TlsVersion::kTls13;
  if (*s == "TLS10" || *s == "TLS11") {
    return KeyError(source, v, key, "'" + *s + "' is not offered (TLS 1.0 and 1.1 are obsolete)");
  }
  return KeyError(source, v, key, "'" + *s + "' is not one of TLS12, TLS13");
}

Result<ClientAuth> ClientAuthType(const std::string& source, const YAML::Node& v) {
  static const std::map<std::string, ClientAuth> kTypes = {
      {"NoClientCert", ClientAuth::kNoClientCert},
      {"RequestClientCert", ClientAuth::kRequestClientCert},
      {"RequireAnyClientCert", ClientAuth::kRequireAnyClientCert},
      {"VerifyClientCertIfGiven", ClientAuth::kVerifyClientCertIfGiven},
      {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerifyClientCert},
  };
  auto s = Scalar(source, v, "client_auth_type");
  if (!s) return s.error();
  auto it = kTypes.find(*s);
  if (it == kTypes.end()) {
    return KeyError(source, v, "client_auth_type",
                    "'" + *s +
                        "' is not one of NoClientCert, RequestClientCert, RequireAnyClientCert, "
                        "VerifyClientCertIfGiven, RequireAndVerifyClientCert");
  }
  return it->second;
}

Result<std::string> CurveGroup(const std::string& name) {
  static const std::map<std::string, std::string> kCurves = {
      {"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"}, {"X25519", "X25519"}};
  auto it = kCurves.find(name);
  if (it == kCurves.end()) {
    return Error{"'" + name + "' is not one of CurveP256, CurveP384, CurveP521, X25519"};
  }
  return it->second;
}

std::string Resolve(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || base_dir.empty()) return path;
  return (std::filesystem::path(base_dir) / path).string();
}

// One key of the block into `c`.
Status ReadKey(const std::string& source, const std::string& base_dir, const std::string& key,
               const YAML::Node& v, TlsServerConfig& c) {
  auto path = [&](std::string& field) -> Status {
    auto s = Scalar(source, v, key);
    if (!s) return s.error();
    if (s->empty()) return KeyError(source, v, key, "empty path");
    field = Resolve(base_dir, *s);
    return Status::Ok();
  };
  if (key == "cert_file") return path(c.cert_file);
  if (key == "key_file") return path(c.key_file);
  if (key == "client_ca_file") return path(c.client_ca_file);
  if (key == "client_auth_type") {
    auto a = ClientAuthType(source, v);
    if (!a) return a.error();
    c.client_auth = *a;
    return Status::Ok();
  }
  if (key == "min_version" || key == "max_version") {
    auto ver = Version(source, v, key);
    if (!ver) return ver.error();
    if (key == "min_version") c.min_version = *ver;
    if (key == "max_version") c.max_version = *ver;
    return Status::Ok();
  }
  if (key == "prefer_server_cipher_suites") {
    bool b = false;
    if (!v.IsScalar() || !YAML::convert<bool>::decode(v, b)) {
      return KeyError(source, v, key, "expected true or false");
    }
    c.prefer_server_cipher_suites = b;
    return Status::Ok();
  }
  if (key == "cipher_suites" || key == "curve_preferences") {
    auto list = ScalarList(source, v, key);
    if (!list) return list.error();
    for (const auto& name : *list) {
      auto mapped = key == "cipher_suites" ? CipherName(name) : CurveGroup(name);
      if (!mapped) return KeyError(source, v, key, mapped.error().message);
      (key == "cipher_suites" ? c.cipher_suites : c.curve_groups).push_back(*mapped);
    }
    return Status::Ok();
  }
  if (key == "cert" || key == "key" || key == "client_ca" || key == "client_allowed_sans") {
    return KeyError(source, v, key,
                    "not supported by vmtime-exporter (give the PEM as a file: cert_file, "
                    "key_file, client_ca_file)");
  }
  return KeyError(source, v, key, "unknown key (known: " + std::string(kKnownKeys) + ")");
}

// The cross-key rules, once every key is read.
Status CheckBlock(const std::string& source, const YAML::Node& block, const TlsServerConfig& c) {
  auto fail = [&](const std::string& what) {
    return Error{Where(source, block.Mark()) + ": " + kBlock + ": " + what};
  };
  if (c.cert_file.empty() || c.key_file.empty()) {
    return fail("cert_file and key_file are both required");
  }
  const bool verifies = c.client_auth == ClientAuth::kVerifyClientCertIfGiven ||
                        c.client_auth == ClientAuth::kRequireAndVerifyClientCert;
  if (verifies && c.client_ca_file.empty()) {
    return fail(
        "client_auth_type VerifyClientCertIfGiven and RequireAndVerifyClientCert need "
        "client_ca_file");
  }
  if (!c.client_ca_file.empty() && c.client_auth == ClientAuth::kNoClientCert) {
    return fail(
        "client_ca_file is set but client_auth_type is NoClientCert (set "
        "client_auth_type, e.g. RequireAndVerifyClientCert)");
  }
  if (c.max_version && *c.max_version < c.min_version) {
    return fail("max_version is below min_version");
  }
  return Status::Ok();
}

}  // namespace

Result<std::optional<TlsServerConfig>> ParseTlsServerConfig(const std::string& yaml_text,
                                                            const std::string& source,
                                                            const std::string& base_dir) {
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (root.IsNull() || !root.IsMap()) return std::optional<TlsServerConfig>{};
    YAML::Node block;
    for (const auto& kv : root) {
      if (kv.first.Scalar() == kBlock) block = kv.second;
    }
    if (!block.IsDefined() || block.IsNull()) return std::optional<TlsServerConfig>{};
    if (!block.IsMap())
      return Error{Where(source, block.Mark()) + ": " + kBlock + ": expected a mapping"};
    if (block.size() == 0) return std::optional<TlsServerConfig>{};
    TlsServerConfig c;
    std::set<std::string> seen;
    for (const auto& kv : block) {
      const std::string key = kv.first.Scalar();
      if (!seen.insert(key).second) return KeyError(source, kv.first, key, "duplicate key");
      Status st = ReadKey(source, base_dir, key, kv.second, c);
      if (!st) return st.error();
    }
    Status st = CheckBlock(source, block, c);
    if (!st) return st.error();
    return std::optional<TlsServerConfig>{std::move(c)};
  } catch (const YAML::Exception& e) {
    return Error{Where(source, e.mark) + ": invalid YAML: " + e.msg};
  }
}

Result<std::optional<TlsServerConfig>> LoadTlsServerConfig(const std::string& path) {
  if (path.empty()) return std::optional<TlsServerConfig>{};
  std::ifstream in(path);
  if (!in) return Error{path + ": cannot open web config file: " + std::strerror(errno)};
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseTlsServerConfig(ss.str(), path, std::filesystem::path(path).parent_path().string());
}

// ---------------------------------------------------------------------------
// Contexts.

namespace {

int AcceptAnyCertificate(int /*preverify_ok*/, X509_STORE_CTX* /*store*/) { return 1; }

int VerifyMode(ClientAuth a) {
  switch (a) {
    case ClientAuth::kNoClientCert:
      return SSL_VERIFY_NONE;
    case ClientAuth::kRequestClientCert:
    case ClientAuth::kVerifyClientCertIfGiven:
      return SSL_VERIFY_PEER;
    case ClientAuth::kRequireAnyClientCert:
    case ClientAuth::kRequireAndVerifyClientCert:
      return SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  }
  return SSL_VERIFY_NONE;
}

// Request/RequireAny take any certificate, as Go's crypto/tls does.
SSL_verify_cb VerifyCallback(ClientAuth a) {
  return a == ClientAuth::kRequestClientCert || a == ClientAuth::kRequireAnyClientCert
             ? AcceptAnyCertificate
             : nullptr;
}

int ProtoVersion(TlsVersion v) { return v == TlsVersion::kTls13 ? TLS1_3_VERSION : TLS1_2_VERSION; }

std::string Join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ":") + s;
  return out;
}

// A readable file, or an error naming key, path and errno.
Status Readable(const std::string& key, const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) {
    return Error{std::string(kBlock) + "." + key + ": " + path + ": " + std::strerror(errno)};
  }
  std::fclose(f);
  return Status::Ok();
}

}  // namespace

struct TlsContexts::Loaded {
  TlsServerConfig config;
  SSL_CTX* ctx = nullptr;
  std::string ciphers;  // OpenSSL list; empty: defaults
  std::string groups;   // OpenSSL list; empty: defaults
  ~Loaded() { SSL_CTX_free(ctx); }
};

namespace {

// Certificates, key, client CAs and protocol settings into a new SSL_CTX.
Status Configure(SSL_CTX* ctx, const TlsServerConfig& c, const std::string& ciphers,
                 const std::string& groups) {
  auto fail = [](const std::string& key, const std::string& path, const std::string& what) {
    return Error{std::string(kBlock) + "." + key + ": " + path + ": " + what + ": " +
                 OpenSslErrors()};
  };
  SSL_CTX_set_min_proto_version(ctx, ProtoVersion(c.min_version));
  SSL_CTX_set_max_proto_version(ctx, c.max_version ? ProtoVersion(*c.max_version) : 0);
  SSL_CTX_set_options(ctx,
                      SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                          (c.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
  if (!ciphers.empty() && SSL_CTX_set_cipher_list(ctx, ciphers.c_str()) != 1) {
    return Error{std::string(kBlock) + ".cipher_suites: rejected by OpenSSL: " + OpenSslErrors()};
  }
  if (!groups.empty() && SSL_CTX_set1_groups_list(ctx, groups.c_str()) != 1) {
    return Error{std::string(kBlock) +
                 ".curve_preferences: rejected by OpenSSL: " + OpenSslErrors()};
  }
  for (const auto& [key, path] : {std::pair{"cert_file", c.cert_file}, {"key_file", c.key_file}}) {
    Status st = Readable(key, path);
    if (!st) return st;
  }
  if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1) {
    return fail("cert_file", c.cert_file, "not a PEM certificate");
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    const bool mismatch = ERR_GET_REASON(ERR_peek_last_error()) == X509_R_KEY_VALUES_MISMATCH;
    return fail("key_file", c.key_file,
                mismatch ? "does not match cert_file " + c.cert_file : "not a PEM private key");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail("key_file", c.key_file, "does not match cert_file " + c.cert_file);
  }
  if (!c.client_ca_file.empty()) {
    Status st = Readable("client_ca_file", c.client_ca_file);
    if (!st) return st;
    STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(c.client_ca_file.c_str());
    if (names == nullptr ||
        SSL_CTX_load_verify_locations(ctx, c.client_ca_file.c_str(), nullptr) != 1) {
      if (names != nullptr) sk_X509_NAME_pop_free(names, X509_NAME_free);
      return fail("client_ca_file", c.client_ca_file, "no PEM CA certificate");
    }
    SSL_CTX_set_client_CA_list(ctx, names);
  }
  SSL_CTX_set_verify(ctx, VerifyMode(c.client_auth), VerifyCallback(c.client_auth));
  static const unsigned char kSessionContext[] = "vmtime-exporter";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);
  return Status::Ok();
}

int ClientHello(SSL* ssl, int* alert, void* arg) {
  if (static_cast<const TlsContexts*>(arg)->ApplyCurrent(ssl)) return SSL_CLIENT_HELLO_SUCCESS;
  *alert = SSL_AD_INTERNAL_ERROR;
  return SSL_CLIENT_HELLO_ERROR;
}

}  // namespace

Result<std::unique_ptr<TlsContexts>> TlsContexts::Create(const TlsServerConfig& config) {
  std::unique_ptr<TlsContexts> t(new TlsContexts());
  Status st = t->Replace(config);
  if (!st) return st.error();
  t->front_ = SSL_CTX_new(TLS_server_method());
  if (t->front_ == nullptr) return Error{"TLS: cannot create an SSL context: " + OpenSslErrors()};
  SSL_CTX_set_min_proto_version(t->front_, TLS1_2_VERSION);
  // No session resumption (no cache, no tickets): every connection makes a
  // full handshake with the current context, so a reloaded client CA or
  // client_auth_type applies to every new connection.
  SSL_CTX_set_options(t->front_,
                      SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(t->front_, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(t->front_, 0);
  SSL_CTX_set_client_hello_cb(t->front_, ClientHello, t.get());
  return t;
}

TlsContexts::~TlsContexts() { SSL_CTX_free(front_); }

Status TlsContexts::Replace(const TlsServerConfig& config) {
  auto next = std::make_shared<Loaded>();
  next->config = config;
  next->ciphers = Join(config.cipher_suites);
  next->groups = Join(config.curve_groups);
  next->ctx = SSL_CTX_new(TLS_server_method());
  if (next->ctx == nullptr) return Error{"TLS: cannot create an SSL context: " + OpenSslErrors()};
  Status st = Configure(next->ctx, config, next->ciphers, next->groups);
  ERR_clear_error();
  if (!st) return st;
  std::lock_guard lock(mu_);
  current_ = std::move(next);
  return Status::Ok();
}

TlsServerConfig TlsContexts::config() const {
  std::lock_guard lock(mu_);
  return current_->config;
}

bool TlsContexts::ApplyCurrent(SSL* ssl) const {
  std::shared_ptr<const Loaded> cur;
  {
    std::lock_guard lock(mu_);
    cur = current_;
  }
  // The handshake takes its own reference on the context: a Replace() during
  // it frees nothing it uses. Verify mode, versions, options, suites and
  // groups were copied from the front context at SSL_new; set them again.
  if (SSL_set_SSL_CTX(ssl, cur->ctx) == nullptr) return false;
  const TlsServerConfig& c = cur->config;
  SSL_set_verify(ssl, VerifyMode(c.client_auth), VerifyCallback(c.client_auth));
  SSL_set_min_proto_version(ssl, ProtoVersion(c.min_version));
  SSL_set_max_proto_version(ssl, c.max_version ? ProtoVersion(*c.max_version) : 0);
  SSL_set_options(ssl, SSL_CTX_get_options(cur->ctx));
  if (!cur->ciphers.empty() && SSL_set_cipher_list(ssl, cur->ciphers.c_str()) != 1) return false;
  if (!cur->groups.empty() && SSL_set1_groups_list(ssl, cur->groups.c_str()) != 1) return false;
  return true;
}

}  // namespace vmtime
