// timesyncd collector: the host's systemd-timesyncd through its documented
// interfaces. On D-Bus (sd-bus), one org.freedesktop.DBus.Properties.GetAll
// of org.freedesktop.timesync1.Manager at /org/freedesktop/timesync1 with
// auto-start disabled (reading must never start timesyncd through bus
// activation): ServerName, ServerAddress and NTPMessage (the last NTP reply:
// leap, stratum, root delay/dispersion, the four timestamps, jitter). And
// the flag file /run/systemd/timesync/synchronized (`timesyncd.flag_file`),
// which timesyncd creates once it has synchronised the clock: it says
// whether the host is synchronised, with or without D-Bus.
//
// timesyncd counts as present when the bus answered, or (D-Bus unreachable,
// or `timesyncd.dbus: false`) when the flag file's directory exists (its
// RuntimeDirectory). Otherwise the run fails naming both reasons.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "exporter/collectors/collector.h"
#include "exporter/config/config.h"

namespace vmtime {

// NTPMessage's fields ("(uuuuittayttttbtt)"); times in microseconds,
// timestamps on CLOCK_REALTIME.
struct TimesyncdNtpMessage {
  uint32_t leap = 0;
  uint32_t version = 0;
  uint32_t mode = 0;
  uint32_t stratum = 0;
  int32_t precision = 0;
  uint64_t root_delay_us = 0;
  uint64_t root_dispersion_us = 0;
  uint64_t origin_us = 0;       // T1, host
  uint64_t receive_us = 0;      // T2, server
  uint64_t transmit_us = 0;     // T3, server
  uint64_t destination_us = 0;  // T4, host
  bool spike = false;           // timesyncd ignored this sample
  uint64_t packet_count = 0;
  uint64_t jitter_us = 0;
};

// Fills leap, stratum, offset (server - host = ((T2-T1)+(T3-T4))/2), delay,
// root delay/dispersion, jitter and packet count into `obs`. A message with
// no packets or zero timestamps (none received yet) leaves `obs` as it is.
void ApplyNtpMessage(const TimesyncdNtpMessage& m, TimesyncdObservation& obs);

class TimesyncdCollector final : public Collector {
 public:
  explicit TimesyncdCollector(const TimesyncdConfig& config);
  std::string_view Name() const override { return "timesyncd"; }
  Status Collect(const CollectContext& ctx, Observations& out) override;

 private:
  TimesyncdConfig config_;
};

}  // namespace vmtime
