// --web.config.file: the Prometheus exporter-toolkit file format, as far as
// this build can honour it. `basic_auth_users` (bcrypt hashes, checked with
// libcrypt) is parsed here; `tls_server_config` is parsed by tls_config.h.
#pragma once

#include <map>
#include <mutex>
#include <string>

#include "exporter/core/result.h"

namespace vmtime {

class BasicAuth {
 public:
  // Parses a web config file. An absent path means "no auth".
  static Result<BasicAuth> Load(const std::string& path);
  static Result<BasicAuth> Parse(const std::string& yaml_text, const std::string& source);

  bool enabled() const { return !users_.empty(); }
  // `authorization` is the raw Authorization header value (may be empty).
  bool Check(const std::string& authorization) const;

  BasicAuth() = default;
  BasicAuth(const BasicAuth& o) : users_(o.users_) {}
  BasicAuth& operator=(const BasicAuth& o) {
    users_ = o.users_;
    return *this;
  }

 private:
  std::map<std::string, std::string> users_;  // user -> bcrypt hash
  // Successful header values, so bcrypt runs once per credential.
  mutable std::mutex mu_;
  mutable std::map<std::string, bool> verified_;
};

std::string Base64Decode(const std::string& in, bool* ok);

}  // namespace vmtime
