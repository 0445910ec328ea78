// ChronyClient: talks chrony's command protocol to a running chronyd over
// its unix datagram socket ("unix:///run/chrony/chronyd.sock") or over UDP
// ("127.0.0.1:323", "[::1]:323", "host" = port 323), without chronyc.
//
// Over a unix socket the client binds its own socket next to chronyd's
// (chronyd sends the reply to that path), so the exporter's user must be
// able to create files in that directory and chronyd must be able to write
// to the client socket: see docs/chrony.md. Over UDP chronyd answers only
// monitoring commands, and only to addresses its `cmdallow` permits
// (localhost by default).
//
// Every request carries a fresh sequence number; replies with another
// sequence (late answers to an earlier attempt) are skipped. A request is
// resent (attempt + 1) when no reply came within a third of its time budget.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "exporter/collectors/chrony/chrony_protocol.h"
#include "exporter/core/clock.h"
#include "exporter/core/result.h"
#include "exporter/model/observations.h"

namespace vmtime::chrony {

class ChronyClient {
 public:
  // `address` as in ChronyConfig::address; each request waits at most
  // `request_timeout_s`. Nothing is opened until Open().
  ChronyClient(std::string address, double request_timeout_s);
  ~ChronyClient();
  ChronyClient(const ChronyClient&) = delete;
  ChronyClient& operator=(const ChronyClient&) = delete;

  // Creates (and for unix sockets binds) the client socket and connects it.
  Status Open();
  void Close();

  // Each call also gives up at `deadline_mono_ns` on `clock`'s monotonic
  // scale (the collector's deadline).
  Result<ChronyTracking> Tracking(const Clock& clock, int64_t deadline_mono_ns);
  // Sources with their sourcestats and (chrony >= 4.0) configured names.
  Result<std::vector<ChronySource>> Sources(const Clock& clock, int64_t deadline_mono_ns);

  const std::string& address() const { return address_; }

 private:
  // Sends `request` (with its sequence number at bytes 8..11) and returns
  // the first reply carrying that sequence number.
  Result<std::vector<uint8_t>> Exchange(uint16_t command, std::span<const uint8_t> data,
                                        const Clock& clock, int64_t deadline_mono_ns);
  std::string Describe(const std::string& what, int err) const;

  std::string address_;
  double request_timeout_s_;
  int fd_ = -1;
  std::string client_path_;  // unix: our bound socket path, unlinked on Close()
  uint32_t sequence_ = 0;
};

}  // namespace vmtime::chrony
