#include "exporter/http/web_config.h"

#include <crypt.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <fstream>
#include <sstream>

namespace vmtime {
namespace {
std::string Where(const std::string& source, const YAML::Mark& m) {
  if (m.is_null()) return source;
  return source + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}
}  // namespace

std::string Base64Decode(const std::string& in, bool* ok) {
  static const std::string kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  unsigned buffer = 0;
  int bits = 0;
  *ok = true;
  size_t padding = 0;
  for (char c : in) {
    if (c == '=') {
      ++padding;
      continue;
    }
    if (padding > 0) {
      *ok = false;
      return {};
    }
    const auto pos = kAlphabet.find(c);
    if (pos == std::string::npos) {
      *ok = false;
      return {};
    }
    buffer = (buffer << 6) | static_cast<unsigned>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  if (padding > 2) *ok = false;
  return out;
}

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
        const std::string hash = u.second.IsScalar() ? u.second.Scalar() : "";
        if (hash.rfind("$2", 0) != 0) {
          return Error{Where(source, u.second.Mark()) + ": basic_auth_users." + u.first.Scalar() +
                       ": expected a bcrypt hash ($2a$, $2b$ or $2y$)"};
        }
        auth.users_[u.first.Scalar()] = hash;
      }
    }
  } catch (const YAML::Exception& e) {
    return Error{Where(source, e.mark) + ": invalid YAML: " + e.msg};
  }
  return auth;
}

bool BasicAuth::Check(const std::string& authorization) const {
  if (!enabled()) return true;
  {
    std::lock_guard lock(mu_);
    auto it = verified_.find(authorization);
    if (it != verified_.end()) return it->second;
  }
  constexpr std::string_view kPrefix = "Basic ";
  if (authorization.rfind(kPrefix, 0) != 0) return false;
  bool ok = false;
  const std::string decoded = Base64Decode(authorization.substr(kPrefix.size()), &ok);
  if (!ok) return false;
  const auto colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  const std::string user = decoded.substr(0, colon);
  const std::string pass = decoded.substr(colon + 1);
  auto it = users_.find(user);
  if (it == users_.end()) return false;
  crypt_data data{};
  const char* out = crypt_r(pass.c_str(), it->second.c_str(), &data);
  const bool good = out != nullptr && it->second == out;
  if (good) {
    std::lock_guard lock(mu_);
    if (verified_.size() > 1024) verified_.clear();
    verified_[authorization] = true;
  }
  return good;
}

}  // namespace vmtime
