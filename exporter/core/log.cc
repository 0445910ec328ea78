#include "exporter/core/log.h"

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace vmtime {
namespace {

// %* renders the message with '"' and '\' escaped (and control characters
// as \n, \t or \u00XX), so logfmt and JSON lines stay parseable whatever
// a guest agent or a config file put into an error message.
class EscapedMessage final : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm& /*tm*/,
              spdlog::memory_buf_t& dest) override {
    for (char c : msg.payload) {
      switch (c) {
        case '"':
          dest.append(std::string_view("\\\""));
          break;
        case '\\':
          dest.append(std::string_view("\\\\"));
          break;
        case '\n':
          dest.append(std::string_view("\\n"));
          break;
        case '\t':
          dest.append(std::string_view("\\t"));
          break;
        default:
          if (static_cast<unsigned char>(c) < 0x20) {
            static const char kHex[] = "0123456789abcdef";
            const char esc[] = {'\\', 'u', '0', '0', kHex[(c >> 4) & 0xf], kHex[c & 0xf]};
            dest.append(esc, esc + sizeof(esc));
          } else {
            dest.push_back(c);
          }
      }
    }
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<EscapedMessage>();
  }
};

}  // namespace

Status SetupLogging(const std::string& level, const std::string& format) {
  spdlog::level::level_enum lvl;
  if (level == "debug") {
    lvl = spdlog::level::debug;
  } else if (level == "info") {
    lvl = spdlog::level::info;
  } else if (level == "warn") {
    lvl = spdlog::level::warn;
  } else if (level == "error") {
    lvl = spdlog::level::err;
  } else {
    return Error{"--log.level: unknown level '" + level + "' (debug, info, warn, error)"};
  }
  std::string pattern;
  if (format == "logfmt") {
    pattern = "ts=%Y-%m-%dT%H:%M:%S.%eZ level=%l msg=\"%*\"";
  } else if (format == "json") {
    pattern = R"({"ts":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","msg":"%*"})";
  } else {
    return Error{"--log.format: unknown format '" + format + "' (logfmt, json)"};
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
  formatter->add_flag<EscapedMessage>('*').set_pattern(pattern);
  spdlog::drop("vmtime");
  auto logger = spdlog::stderr_logger_mt("vmtime");
  logger->set_formatter(std::move(formatter));
  logger->set_level(lvl);
  logger->flush_on(spdlog::level::debug);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

}  // namespace vmtime
