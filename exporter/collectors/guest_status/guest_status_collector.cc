// GuestStatusCollector: scheduling of per-guest probes (see
// guest_status_collector.h).
#include "exporter/collectors/guest_status/guest_status_collector.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>

#include "exporter/collectors/guest_status/libvirt_guest_agent.h"

namespace vmtime::guest_status {

CollectorOptions OptionsFromConfig(const Config& config) {
  CollectorOptions o;
  for (const auto& id : config.guest_status.commands) {
    if (const GuestCommand* c = FindGuestCommand(id)) o.probe.commands.push_back(c->id);
  }
  o.probe.exec_timeout_s = config.guest_status.exec_timeout_s;
  o.probe.max_output_bytes = config.guest_status.max_output_bytes;
  o.concurrency = std::clamp(config.libvirt.concurrency, 1, 4);
  return o;
}

GuestStatusCollector::GuestStatusCollector(std::shared_ptr<GuestAgent> agent,
                                           CollectorOptions options, const Clock& clock,
                                           Sleeper sleep)
    : agent_(std::move(agent)),
      options_(std::move(options)),
      clock_(clock),
      sleep_(std::move(sleep)) {
  if (!sleep_) {
    sleep_ = [](int64_t ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); };
  }
  int n = std::max(1, options_.concurrency);
  for (int i = 0; i < n; ++i) {
    workers_.emplace_back([this](std::stop_token stop) { Work(stop); });
  }
}

GuestStatusCollector::~GuestStatusCollector() {
  for (auto& w : workers_) w.request_stop();
  cv_.notify_all();
  workers_.clear();  // joins
}

void GuestStatusCollector::Work(std::stop_token stop) {
  while (!stop.stop_requested()) {
    std::string uuid;
    ProbeMemory memory;
    {
      std::unique_lock lock(mu_);
      if (!cv_.wait(lock, stop, [&] { return !queue_.empty(); })) return;
      uuid = std::move(queue_.front());
      queue_.pop_front();
      auto it = guests_.find(uuid);
      if (it == guests_.end()) {  // stopped running while it waited: skip
        busy_.erase(uuid);
        cv_.notify_all();
        continue;
      }
      memory = it->second.memory;
    }
    GuestStatusObservation obs;
    try {
      obs = ProbeGuest(*agent_, uuid, options_.probe, memory, clock_, sleep_, stop);
    } catch (const std::exception& e) {  // nothing below throws by design; be safe
      obs = GuestStatusObservation{};
      obs.uuid = uuid;
      obs.daemon = "none";
      obs.error = std::string("exec_failed: unexpected exception: ") + e.what();
      obs.status.measured_mono_ns = clock_.MonotonicNs();
    } catch (...) {
      obs = GuestStatusObservation{};
      obs.uuid = uuid;
      obs.daemon = "none";
      obs.error = "exec_failed: unexpected exception";
      obs.status.measured_mono_ns = clock_.MonotonicNs();
    }
    {
      std::lock_guard lock(mu_);
      if (auto it = guests_.find(uuid); it != guests_.end()) {
        if (!obs.error.empty()) {
          spdlog::debug("guest_status: domain '{}' ({}): {}", it->second.name, uuid, obs.error);
        }
        it->second.memory = memory;
        it->second.last = std::move(obs);
      }
      busy_.erase(uuid);
    }
    cv_.notify_all();
  }
}

Status GuestStatusCollector::Collect(const CollectContext& ctx, Observations& out) {
  try {
    auto running = agent_->ListRunning();
    if (!running) {
      return Error{"guest_status: listing running domains: " + running.error().message};
    }
    std::vector<std::string> round;
    {
      std::lock_guard lock(mu_);
      std::map<std::string, Guest> next;
      for (const auto& d : *running) {
        auto it = guests_.find(d.uuid);
        Guest g = it != guests_.end() ? std::move(it->second) : Guest{};
        g.name = d.name;
        next.emplace(d.uuid, std::move(g));
        round.push_back(d.uuid);
        if (busy_.insert(d.uuid).second) queue_.push_back(d.uuid);
      }
      guests_ = std::move(next);  // forgets domains that stopped or vanished
    }
    cv_.notify_all();

    std::unique_lock lock(mu_);
    auto done = [&] {
      return std::none_of(round.begin(), round.end(),
                          [&](const std::string& u) { return busy_.contains(u); });
    };
    while (!done() && !ctx.stop.stop_requested() &&
           ctx.clock.MonotonicNs() < ctx.deadline_mono_ns) {
      cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
    GuestStatusBatch batch;
    for (const auto& uuid : round) {
      auto it = guests_.find(uuid);
      if (it != guests_.end() && it->second.last) batch.guests.push_back(*it->second.last);
    }
    out.guest_status = std::move(batch);
    return Status::Ok();
  } catch (const std::exception& e) {
    return Error{std::string("guest_status: unexpected exception: ") + e.what()};
  } catch (...) {
    return Error{"guest_status: unexpected exception"};
  }
}

std::unique_ptr<Collector> MakeGuestStatusCollector(const Config& config, const Clock& clock) {
  if (!config.Collector(CollectorId::kGuestStatus).enabled) return nullptr;
  return std::make_unique<GuestStatusCollector>(
      std::make_shared<LibvirtGuestAgent>(config.libvirt.uri), OptionsFromConfig(config), clock);
}

}  // namespace vmtime::guest_status
