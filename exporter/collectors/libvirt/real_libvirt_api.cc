// See real_libvirt_api.h.
#include "exporter/collectors/libvirt/real_libvirt_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace vmtime::libvirt {

struct RealLibvirtApi::EventSink {
  std::mutex mu;
  DomainEventHandler handler;
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

void OnClose(virConnectPtr /*conn*/, int reason, void* opaque) {
  auto* ctx = static_cast<CallbackCtx*>(opaque);
  ctx->sink->closed_generation = ctx->generation;
  static constexpr const char* kReasons[] = {"error", "end of file", "keepalive timeout",
                                             "client request"};
  const char* why = reason >= 0 && reason < 4 ? kReasons[reason] : "unknown reason";
  // Logged here because the event loop is the first to know.
  spdlog::warn("libvirt: connection closed ({}); reconnecting on the next poll", why);
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

bool FillInfo(virDomainPtr dom, DomainInfo& info) {
  char uuid[VIR_UUID_STRING_BUFLEN] = {};
  if (virDomainGetUUIDString(dom, uuid) < 0) return false;
  const char* name = virDomainGetName(dom);
  info.uuid = uuid;
  info.name = name != nullptr ? name : "";
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
    : config_(config), clock_(clock), sink_(std::make_shared<EventSink>()) {
  SilenceLibvirtErrors();
  loop_ = EventLoop::Acquire();  // before the first connection
}

RealLibvirtApi::~RealLibvirtApi() {
  {
    std::lock_guard lock(sink_->mu);
    sink_->handler = nullptr;
  }
  std::lock_guard lock(mu_);
  DisconnectLocked("exporter shutting down");
}

void RealLibvirtApi::SetEventHandler(DomainEventHandler handler) {
  std::lock_guard lock(sink_->mu);
  sink_->handler = std::move(handler);
}

Status RealLibvirtApi::ConnectLocked() {
  ConnectPtr conn(virConnectOpen(config_.uri.c_str()));
  if (!conn) {
    Error e = LibvirtError("virConnectOpen", "", config_.uri);
    if (e.message.find("ermission denied") != std::string::npos ||
        e.message.find("uthentication") != std::string::npos) {
      e.message +=
          " (the exporter needs a read-write connection because virDomainGetTime is refused "
          "on read-only ones: run it as root or a member of the libvirt group, or allow it "
          "through polkit / the socket's access rules)";
    }
    return e;
  }
  const uint64_t generation = generation_.load() + 1;
  if (config_.keepalive_interval_s > 0) {
    int rc = virConnectSetKeepAlive(conn.get(), static_cast<int>(config_.keepalive_interval_s),
                                    static_cast<unsigned>(std::max(0, config_.keepalive_count)));
    if (rc < 0) {
      spdlog::debug("libvirt: keepalive not enabled on {}: {}", config_.uri,
                    TakeLastError().message);
    } else if (rc == 1) {
      spdlog::debug("libvirt: {} does not support keepalive", config_.uri);
    }
  }
  auto* close_ctx = new CallbackCtx{sink_, generation};
  if (virConnectRegisterCloseCallback(conn.get(), OnClose, close_ctx, FreeCtx) < 0) {
    delete close_ctx;
    spdlog::debug("libvirt: no close callback on {} ({}); relying on virConnectIsAlive",
                  config_.uri, TakeLastError().message);
    close_callback_registered_ = false;
  } else {
    close_callback_registered_ = true;
  }
  auto* life_ctx = new CallbackCtx{sink_, generation};
  lifecycle_callback_ =
      virConnectDomainEventRegisterAny(conn.get(), nullptr, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                       VIR_DOMAIN_EVENT_CALLBACK(OnLifecycle), life_ctx, FreeCtx);
  if (lifecycle_callback_ < 0) {
    delete life_ctx;
    spdlog::warn("libvirt: no lifecycle events from {} ({}): resumes are seen on the next poll",
                 config_.uri, TakeLastError().message);
  }
  auto* agent_ctx = new CallbackCtx{sink_, generation};
  agent_callback_ = virConnectDomainEventRegisterAny(
      conn.get(), nullptr, VIR_DOMAIN_EVENT_ID_AGENT_LIFECYCLE,
      VIR_DOMAIN_EVENT_CALLBACK(OnAgentLifecycle), agent_ctx, FreeCtx);
  if (agent_callback_ < 0) {
    delete agent_ctx;
    spdlog::debug("libvirt: no agent lifecycle events from {} ({})", config_.uri,
                  TakeLastError().message);
  }
  conn_ = std::move(conn);
  generation_ = generation;
  connected_ = true;
  backoff_s_ = 0;
  next_connect_mono_ns_ = 0;
  last_connect_error_.clear();
  spdlog::info(
      "libvirt: connected read-write to {} (read-write is required: virDomainGetTime is "
      "refused on read-only connections)",
      config_.uri);
  return Status::Ok();
}

void RealLibvirtApi::DisconnectLocked(std::string_view why) {
  if (!conn_) return;
  spdlog::info("libvirt: closing connection to {}: {}", config_.uri, why);
  if (lifecycle_callback_ >= 0) {
    virConnectDomainEventDeregisterAny(conn_.get(), lifecycle_callback_);
    lifecycle_callback_ = -1;
  }
  if (agent_callback_ >= 0) {
    virConnectDomainEventDeregisterAny(conn_.get(), agent_callback_);
    agent_callback_ = -1;
  }
  if (close_callback_registered_) {
    virConnectUnregisterCloseCallback(conn_.get(), OnClose);
    close_callback_registered_ = false;
  }
  virResetLastError();  // deregistering on a dead connection fails; that is expected
  handles_.clear();
  conn_.reset();
  connected_ = false;
}

Result<std::vector<DomainInfo>> RealLibvirtApi::ListDomains() {
  virConnectPtr conn = nullptr;
  {
    std::lock_guard lock(mu_);
    if (conn_) {
      const bool closed = sink_->closed_generation.load() == generation_.load();
      if (closed || virConnectIsAlive(conn_.get()) != 1) {
        DisconnectLocked("connection lost");
      }
    }
    if (!conn_) {
      const int64_t now = clock_.MonotonicNs();
      if (now < next_connect_mono_ns_) {
        return Error{fmt::format("not connected to {}: next attempt in {:.1f} s (last error: {})",
                                 config_.uri, NsToSeconds(next_connect_mono_ns_ - now),
                                 last_connect_error_)};
      }
      Status st = ConnectLocked();
      if (!st.ok()) {
        backoff_s_ = backoff_s_ <= 0
                         ? 1.0
                         : std::min(backoff_s_ * 2, std::max(1.0, config_.reconnect_backoff_max_s));
        next_connect_mono_ns_ = now + SecondsToNs(backoff_s_);
        if (last_connect_error_ != st.message()) {
          spdlog::warn("libvirt: {} (retrying with backoff up to {:.0f} s)", st.message(),
                       config_.reconnect_backoff_max_s);
        }
        last_connect_error_ = st.message();
        return st.error();
      }
    }
    conn = conn_.get();
    virConnectRef(conn);
  }
  ConnectPtr hold(conn);  // keeps the connection alive outside the lock

  std::vector<DomainInfo> out;
  std::unordered_map<std::string, DomainPtr> handles;
  virDomainStatsRecordPtr* records = nullptr;
  const int n = virConnectGetAllDomainStats(conn, VIR_DOMAIN_STATS_STATE, &records, 0);
  if (n >= 0) {
    std::unique_ptr<virDomainStatsRecordPtr, StatsDeleter> owner(records);
    out.reserve(n);
    handles.reserve(n);
    for (int i = 0; i < n; ++i) {
      DomainInfo info;
      if (!FillInfo(records[i]->dom, info)) continue;
      for (int p = 0; p < records[i]->nparams; ++p) {
        const virTypedParameter& param = records[i]->params[p];
        if (std::strcmp(param.field, "state.state") == 0) {
          info.state =
              StateFromLibvirt(param.type == VIR_TYPED_PARAM_INT ? param.value.i : param.value.ui);
        }
      }
      handles.emplace(info.uuid, RefDomain(records[i]->dom));
      out.push_back(std::move(info));
    }
  } else {
    LastError err = TakeLastError();
    if (err.code != VIR_ERR_NO_SUPPORT) {
      std::lock_guard lock(mu_);
      if (conn_.get() == conn && virConnectIsAlive(conn) != 1) DisconnectLocked(err.message);
      return Error{fmt::format("virConnectGetAllDomainStats({}): {}", config_.uri, err.message)};
    }
    // Drivers without bulk stats: list, then ask each domain its state.
    virDomainPtr* list = nullptr;
    const int m = virConnectListAllDomains(conn, &list, 0);
    if (m < 0) {
      Error e = LibvirtError("virConnectListAllDomains", "", config_.uri);
      std::lock_guard lock(mu_);
      if (conn_.get() == conn && virConnectIsAlive(conn) != 1) DisconnectLocked(e.message);
      return e;
    }
    std::unique_ptr<virDomainPtr, DomainListDeleter> owner(list, DomainListDeleter{m});
    out.reserve(m);
    for (int i = 0; i < m; ++i) {
      DomainInfo info;
      if (!FillInfo(list[i], info)) continue;
      int state = 0;
      int reason = 0;
      if (virDomainGetState(list[i], &state, &reason, 0) == 0) {
        info.state = StateFromLibvirt(state);
      } else {
        virResetLastError();  // vanished between list and state: report unknown
      }
      handles.emplace(info.uuid, RefDomain(list[i]));
      out.push_back(std::move(info));
    }
  }
  std::lock_guard lock(mu_);
  if (conn_.get() == conn) handles_.swap(handles);
  return out;
}

Result<DomainPtr> RealLibvirtApi::FindDomain(const std::string& uuid, const std::string& name) {
  virConnectPtr conn = nullptr;
  {
    std::lock_guard lock(mu_);
    auto it = handles_.find(uuid);
    if (it != handles_.end()) return RefDomain(it->second.get());
    if (!conn_) return Error{fmt::format("domain '{}': not connected to {}", name, config_.uri)};
    conn = conn_.get();
    virConnectRef(conn);
  }
  ConnectPtr hold(conn);
  DomainPtr dom(virDomainLookupByUUIDString(conn, uuid.c_str()));
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
