// See connection.h.
#include "exporter/collectors/libvirt/connection.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace vmtime::libvirt {

struct Connection::CloseState {
  std::atomic<uint64_t> closed_generation{0};  // generation whose connection closed
  std::string who;
};

namespace {

// Opaque data of the close callback; libvirt frees it through FreeCloseCtx
// when the callback is unregistered or the connection is freed.
struct CloseCtx {
  std::shared_ptr<Connection::CloseState> state;
  uint64_t generation = 0;
};
void FreeCloseCtx(void* opaque) { delete static_cast<CloseCtx*>(opaque); }

void OnClose(virConnectPtr /*conn*/, int reason, void* opaque) {
  auto* ctx = static_cast<CloseCtx*>(opaque);
  ctx->state->closed_generation = ctx->generation;
  static constexpr const char* kReasons[] = {"error", "end of file", "keepalive timeout",
                                             "client request"};
  const char* why = reason >= 0 && reason < 4 ? kReasons[reason] : "unknown reason";
  // Logged here because the event loop is the first to know.
  spdlog::warn("{}: libvirt connection closed ({}); reconnecting on next use", ctx->state->who,
               why);
}

}  // namespace

ConnectionPolicy ConnectionPolicy::FromConfig(const LibvirtConfig& config) {
  ConnectionPolicy p;
  p.uri = config.uri;
  p.keepalive_interval_s = config.keepalive_interval_s;
  p.keepalive_count = config.keepalive_count;
  p.reconnect_backoff_max_s = config.reconnect_backoff_max_s;
  return p;
}

Connection::Connection(ConnectionPolicy policy, const Clock& clock, std::string who, Hooks hooks)
    : policy_(std::move(policy)),
      clock_(clock),
      who_(std::move(who)),
      hooks_(std::move(hooks)),
      close_state_(std::make_shared<CloseState>()) {
  close_state_->who = who_;
  SilenceLibvirtErrors();
  loop_ = EventLoop::Acquire();  // before the first connection
}

Connection::~Connection() {
  std::lock_guard lock(mu_);
  CloseLocked("exporter shutting down");
}

Status Connection::OpenLocked() {
  ConnectPtr conn(virConnectOpen(policy_.uri.c_str()));
  if (!conn) {
    Error e = LibvirtError("virConnectOpen", "", policy_.uri);
    if (e.message.find("ermission denied") != std::string::npos ||
        e.message.find("uthentication") != std::string::npos) {
      e.message +=
          " (the exporter needs a read-write connection because virDomainGetTime and guest "
          "agent commands are refused on read-only ones: run it as root or a member of the "
          "libvirt group, or allow it through polkit / the socket's access rules)";
    }
    return e;
  }
  const uint64_t generation = generation_.load() + 1;
  if (policy_.keepalive_interval_s > 0) {
    const int rc =
        virConnectSetKeepAlive(conn.get(), static_cast<int>(policy_.keepalive_interval_s),
                               static_cast<unsigned>(std::max(0, policy_.keepalive_count)));
    if (rc < 0) {
      spdlog::debug("{}: keepalive not enabled on {}: {}", who_, policy_.uri,
                    TakeLastError().message);
    } else if (rc == 1) {
      spdlog::debug("{}: {} does not support keepalive", who_, policy_.uri);
    }
  }
  auto* close_ctx = new CloseCtx{close_state_, generation};
  if (virConnectRegisterCloseCallback(conn.get(), OnClose, close_ctx, FreeCloseCtx) < 0) {
    delete close_ctx;
    spdlog::debug("{}: no close callback on {} ({}); relying on virConnectIsAlive", who_,
                  policy_.uri, TakeLastError().message);
    close_callback_registered_ = false;
  } else {
    close_callback_registered_ = true;
  }
  if (hooks_.opened) hooks_.opened(conn.get(), generation);
  conn_ = std::move(conn);
  generation_ = generation;
  connected_ = true;
  backoff_s_ = 0;
  next_attempt_mono_ns_ = 0;
  last_error_.clear();
  spdlog::info(
      "{}: connected read-write to {} (read-write is required: virDomainGetTime is refused on "
      "read-only connections)",
      who_, policy_.uri);
  return Status::Ok();
}

void Connection::CloseLocked(std::string_view why) {
  if (!conn_) return;
  spdlog::info("{}: closing the connection to {}: {}", who_, policy_.uri, why);
  if (hooks_.closing) hooks_.closing(conn_.get());
  if (close_callback_registered_) {
    virConnectUnregisterCloseCallback(conn_.get(), OnClose);
    close_callback_registered_ = false;
  }
  virResetLastError();  // deregistering on a dead connection fails; that is expected
  conn_.reset();
  connected_ = false;
}

Result<ConnectPtr> Connection::Get() {
  std::lock_guard lock(mu_);
  if (conn_) {
    const bool closed = close_state_->closed_generation.load() == generation_.load();
    if (closed || virConnectIsAlive(conn_.get()) != 1) CloseLocked("connection lost");
  }
  if (!conn_) {
    const int64_t now = clock_.MonotonicNs();
    if (now < next_attempt_mono_ns_) {
      return Error{fmt::format("not connected to {}: next attempt in {:.1f} s (last error: {})",
                               policy_.uri, NsToSeconds(next_attempt_mono_ns_ - now), last_error_)};
    }
    Status st = OpenLocked();
    if (!st.ok()) {
      backoff_s_ = backoff_s_ <= 0
                       ? 1.0
                       : std::min(backoff_s_ * 2, std::max(1.0, policy_.reconnect_backoff_max_s));
      next_attempt_mono_ns_ = now + SecondsToNs(backoff_s_);
      if (last_error_ != st.message()) {
        spdlog::warn("{}: {} (retrying with backoff up to {:.0f} s)", who_, st.message(),
                     policy_.reconnect_backoff_max_s);
      }
      last_error_ = st.message();
      return st.error();
    }
  }
  virConnectRef(conn_.get());
  return ConnectPtr(conn_.get());
}

void Connection::Check(virConnectPtr conn, std::string_view why) {
  std::lock_guard lock(mu_);
  if (conn_.get() == conn && virConnectIsAlive(conn) != 1) CloseLocked(why);
}

}  // namespace vmtime::libvirt
