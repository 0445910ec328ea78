// --web.config.file: the Prometheus exporter-toolkit file format, as far as
// this build can honour it. `basic_auth_users` (bcrypt hashes, checked by
// http/auth.h's Authenticator) is parsed here; `tls_server_config` is parsed
// by tls_config.h. The file is re-read on reload; a broken file refuses the
// reload and the running one stays.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "exporter/core/result.h"

namespace vmtime {

// bcrypt costs above this log a warning: each uncached check then takes
// roughly 0.25 s of CPU or more (cost 12 is ~4x cost 10).
constexpr int kBcryptCostWarnAbove = 12;

class BasicAuth {
 public:
  // Parses a web config file. An absent path means "no auth".
  static Result<BasicAuth> Load(const std::string& path);
  static Result<BasicAuth> Parse(const std::string& yaml_text, const std::string& source);

  bool enabled() const { return !users_.empty(); }
  // user -> bcrypt hash
  const std::map<std::string, std::string>& users() const { return users_; }
  // Things worth a log line (bcrypt cost above kBcryptCostWarnAbove), each
  // naming file:line:column; logged by whoever applies the file.
  const std::vector<std::string>& warnings() const { return warnings_; }

 private:
  std::map<std::string, std::string> users_;
  std::vector<std::string> warnings_;
};

}  // namespace vmtime
