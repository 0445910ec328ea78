// Connection: the exporter's one libvirt connection policy, used by both
// libvirt users (the libvirt collector's RealLibvirtApi and the guest_status
// collector's LibvirtGuestAgent). Each of them owns one Connection: two
// connections to libvirtd, deliberately (libvirtd serves at most
// max_client_requests calls per connection at once, so guest-exec probes
// that wait on a slow agent never take the slots of the clock samples), but
// one policy:
//
// - READ-WRITE (virConnectOpen): virDomainGetTime and
//   virDomainQemuAgentCommand are refused on read-only connections; a
//   permission error at connect time says so.
// - libvirt's event loop (EventLoop, acquired before connecting) carries
//   keepalive (keepalive_interval_s / keepalive_count) and the close
//   callback, so a libvirtd that stops answering is declared dead.
// - Opened lazily by Get(); dropped when the close callback fired or
//   virConnectIsAlive says so (checked by Get() and by Check() after a failed
//   call); reopened with exponential backoff from 1 s up to
//   reconnect_backoff_max_s, and until then Get() says when the next
//   attempt is due. A libvirtd restart needs no exporter restart.
// - A generation counter increments with every new connection: per-domain
//   settings made on a connection (the agent response timeout) are re-applied
//   when it changes.
// - Hooks run under the connection's lock right after a connection opens
//   and right before it closes (RealLibvirtApi registers and deregisters its
//   domain event callbacks there).
// Thread-safe. Get() hands out a reference of its own (virConnectRef), so
// callers use the connection outside any lock and a concurrent reconnect
// never frees it under them.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "exporter/collectors/libvirt/event_loop.h"
#include "exporter/collectors/libvirt/libvirt_handles.h"
#include "exporter/config/config.h"
#include "exporter/core/clock.h"
#include "exporter/core/result.h"

namespace vmtime::libvirt {

struct ConnectionPolicy {
  std::string uri;
  double keepalive_interval_s = 5;  // <= 0: no keepalive
  int keepalive_count = 3;
  double reconnect_backoff_max_s = 30;
  static ConnectionPolicy FromConfig(const LibvirtConfig& config);
};

class Connection {
 public:
  struct Hooks {
    std::function<void(virConnectPtr, uint64_t generation)> opened;
    std::function<void(virConnectPtr)> closing;
  };
  // `who` names the user in log lines ("libvirt", "guest_status").
  Connection(ConnectionPolicy policy, const Clock& clock, std::string who, Hooks hooks = {});
  ~Connection();  // closes the connection (running the closing hook)
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // The live connection, connecting first when there is none and the
  // backoff allows. Errors name the URI (and the time of the next attempt).
  Result<ConnectPtr> Get();
  // After a failed call on `conn`: drops it when it is dead, so the next
  // Get() reconnects.
  void Check(virConnectPtr conn, std::string_view why);

  bool connected() const { return connected_.load(); }
  uint64_t generation() const { return generation_.load(); }
  const std::string& uri() const { return policy_.uri; }

  struct CloseState;  // shared with libvirt's close callback

 private:
  Status OpenLocked();
  void CloseLocked(std::string_view why);

  const ConnectionPolicy policy_;
  const Clock& clock_;
  const std::string who_;
  const Hooks hooks_;
  std::shared_ptr<EventLoop> loop_;
  std::shared_ptr<CloseState> close_state_;

  std::mutex mu_;
  ConnectPtr conn_;
  bool close_callback_registered_ = false;
  int64_t next_attempt_mono_ns_ = 0;
  double backoff_s_ = 0;
  std::string last_error_;
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace vmtime::libvirt
