// TLS for the HTTP server: the `tls_server_config` block of the
// exporter-toolkit web config file (--web.config.file), parsed into
// TlsServerConfig, and TlsContexts, which turn it into a configured OpenSSL
// SSL_CTX that can be replaced while the server runs (reload re-reads the
// certificate and key files). Parse errors name the file, line:column and
// key; loading errors name the key and the file that could not be used.
//
// Supported keys: cert_file, key_file, client_auth_type, client_ca_file,
// min_version, max_version, cipher_suites, prefer_server_cipher_suites,
// curve_preferences. Relative paths are relative to the web config file's
// directory, as in the exporter-toolkit.
#pragma once

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "exporter/core/result.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace vmtime {

enum class ClientAuth {
  kNoClientCert,               // no certificate requested
  kRequestClientCert,          // requested, not required, not verified
  kRequireAnyClientCert,       // required, not verified
  kVerifyClientCertIfGiven,    // requested, verified against client_ca_file if sent
  kRequireAndVerifyClientCert  // required and verified against client_ca_file
};

enum class TlsVersion { kTls12, kTls13 };

struct TlsServerConfig {
  std::string cert_file;       // PEM certificate (chain: leaf first)
  std::string key_file;        // PEM private key
  std::string client_ca_file;  // PEM CA bundle for client certificates
  ClientAuth client_auth = ClientAuth::kNoClientCert;
  TlsVersion min_version = TlsVersion::kTls12;
  std::optional<TlsVersion> max_version;  // none: the newest OpenSSL offers (TLS 1.3)
  // TLS 1.2 cipher suites as OpenSSL names (the file uses IANA/Go names);
  // empty: OpenSSL's defaults. TLS 1.3 suites are not configurable.
  std::vector<std::string> cipher_suites;
  bool prefer_server_cipher_suites = true;
  std::vector<std::string> curve_groups;  // OpenSSL group names; empty: defaults

  bool operator==(const TlsServerConfig&) const = default;
};

// `tls_server_config` out of a web config file's text. std::nullopt when the
// block is absent or empty (plain HTTP). `base_dir` resolves relative paths.
Result<std::optional<TlsServerConfig>> ParseTlsServerConfig(const std::string& yaml_text,
                                                            const std::string& source,
                                                            const std::string& base_dir);
// The same from a file; an empty path means "no web config" (plain HTTP).
Result<std::optional<TlsServerConfig>> LoadTlsServerConfig(const std::string& path);

// The SSL_CTX civetweb is given (the "front" context) asks, for every new
// handshake, for the current context (certificate, key, client CAs,
// versions, suites) through a ClientHello callback. Replace() builds a new
// context from the files first and swaps it in only when that succeeded;
// handshakes already done keep the context they started with.
class TlsContexts {
 public:
  static Result<std::unique_ptr<TlsContexts>> Create(const TlsServerConfig& config);
  ~TlsContexts();
  TlsContexts(const TlsContexts&) = delete;
  TlsContexts& operator=(const TlsContexts&) = delete;

  // Re-reads the files of `config`; on error the running context stays.
  Status Replace(const TlsServerConfig& config);
  SSL_CTX* front() const { return front_; }
  TlsServerConfig config() const;  // the one in use

  // Applies the current context to a handshake (the ClientHello callback).
  bool ApplyCurrent(SSL* ssl) const;

 private:
  struct Loaded;
  TlsContexts() = default;
  SSL_CTX* front_ = nullptr;
  mutable std::mutex mu_;
  std::shared_ptr<const Loaded> current_;
};

}  // namespace vmtime
