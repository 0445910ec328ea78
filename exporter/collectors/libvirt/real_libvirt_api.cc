// See real_libvirt_api.h.
#include "exporter/collectors/libvirt/real_libvirt_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>

namespace vmtime::libvirt {

struct RealLibvirtApi::EventSink {
  std::mutex mu;
  DomainEventHandler handler;
  MetadataEventHandler metadata_handler;
  std::atomic<uint64_t> closed_generation{0};  // generation whose connection closed

  void Deliver(virDomainPtr dom, DomainEvent event) {
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (dom == nullptr || virDomainGetUUIDString(dom, uuid) < 0) return;  // local, no RPC
    const char* name = virDomainGetName(dom);                             // local, no RPC
    std::lock_guard lock(mu);
    if (!handler) return;
    try {
      handler(uuid, name != nullptr ? name : "", event);
    } catch (...) {
      // Never let an exception cross libvirt's C callback.
    }
  }

  void DeliverMetadata(virDomainPtr dom) {
    char uuid[VIR_UUID_STRING_BUFLEN] = {};
    if (dom == nullptr || virDomainGetUUIDString(dom, uuid) < 0) return;  // local, no RPC
    const char* name = virDomainGetName(dom);                             // local, no RPC
    std::lock_guard lock(mu);
    if (!metadata_handler) return;
    try {
      metadata_handler(uuid, name != nullptr ? name : "");
    } catch (...) {
      // Never let an exception cross libvirt's C callback.
    }
  }
};

namespace {

using Sink = RealLibvirtApi::EventSink;

// Opaque data for one registered callback; libvirt frees it through FreeCtx
// when the callback is deregistered, so the sink outlives every invocation.
struct CallbackCtx {
  std::shared_ptr<Sink> sink;
  uint64_t generation = 0;
};
void FreeCtx(void* opaque) { delete static_cast<CallbackCtx*>(opaque); }

void OnLifecycle(virConnectPtr /*conn*/, virDomainPtr dom, int event, int /*detail*/,
                 void* opaque) {
  auto* ctx = static_cast<CallbackCtx*>(opaque);
  switch (event) {
    case VIR_DOMAIN_EVENT_STARTED:  // booted, migrated in, restored, snapshot, woken up
      ctx->sink->Deliver(dom, DomainEvent::kStarted);
      break;
    case VIR_DOMAIN_EVENT_RESUMED:  // unpaused, migrated, snapshot reverted, post-copy
      ctx->sink->Deliver(dom, DomainEvent::kResumed);
      break;
    case VIR_DOMAIN_EVENT_SUSPENDED:
    case VIR_DOMAIN_EVENT_PMSUSPENDED:
      ctx->sink->Deliver(dom, DomainEvent::kSuspended);
      break;
    case VIR_DOMAIN_EVENT_STOPPED:
    case VIR_DOMAIN_EVENT_CRASHED:
      ctx->sink->Deliver(dom, DomainEvent::kStopped);
      break;
    default:
      break;
  }
}

void OnAgentLifecycle(virConnectPtr /*conn*/, virDomainPtr dom, int state, int /*reason*/,
                      void* opaque) {
  auto* ctx = static_cast<CallbackCtx*>(opaque);
  if (state == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_CONNECTED) {
    ctx->sink->Deliver(dom, DomainEvent::kAgentConnected);
  } else if (state == VIR_CONNECT_DOMAIN_EVENT_AGENT_LIFECYCLE_STATE_DISCONNECTED) {
    ctx->sink->Deliver(dom, DomainEvent::kAgentDisconnected);
  }
}

void OnMetadataChange(virConnectPtr /*conn*/, virDomainPtr dom, int type, const char* /*nsuri*/,
                      void* opaque) {
  if (type != VIR_DOMAIN_METADATA_ELEMENT) return;  // <title>/<description>: not ours
  static_cast<CallbackCtx*>(opaque)->sink->DeliverMetadata(dom);
}

DomainState StateFromLibvirt(int s) {
  switch (s) {
    case VIR_DOMAIN_RUNNING:
      return DomainState::kRunning;
    case VIR_DOMAIN_BLOCKED:
      return DomainState::kBlocked;
    case VIR_DOMAIN_PAUSED:
      return DomainState::kPaused;
    case VIR_DOMAIN_SHUTDOWN:
      return DomainState::kShutdown;
    case VIR_DOMAIN_SHUTOFF:
      return DomainState::kShutoff;
    case VIR_DOMAIN_CRASHED:
      return DomainState::kCrashed;
    case VIR_DOMAIN_PMSUSPENDED:
      return DomainState::kSuspended;
    default:
      return DomainState::kUnknown;
  }
}

struct StatsDeleter {
  void operator()(virDomainStatsRecordPtr* r) const noexcept { virDomainStatsRecordListFree(r); }
};

struct DomainListDeleter {
  int count = 0;
  void operator()(virDomainPtr* list) const noexcept {
    for (int i = 0; i < count; ++i) virDomainFree(list[i]);
    free(list);  // NOLINT: allocated by libvirt
  }
};

// One domain of a list, before it is matched against the handle table.
struct Listed {
  std::array<char, VIR_UUID_STRING_BUFLEN> uuid{};
  const char* name = "";  // libvirt's, valid while the list is
  DomainState state = DomainState::kUnknown;
  virDomainPtr dom = nullptr;
};

bool FillListed(virDomainPtr dom, Listed& l) {
  if (virDomainGetUUIDString(dom, l.uuid.data()) < 0) return false;
  const char* name = virDomainGetName(dom);
  l.name = name != nullptr ? name : "";
  l.dom = dom;
  return true;
}

}  // namespace

const char* DomainEventName(DomainEvent e) {
  switch (e) {
    case DomainEvent::kStarted:
      return "started";
    case DomainEvent::kResumed:
      return "resumed";
    case DomainEvent::kSuspended:
      return "suspended";
    case DomainEvent::kStopped:
      return "stopped";
    case DomainEvent::kAgentConnected:
      return "agent-connected";
    case DomainEvent::kAgentDisconnected:
      return "agent-disconnected";
  }
  return "unknown";
}

RealLibvirtApi::RealLibvirtApi(const LibvirtConfig& config, const Clock& clock)
    : config_(config),
      sink_(std::make_shared<EventSink>()),
      connection_(ConnectionPolicy::FromConfig(config), clock, "libvirt",
                  Connection::Hooks{
                      [this](virConnectPtr c, uint64_t g) { RegisterEvents(c, g); },
                      [this](virConnectPtr c) { DeregisterEvents(c); },
                  }) {}

RealLibvirtApi::~RealLibvirtApi() {
  std::lock_guard lock(sink_->mu);
  sink_->handler = nullptr;
  sink_->metadata_handler = nullptr;
}

void RealLibvirtApi::SetMetadataHandler(MetadataEventHandler handler) {
  std::lock_guard lock(sink_->mu);
  sink_->metadata_handler = std::move(handler);
}

Result<std::optional<std::string>> RealLibvirtApi::GetMetadata(const std::string& uuid,
                                                               const std::string& name,
                                                               const std::string& ns_uri) {
  Result<DomainPtr> dom = FindDomain(uuid, name);
  if (!dom.ok()) return dom.error();
  char* xml = virDomainGetMetadata(dom->get(), VIR_DOMAIN_METADATA_ELEMENT, ns_uri.c_str(), 0);
  if (xml == nullptr) {
    LastError err = TakeLastError();
    if (err.code == VIR_ERR_NO_DOMAIN_METADATA) return std::optional<std::string>();
    return Error{
        fmt::format("virDomainGetMetadata(domain '{}', {}): {}", name, ns_uri, err.message)};
  }
  std::string out(xml);
  free(xml);  // NOLINT: allocated by libvirt
  return std::optional<std::string>(std::move(out));
}

void RealLibvirtApi::SetEventHandler(DomainEventHandler handler) {
  std::lock_guard lock(sink_->mu);
  sink_->handler = std::move(handler);
}

// Runs under the connection's lock right after it opened.
void RealLibvirtApi::RegisterEvents(virConnectPtr conn, uint64_t generation) {
  auto* life_ctx = new CallbackCtx{sink_, generation};
  lifecycle_callback_ =
      virConnectDomainEventRegisterAny(conn, nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                       VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), life_ctx, FreeCtx);
  if (lifecycle_callback_ < 0) {
    delete life_ctx;
    spdlog::warn(
        "libvirt: no lifecycle events from {} ({}): resumes and pauses are seen on the next poll",
        config_.uri, TakeLastError().message);
  }
  auto* agent_ctx = new CallbackCtx{sink_, generation};
  agent_callback_ = virConnectDomainEventRegisterAny(
      conn, nullptr, VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
      VIR_DOMAIN_EVENT_CALLBACK(OnAgentLifecycle), agent_ctx, FreeCtx);
  if (agent_callback_ < 0) {
    delete agent_ctx;
    spdlog::debug("libvirt: no agent lifecycle events from {} ({})", config_.uri,
                  TakeLastError().message);
  }
  auto* metadata_ctx = new CallbackCtx{sink_, generation};
  metadata_callback_ = virConnectDomainEventRegisterAny(
      conn, nullptr, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
      VIR_DOMAIN_EVENT_CALLBACK(OnMetadataChange), metadata_ctx, FreeCtx);
  if (metadata_callback_ < 0) {
    delete metadata_ctx;
    spdlog::warn(
        "libvirt: no metadata-change events from {} ({}): group metadata is read when a "
        "domain is first listed only",
        config_.uri, TakeLastError().message);
  }
}

