// RealLibvirtApi: LibvirtApi over a real libvirt connection.
//
// - Opens a READ-WRITE connection (virConnectOpen): virDomainGetTime is
//   refused on read-only connections, so read-only access is not enough.
// - Needs libvirt's event loop (EventLoop, acquired before connecting) for
//   keepalive (keepalive_interval_s/keepalive_count), the close callback and
//   domain events (lifecycle and agent lifecycle).
// - Reconnects lazily from ListDomains when the connection was closed (close
//   callback or virConnectIsAlive), with exponential backoff from 1 s up to
//   reconnect_backoff_max_s: a libvirtd restart needs no exporter restart.
// - Lists all domains with their state in one RPC
//   (virConnectGetAllDomainStats, state group) and keeps the handles of the
//   last list so guest calls do not need an extra lookup.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "exporter/collectors/libvirt/event_loop.h"
#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/collectors/libvirt/libvirt_handles.h"
#include "exporter/config/config.h"
#include "exporter/core/clock.h"

namespace vmtime::libvirt {

class RealLibvirtApi final : public LibvirtApi {
 public:
  RealLibvirtApi(const LibvirtConfig& config, const Clock& clock);
  ~RealLibvirtApi() override;
  RealLibvirtApi(const RealLibvirtApi&) = delete;
  RealLibvirtApi& operator=(const RealLibvirtApi&) = delete;

  Result<std::vector<DomainInfo>> ListDomains() override;
  bool Connected() const override { return connected_.load(); }
  uint64_t ConnectionGeneration() const override { return generation_.load(); }
  Result<GuestTime> GetTime(const std::string& uuid, const std::string& name) override;
  Status SetAgentTimeout(const std::string& uuid, const std::string& name, int seconds) override;
  void SetEventHandler(DomainEventHandler handler) override;

  // Shared with libvirt's callbacks, which may outlive this object briefly.
  struct EventSink;

 private:
  Status ConnectLocked();
  void DisconnectLocked(std::string_view why);
  // An owned handle for `uuid` (from the last list, else looked up).
  Result<DomainPtr> FindDomain(const std::string& uuid, const std::string& name);

  const LibvirtConfig config_;
  const Clock& clock_;
  std::shared_ptr<EventLoop> loop_;
  std::shared_ptr<EventSink> sink_;

  mutable std::mutex mu_;
  ConnectPtr conn_;
  int lifecycle_callback_ = -1;
  int agent_callback_ = -1;
  bool close_callback_registered_ = false;
  int64_t next_connect_mono_ns_ = 0;
  double backoff_s_ = 0;
  std::string last_connect_error_;
  std::unordered_map<std::string, DomainPtr> handles_;  // uuid -> handle of the last list
  std::atomic<bool> connected_{false};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace vmtime::libvirt
