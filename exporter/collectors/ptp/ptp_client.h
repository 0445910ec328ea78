// PtpClient: linuxptp ptp4l's management protocol over its UNIX datagram
// socket (`uds_address`, default /var/run/ptp4l), as `pmc -u` speaks it.
//
// The client binds its own socket, named
// `<client_dir>/vmtime-exporter-ptp.<pid>.<n>` (client_dir defaults to the
// directory of ptp4l's socket, as pmc's /var/run/pmc.<pid>), connects it
// to ptp4l's socket so that only ptp4l's datagrams reach it, and unlinks it
// on Close() (and, since the exporter exits without running destructors,
// sockets of exporter processes that no longer exist are removed at the
// next Open()). ptp4l answers to that path. The exporter's user therefore needs
// write access to ptp4l's socket (ptp4l makes it mode 0660) and to
// client_dir: see docs/ptp.md.
//
// Every request carries a fresh sequence id; answers with another sequence
// id (late answers to an earlier request) are skipped. Each request waits
// at most the request timeout and never past the caller's deadline.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "exporter/collectors/ptp/ptp_management.h"
#include "exporter/core/clock.h"
#include "exporter/core/result.h"

namespace vmtime::ptp {

class PtpClient {
 public:
  // `socket_path`: ptp4l's uds_address; `client_dir`: where the client
  // socket goes ("" = the directory of socket_path).
  PtpClient(std::string socket_path, std::string client_dir, uint8_t domain_number,
            double request_timeout_s);
  ~PtpClient();
  PtpClient(const PtpClient&) = delete;
  PtpClient& operator=(const PtpClient&) = delete;

  Status Open();
  void Close();

  // Sends GET `management_id` and returns the answers: exactly `answers`
  // of them, or fewer when `answers_optional` and at least one arrived
  // before the timeout (PORT_DATA_SET: one per port). Errors name the
  // request and the socket.
  Result<std::vector<ManagementResponse>> Get(uint16_t management_id, const Clock& clock,
                                              int64_t deadline_mono_ns, int answers = 1,
                                              bool answers_optional = false);

  const std::string& socket_path() const { return socket_path_; }

 private:
  std::string Describe(const std::string& what, int err) const;

  std::string socket_path_;
  std::string client_dir_;
  uint8_t domain_number_;
  double request_timeout_s_;
  int fd_ = -1;
  std::string client_path_;  // our bound socket, unlinked on Close()
  uint16_t sequence_ = 0;
};

}  // namespace vmtime::ptp