// Runs under the connection's lock right before it closes.
void RealLibvirtApi::DeregisterEvents(virConnectPtr conn) {
  if (lifecycle_callback_ >= 0) {
    virConnectDomainEventDeregisterAny(conn, lifecycle_callback_);
    lifecycle_callback_ = -1;
  }
  if (agent_callback_ >= 0) {
    virConnectDomainEventDeregisterAny(conn, agent_callback_);
    agent_callback_ = -1;
  }
  if (metadata_callback_ >= 0) {
    virConnectDomainEventDeregisterAny(conn, metadata_callback_);
    metadata_callback_ = -1;
  }
  std::lock_guard lock(mu_);
  handles_.clear();
}

Result<std::vector<DomainInfo>> RealLibvirtApi::ListDomains() {
  Result<ConnectPtr> got = connection_.Get();
  if (!got.ok()) return got.error();
  const uint64_t generation = connection_.generation();
  ConnectPtr hold = std::move(*got);  // our own reference, used outside any lock
  virConnectPtr conn = hold.get();

  std::vector<Listed> listed;
  virDomainStatsRecordPtr* records = nullptr;
  std::unique_ptr<virDomainStatsRecordPtr, StatsDeleter> stats_owner;
  std::unique_ptr<virDomainPtr, DomainListDeleter> list_owner;
  const int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, &records, 0);
  if (n >= 0) {
    stats_owner.reset(records);
    listed.reserve(n);
    for (int i = 0; i < n; ++i) {
      Listed l;
      if (!FillListed(records[i]->dom, l)) continue;
      for (int p = 0; p < records[i]->nparams; ++p) {
        const virTypedParameter& param = records[i]->params[p];
        if (std::strcmp(param.field, "state.state") == 0) {
          l.state =
              StateFromLibvirt(param.type == VIR_TYPED_PARAM_INT ? param.value.i : param.value.ui);
        }
      }
      listed.push_back(l);
    }
  } else {
    LastError err = TakeLastError();
    if (err.code != VIR_ERR_NO_SUPPORT) {
      connection_.Check(conn, err.message);
      return Error{fmt::format("virConnectGetAllDomainStats({}): {}", config_.uri, err.message)};
    }
    // Drivers without bulk stats: list, then ask each domain its state.
    virDomainPtr* list = nullptr;
    const int m = virConnectListAllDomains(conn, &list, 0);
    if (m < 0) {
      Error e = LibvirtError("virConnectListAllDomains", "", config_.uri);
      connection_.Check(conn, e.message);
      return e;
    }
    list_owner = std::unique_ptr<virDomainPtr, DomainListDeleter>(list, DomainListDeleter{m});
    listed.reserve(m);
    for (int i = 0; i < m; ++i) {
      Listed l;
      if (!FillListed(list[i], l)) continue;
      int state = 0;
      int reason = 0;
      if (virDomainGetState(list[i], &state, &reason, 0) == 0) {
        l.state = StateFromLibvirt(state);
      } else {
        virResetLastError();  // vanished between list and state: report unknown
      }
      listed.push_back(l);
    }
  }
  // The table is updated in place: a domain listed before keeps its entry
  // and texts (its handle is this list's: a restarted domain's id changes).
  std::vector<DomainInfo> out;
  out.reserve(listed.size());
  std::lock_guard lock(mu_);
  if (handles_generation_ != generation) handles_.clear();
  handles_generation_ = generation;
  const uint64_t pass = ++lists_;
  for (const Listed& l : listed) {
    const std::string_view uuid(l.uuid.data());
    auto it = handles_.find(uuid);
    if (it == handles_.end()) it = handles_.try_emplace(SharedString(uuid)).first;
    Handle& h = it->second;
    if (h.name != l.name) h.name = SharedString(l.name);
    h.dom = RefDomain(l.dom);
    h.pass = pass;
    out.push_back(DomainInfo{it->first, h.name, l.state});
  }
  std::erase_if(handles_, [pass](const auto& kv) { return kv.second.pass != pass; });
  return out;
}

