// RealLibvirtApi: LibvirtApi over a real libvirt connection.
//
// - The connection follows the exporter's one libvirt connection policy
//   (connection.h): read-write, keepalive and close callback on libvirt's
//   event loop, lazy reconnect with exponential backoff up to
//   reconnect_backoff_max_s, a generation counter.
// - Registers the domain lifecycle and agent lifecycle event callbacks on
//   every new connection (Connection hooks) and delivers the events to the
//   handler, mapping libvirt's event and detail codes to DomainEvent.
// - Lists all domains with their state in one RPC
//   (virConnectGetAllDomainStats, state group) and keeps the handles of the
//   last list so guest calls do not need an extra lookup.
// - Reads a domain's metadata element of one namespace and delivers the
//   metadata-change event (domain_metadata.h, metadata_reader.h).
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "exporter/collectors/libvirt/connection.h"
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
  bool Connected() const override { return connection_.connected(); }
  uint64_t ConnectionGeneration() const override { return connection_.generation(); }
  Result<GuestTime> GetTime(const std::string& uuid, const std::string& name) override;
  Status SetTime(const std::string& uuid, const std::string& name, const GuestTime& time) override;
  Status SetAgentTimeout(const std::string& uuid, const std::string& name, int seconds) override;
  void SetEventHandler(DomainEventHandler handler) override;
  Result<std::optional<std::string>> GetMetadata(const std::string& uuid, const std::string& name,
                                                 const std::string& ns_uri) override;
  void SetMetadataHandler(MetadataEventHandler handler) override;

  // Shared with libvirt's callbacks, which may outlive this object briefly.
  struct EventSink;

 private:
  void RegisterEvents(virConnectPtr conn, uint64_t generation);
  void DeregisterEvents(virConnectPtr conn);
  // An owned handle for `uuid` (from the last list, else looked up).
  Result<DomainPtr> FindDomain(const std::string& uuid, const std::string& name);

  const LibvirtConfig config_;
  std::shared_ptr<EventSink> sink_;
  int lifecycle_callback_ = -1;  // guarded by the connection's lock (hooks)
  int agent_callback_ = -1;
  int metadata_callback_ = -1;

  // A listed domain: the handle of the last list and the texts every other
  // table shares (DomainInfo hands these out, so a steady fleet's lists
  // allocate no uuid or name that is kept).
  struct Handle {
    SharedString name;
    DomainPtr dom;
    uint64_t pass = 0;  // the last list that named it
  };
  std::mutex mu_;  // handles_, lists_
  std::unordered_map<SharedString, Handle, SharedStringHash, SharedStringEqual>
      handles_;  // by uuid
  uint64_t handles_generation_ = 0;
  uint64_t lists_ = 0;

  Connection connection_;  // last: closed (hooks run) before the members above go
};

}  // namespace vmtime::libvirt
