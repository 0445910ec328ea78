// LibvirtApi: the few libvirt operations the libvirt collector needs, behind
// an interface so the scheduling logic (worker pool, deadlines, retries,
// events) is unit-tested with a fake that can hang, fail and return chosen
// guest times. RealLibvirtApi (real_libvirt_api.h) is the production
// implementation; it owns the connection, reconnects and delivers events.
//
// Thread safety: every method may be called from any thread concurrently.
// GetTime and SetAgentTimeout may block for as long as libvirt blocks (a hung
// guest agent can block far beyond any timeout); callers must be prepared to
// abandon them.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "exporter/core/result.h"
#include "exporter/model/observations.h"

namespace vmtime::libvirt {

// One domain as listed by libvirt.
struct DomainInfo {
  SharedString uuid;  // canonical UUID string, the key everywhere
  SharedString name;
  DomainState state = DomainState::kUnknown;
};

// The guest's CLOCK_REALTIME as guest-get-time reports it.
struct GuestTime {
  int64_t seconds = 0;       // since the Unix epoch
  uint32_t nanoseconds = 0;  // < 1e9
};

// Domain events that matter for guest time.
enum class DomainEvent {
  kStarted,         // booted, restored, migrated in, woken up
  kResumed,         // unpaused, migration finished, snapshot reverted
  kSuspended,       // paused
  kStopped,         // shut off, crashed, destroyed, saved, migrated away
  kAgentConnected,  // guest agent channel connected
  kAgentDisconnected,
};
const char* DomainEventName(DomainEvent e);

// Called on libvirt's event loop thread; must not block.
using DomainEventHandler =
    std::function<void(const std::string& uuid, const std::string& name, DomainEvent event)>;
// A domain's <metadata> changed (VIR_DOMAIN_EVENT_ID_METADATA_CHANGE), for
// the element of any namespace; on libvirt's event loop thread, must not
// block.
using MetadataEventHandler = std::function<void(const std::string& uuid, const std::string& name)>;

class LibvirtApi {
 public:
  virtual ~LibvirtApi() = default;

  // Lists every domain (active and inactive) with its state. Connects or
  // reconnects first when needed (with backoff). Errors name the URI/call.
  virtual Result<std::vector<DomainInfo>> ListDomains() = 0;

  // True while a connection is open and believed alive.
  virtual bool Connected() const = 0;

  // Increments each time a new connection is established; per-domain
  // settings (agent timeout) must be re-applied when it changes.
  virtual uint64_t ConnectionGeneration() const = 0;

  // virDomainGetTime through the guest agent. May block.
  virtual Result<GuestTime> GetTime(const std::string& uuid, const std::string& name) = 0;

  // virDomainSetTime(dom, seconds, nanoseconds, 0): sets the guest clock
  // through the agent to this explicit time (remediation). May block.
  // Default: unsupported (test fakes of the collector do not need it).
  virtual Status SetTime(const std::string& /*uuid*/, const std::string& name,
                         const GuestTime& /*time*/) {
    return Error{"domain '" + name + "': virDomainSetTime is not supported by this api"};
  }

  // virDomainAgentSetResponseTimeout(dom, seconds). May block.
  virtual Status SetAgentTimeout(const std::string& uuid, const std::string& name, int seconds) = 0;

  // Installs the event handler (before the first ListDomains). The handler
  // must outlive the api or be replaced by an empty one first.
  virtual void SetEventHandler(DomainEventHandler handler) = 0;

  // virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT, ns_uri): the element
  // the domain holds in that namespace, or nullopt when it holds none. May
  // block (an RPC to libvirtd, no guest involved). The default is an API
  // without metadata: every domain holds none.
  virtual Result<std::optional<std::string>> GetMetadata(const std::string& /*uuid*/,
                                                         const std::string& /*name*/,
                                                         const std::string& /*ns_uri*/) {
    return std::optional<std::string>();
  }
  // Installs the metadata-change handler, like SetEventHandler. Default:
  // no metadata events (metadata is then read at discovery only).
  virtual void SetMetadataHandler(MetadataEventHandler /*handler*/) {}
};

}  // namespace vmtime::libvirt
