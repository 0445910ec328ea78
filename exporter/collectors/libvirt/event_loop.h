// EventLoop: libvirt's default event loop on a thread of its own.
//
// libvirt needs an event loop for keepalive, the connection close callback
// and domain events. virEventRegisterDefaultImpl() must run before the first
// connection is opened; a thread then calls virEventRunDefaultImpl() until
// the last user releases the loop. Stopping is clean: a zero-delay timeout
// wakes the blocked loop so it sees the stop flag, and the thread is joined.
// One loop per process, shared by every connection (Acquire refcounts it).
#pragma once

#include <atomic>
#include <memory>
#include <thread>

namespace vmtime::libvirt {

class EventLoop {
 public:
  // Registers the default implementation (once per process) and starts the
  // loop thread if no one holds it.
  static std::shared_ptr<EventLoop> Acquire();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

 private:
  EventLoop();
  void Run();
  std::atomic<bool> stop_{false};
  int heartbeat_timer_ = -1;
  std::thread thread_;
};

}  // namespace vmtime::libvirt
