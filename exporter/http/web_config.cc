#include "exporter/http/web_config.h"

#include <yaml-cpp/yaml.h>

#include <cstring>
#include <fstream>
#include <sstream>

#include "exporter/http/auth.h"

namespace vmtime {
namespace {
std::string Where(const std::string& source, const YAML::Mark& m) {
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}
}  // namespace

Result<BasicAuth> BasicAuth::Load(const std::string& path) {
  if (path.empty()) return BasicAuth{};
  std::ifstream in(path);
  if (!in) return Error{path + ": cannot open web config file: " + std::strerror(errno)};
  std::stringstream ss;
  ss << in.rdbuf();
  return Parse(ss.str(), path);
}

Result<BasicAuth> BasicAuth::Parse(const std::string& yaml_text, const std::string& source) {
  BasicAuth auth;
  try {
    YAML::Node root = YAML::Load(yaml_text);
    if (root.IsNull()) return auth;
    if (!root.IsMap()) return Error{Where(source, root.Mark()) + ": expected a mapping"};
    for (const auto& kv : root) {
      const std::string key = kv.first.Scalar();
      if (key == "tls_server_config") continue;   // tls_config.cc parses it
      if (key == "http_server_config") continue;  // HTTP/2 and headers: nothing to do here
      if (key != "basic_auth_users") {
        return Error{Where(source, kv.first.Mark()) + ": unknown key '" + key +
                     "' (known: basic_auth_users, tls_server_config, http_server_config)"};
      }
      if (kv.second.IsNull()) continue;
      if (!kv.second.IsMap()) {
        return Error{Where(source, kv.second.Mark()) + ": basic_auth_users: expected a mapping"};
      }
      for (const auto& u : kv.second) {
        const std::string user = u.first.Scalar();
        const std::string hash = u.second.IsScalar() ? u.second.Scalar() : "";
        const auto cost = BcryptCost(hash);
        // $2b$NN$ + 22 salt + 31 hash characters
        if (!cost || hash.size() != 60 || *cost < 4 || *cost > 31) {
          return Error{Where(source, u.second.Mark()) + ": basic_auth_users." + user +
                       ": expected a bcrypt hash ($2a$, $2b$ or $2y$, cost 4-31, 60 characters)"};
        }
        if (user.empty() || user.find_first_of(std::string(":\0", 2)) != std::string::npos) {
          return Error{Where(source, u.first.Mark()) +
                       ": basic_auth_users: user name must be non-empty without ':' or NUL"};
        }
        if (*cost > kBcryptCostWarnAbove) {
          auth.warnings_.push_back(
              Where(source, u.second.Mark()) + ": basic_auth_users." + user + ": bcrypt cost " +
              std::to_string(*cost) + " is above " + std::to_string(kBcryptCostWarnAbove) +
              ": every uncached check costs " +
              std::to_string(1 << (*cost - kBcryptCostWarnAbove)) + "x a cost-" +
              std::to_string(kBcryptCostWarnAbove) +
              " check, so auth answers slowly and the bcrypt budget admits fewer checks");
        }
        auth.users_[user] = hash;
      }
    }
  } catch (const YAML::Exception& e) {
    return Error{Where(source, e.mark) + ": invalid YAML: " + e.msg};
  }
  return auth;
}

}  // namespace vmtime