Result<DomainPtr> RealLibvirtApi::FindDomain(const std::string& uuid, const std::string& name) {
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(uuid);
    if (it != handles_.end() && handles_generation_ == connection_.generation()) {
      return RefDomain(it->second.dom.get());
    }
  }
  Result<ConnectPtr> conn = connection_.Get();
  if (!conn.ok()) return Error{fmt::format("domain '{}': {}", name, conn.error().message)};
  DomainPtr dom(virDomainLookupByUUIDString(conn->get(), uuid.c_str()));
  if (!dom) return LibvirtError("virDomainLookupByUUIDString", name);
  return dom;
}

Result<GuestTime> RealLibvirtApi::GetTime(const std::string& uuid, const std::string& name) {
  Result<DomainPtr> dom = FindDomain(uuid, name);
  if (!dom.ok()) return dom.error();
  long long seconds = 0;  // NOLINT(google-runtime-int): libvirt's type
  unsigned int nseconds = 0;
  if (virDomainGetTime(dom->get(), &seconds, &nseconds, 0) < 0) {
    return LibvirtError("virDomainGetTime", name);
  }
  return GuestTime{static_cast<int64_t>(seconds), nseconds};
}

Status RealLibvirtApi::SetTime(const std::string& uuid, const std::string& name,
                               const GuestTime& time) {
  Result<DomainPtr> dom = FindDomain(uuid, name);
  if (!dom.ok()) return dom.error();
  if (virDomainSetTime(dom->get(), time.seconds, time.nanoseconds, 0) < 0) {
    return LibvirtError("virDomainSetTime", name);
  }
  return Status::Ok();
}

Status RealLibvirtApi::SetAgentTimeout(const std::string& uuid, const std::string& name,
                                       int seconds) {
  Result<DomainPtr> dom = FindDomain(uuid, name);
  if (!dom.ok()) return dom.error();
  if (virDomainAgentSetResponseTimeout(dom->get(), seconds, 0) < 0) {
    return LibvirtError("virDomainAgentSetResponseTimeout", name);
  }
  return Status::Ok();
}

}  // namespace vmtime::libvirt
