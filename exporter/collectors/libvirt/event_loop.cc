// See event_loop.h.
#include "exporter/collectors/libvirt/event_loop.h"

#include <libvirt/libvirt.h>
#include <spdlog/spdlog.h>

#include <mutex>

#include "exporter/collectors/libvirt/libvirt_handles.h"

namespace vmtime::libvirt {

namespace {
std::mutex g_mu;
std::weak_ptr<EventLoop> g_loop;

// Fires on the next loop iteration and removes itself: its only job is to
// make virEventRunDefaultImpl() return so the stop flag is seen.
void WakeTimeout(int timer, void* /*opaque*/) { virEventRemoveTimeout(timer); }
// A periodic no-op: bounds how long a stop can go unnoticed even if adding
// the wake-up timeout failed.
void Heartbeat(int /*timer*/, void* /*opaque*/) {}
}  // namespace

std::shared_ptr<EventLoop> EventLoop::Acquire() {
  std::lock_guard lock(g_mu);
  if (auto loop = g_loop.lock()) return loop;
  static std::once_flag registered;
  std::call_once(registered, [] {
    SilenceLibvirtErrors();
    if (virEventRegisterDefaultImpl() < 0) {
      spdlog::error("libvirt: virEventRegisterDefaultImpl failed: {}", TakeLastError().message);
    }
  });
  std::shared_ptr<EventLoop> loop(new EventLoop());
  g_loop = loop;
  return loop;
}

EventLoop::EventLoop() {
  heartbeat_timer_ = virEventAddTimeout(500, Heartbeat, nullptr, nullptr);
  thread_ = std::thread([this] { Run(); });
}

void EventLoop::Run() {
  while (!stop_.load()) {
    if (virEventRunDefaultImpl() < 0) {
      spdlog::warn("libvirt: event loop iteration failed: {}", TakeLastError().message);
    }
  }
}

EventLoop::~EventLoop() {
  stop_ = true;
  if (virEventAddTimeout(0, WakeTimeout, nullptr, nullptr) < 0) {
    spdlog::warn("libvirt: cannot wake the event loop to stop it: {}", TakeLastError().message);
  }
  if (thread_.get_id() == std::this_thread::get_id()) {
    if (heartbeat_timer_ >= 0) virEventRemoveTimeout(heartbeat_timer_);
    thread_.detach();  // released from inside a callback: the loop exits by itself
  } else if (thread_.joinable()) {
    thread_.join();
    if (heartbeat_timer_ >= 0) virEventRemoveTimeout(heartbeat_timer_);
  }
}

}  // namespace vmtime::libvirt
