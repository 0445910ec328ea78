// timesyncd collector: sd-bus GetAll without auto-start, NTPMessage
// decoding, and the flag file (see the header).
#include "exporter/collectors/timesyncd/timesyncd_collector.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>

namespace vmtime {
namespace {

constexpr const char* kService = "org.freedesktop.timesync1";
constexpr const char* kPath = "/org/freedesktop/timesync1";
constexpr const char* kInterface = "org.freedesktop.timesync1.Manager";

struct BusUnref {
  void operator()(sd_bus* b) const { sd_bus_flush_close_unref(b); }
};
struct MessageUnref {
  void operator()(sd_bus_message* m) const { sd_bus_message_unref(m); }
};
using BusPtr = std::unique_ptr<sd_bus, BusUnref>;
using MessagePtr = std::unique_ptr<sd_bus_message, MessageUnref>;

std::string Errno(int r) { return std::strerror(r < 0 ? -r : r); }

std::string DirOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

Result<BusPtr> OpenBus(const TimesyncdConfig& config) {
  sd_bus* raw = nullptr;
  int r = 0;
  if (config.bus_address.empty()) {
    r = sd_bus_open_system(&raw);
    if (r < 0) return Error{"connect to the system bus: " + Errno(r)};
    return BusPtr(raw);
  }
  r = sd_bus_new(&raw);
  if (r < 0) return Error{"sd_bus_new: " + Errno(r)};
  BusPtr bus(raw);
  if ((r = sd_bus_set_address(raw, config.bus_address.c_str())) < 0 ||
      (r = sd_bus_set_bus_client(raw, 1)) < 0 || (r = sd_bus_start(raw)) < 0) {
    return Error{"connect to bus " + config.bus_address + ": " + Errno(r)};
  }
  return bus;
}

// ServerAddress "(iay)": family and address bytes.
std::string ReadAddress(sd_bus_message* m) {
  int32_t family = 0;
  const void* bytes = nullptr;
  size_t size = 0;
  if (sd_bus_message_enter_container(m, 'r', "iay") < 0) return "";
  if (sd_bus_message_read(m, "i", &family) < 0) return "";
  if (sd_bus_message_read_array(m, 'y', &bytes, &size) < 0) return "";
  sd_bus_message_exit_container(m);
  char buf[INET6_ADDRSTRLEN] = {};
  if ((family == AF_INET && size == 4) || (family == AF_INET6 && size == 16)) {
    if (inet_ntop(family, bytes, buf, sizeof buf) != nullptr) return buf;
  }
  return "";
}

Status ReadNtpMessage(sd_bus_message* m, TimesyncdNtpMessage& msg) {
  int r = sd_bus_message_enter_container(m, 'r', "uuuuittayttttbtt");
  if (r < 0) return Error{"NTPMessage: not (uuuuittayttttbtt): " + Errno(r)};
  r = sd_bus_message_read(m, "uuuuitt", &msg.leap, &msg.version, &msg.mode, &msg.stratum,
                          &msg.precision, &msg.root_delay_us, &msg.root_dispersion_us);
  if (r < 0) return Error{"NTPMessage: header fields: " + Errno(r)};
  const void* ref = nullptr;
  size_t ref_size = 0;
  if ((r = sd_bus_message_read_array(m, 'y', &ref, &ref_size)) < 0) {
    return Error{"NTPMessage: reference: " + Errno(r)};
  }
  int spike = 0;
  r = sd_bus_message_read(m, "ttttbtt", &msg.origin_us, &msg.receive_us, &msg.transmit_us,
                          &msg.destination_us, &spike, &msg.packet_count, &msg.jitter_us);
  if (r < 0) return Error{"NTPMessage: timestamps: " + Errno(r)};
  msg.spike = spike != 0;
  sd_bus_message_exit_container(m);
  return Status::Ok();
}

// One dictionary entry's variant: the properties we read, the rest skipped.
Status ReadProperty(sd_bus_message* m, const std::string& name, TimesyncdObservation& obs) {
  const char* type = nullptr;
  int r = sd_bus_message_peek_type(m, nullptr, &type);
  if (r < 0 || type == nullptr) return Error{"property " + name + ": no variant"};
  const std::string sig = type;
  r = sd_bus_message_enter_container(m, 'v', type);
  if (r < 0) return Error{"property " + name + ": " + Errno(r)};
  if (name == "ServerName" && sig == "s") {
    const char* s = nullptr;
    if (sd_bus_message_read(m, "s", &s) >= 0 && s != nullptr) obs.server_name = s;
  } else if (name == "ServerAddress" && sig == "(iay)") {
    obs.server_address = ReadAddress(m);
  } else if (name == "NTPMessage" && sig == "(uuuuittayttttbtt)") {
    TimesyncdNtpMessage msg;
    if (Status s = ReadNtpMessage(m, msg); !s) return s;
    ApplyNtpMessage(msg, obs);
  } else {
    sd_bus_message_skip(m, type);
  }
  sd_bus_message_exit_container(m);
  return Status::Ok();
}

Status ReadBus(const TimesyncdConfig& config, TimesyncdObservation& obs) {
  auto bus = OpenBus(config);
  if (!bus) return bus.error();
  sd_bus_message* raw = nullptr;
  int r = sd_bus_message_new_method_call(bus->get(), &raw, kService, kPath,
                                         "org.freedesktop.DBus.Properties", "GetAll");
  if (r < 0) return Error{"new GetAll call: " + Errno(r)};
  MessagePtr call(raw);
  // Reading must not start timesyncd (it is bus-activatable).
  sd_bus_message_set_auto_start(call.get(), 0);
  if ((r = sd_bus_message_append(call.get(), "s", kInterface)) < 0) {
    return Error{"GetAll argument: " + Errno(r)};
  }
  sd_bus_error error = SD_BUS_ERROR_NULL;
  sd_bus_message* reply_raw = nullptr;
  const auto timeout_us = static_cast<uint64_t>(std::max(config.timeout_s, 0.001) * 1e6);
  r = sd_bus_call(bus->get(), call.get(), timeout_us, &error, &reply_raw);
  MessagePtr reply(reply_raw);
  if (r < 0) {
    std::string msg = std::string("GetAll ") + kInterface + ": " +
                      (error.message != nullptr ? error.message : Errno(r));
    if (error.name != nullptr) msg += std::string(" (") + error.name + ")";
    sd_bus_error_free(&error);
    return Error{msg};
  }
  if ((r = sd_bus_message_enter_container(reply.get(), 'a', "{sv}")) < 0) {
    return Error{"GetAll reply: not a{sv}: " + Errno(r)};
  }
  while ((r = sd_bus_message_enter_container(reply.get(), 'e', "sv")) > 0) {
    const char* name = nullptr;
    if ((r = sd_bus_message_read(reply.get(), "s", &name)) < 0) {
      return Error{"GetAll reply: property name: " + Errno(r)};
    }
    if (Status s = ReadProperty(reply.get(), name, obs); !s)
      return Error{"GetAll reply: " + s.message()};
    sd_bus_message_exit_container(reply.get());
  }
  if (r < 0) return Error{"GetAll reply: " + Errno(r)};
  obs.bus = true;
  return Status::Ok();
}

}  // namespace

void ApplyNtpMessage(const TimesyncdNtpMessage& m, TimesyncdObservation& obs) {
  if (m.packet_count == 0 || m.origin_us == 0 || m.destination_us == 0) return;
  auto diff = [](uint64_t a, uint64_t b) {
    return (static_cast<double>(a) - static_cast<double>(b)) / 1e6;
  };
  obs.leap = static_cast<int>(m.leap);
  obs.stratum = static_cast<int>(m.stratum);
  obs.offset_s = (diff(m.receive_us, m.origin_us) + diff(m.transmit_us, m.destination_us)) / 2;
  obs.delay_s = diff(m.destination_us, m.origin_us) - diff(m.transmit_us, m.receive_us);
  obs.root_delay_s = static_cast<double>(m.root_delay_us) / 1e6;
  obs.root_dispersion_s = static_cast<double>(m.root_dispersion_us) / 1e6;
  obs.jitter_s = static_cast<double>(m.jitter_us) / 1e6;
  obs.packet_count = m.packet_count;
}

TimesyncdCollector::TimesyncdCollector(const TimesyncdConfig& config) : config_(config) {}

Status TimesyncdCollector::Collect(const CollectContext& ctx, Observations& out) {
  try {
    TimesyncdObservation obs;
    std::string bus_error = "D-Bus not used (timesyncd.dbus: false)";
    if (config_.dbus) {
      Status s = ReadBus(config_, obs);
      if (!s) {
        bus_error = "D-Bus: " + s.message();
        obs = TimesyncdObservation{};
      }
    }
    struct stat st {};
    if (::stat(config_.flag_file.c_str(), &st) == 0) {
      obs.synchronised = true;
    } else if (errno != ENOENT) {
      return Error{"timesyncd: flag file " + config_.flag_file + ": " + std::strerror(errno)};
    }
    if (!obs.bus) {
      const std::string dir = DirOf(config_.flag_file);
      if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
        return Error{"timesyncd: not present: " + bus_error + "; and no directory " + dir +
                     " (timesyncd has not run since boot)"};
      }
    }
    obs.measured_real_ns = ctx.clock.RealtimeNs();
    out.timesyncd = std::move(obs);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("timesyncd: unexpected error: ") + e.what()};
  } catch (...) {
    return Error{"timesyncd: unexpected error"};
  }
}

}  // namespace vmtime
