// GuestStatusCollector: scheduling of per-guest probes (see
// guest_status_collector.h).
#include "exporter/collectors/guest_status/guest_status_collector.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <thread>

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

int64_t ProbeDeadlineNs(const ProbeOptions& options) {
  const int64_t calls = static_cast<int64_t>(options.commands.size()) + 2;
  return calls * SecondsToNs(std::max(0.0, options.exec_timeout_s) + 1.0) + 30 * kNsPerSecond;
}

namespace {

// Options with an outstanding-exec table of its own when none is shared.
CollectorOptions WithTables(CollectorOptions o) {
  if (!o.outstanding) o.outstanding = std::make_shared<OutstandingExecs>();
  return o;
}

}  // namespace

std::shared_ptr<StuckCounter> ProcessStuckProbes() {
  static const auto counter = std::make_shared<StuckCounter>();
  return counter;
}

GuestStatusCollector::GuestStatusCollector(std::shared_ptr<GuestAgent> agent,
                                           CollectorOptions options, const Clock& clock,
                                           Sleeper sleep)
    : agent_(std::move(agent)),
      options_(WithTables(std::move(options))),
      clock_(clock),
      sleep_(std::move(sleep)) {
  if (!sleep_) {
    sleep_ = [](int64_t ns) { std::this_thread::sleep_for(std::chrono::nanoseconds(ns)); };
  }
  WorkerPoolOptions o;
  o.name = "guest_status probes";
  o.workers = std::max(1, options_.concurrency);
  o.max_stuck = o.workers;
  o.shared_stuck = options_.stuck;
  o.watchdog_period = std::chrono::milliseconds(500);
  pool_ = std::make_unique<WorkerPool>(clock_, std::move(o));
}

GuestStatusCollector::~GuestStatusCollector() {
  stop_.request_stop();  // probes stop between guest-exec-status polls
  pool_->Shutdown(WorkerPool::kDefaultGrace);
}

namespace {

// ProbeGuest with an exception boundary (nothing below throws by design).
GuestStatusObservation SafeProbe(GuestAgent& agent, const std::string& uuid,
                                 const ProbeOptions& options, ProbeMemory& memory,
                                 const Clock& clock, const Sleeper& sleep, std::stop_token stop) {
  std::string what;
  try {
    return ProbeGuest(agent, uuid, options, memory, clock, sleep, std::move(stop));
  } catch (const std::exception& e) {
    what = std::string(": ") + e.what();
  } catch (...) {
  }
  GuestStatusObservation obs;
  obs.uuid = uuid;
  obs.daemon = "none";
  obs.error = "exec_failed: unexpected exception" + what;
  obs.status.measured_mono_ns = clock.MonotonicNs();
  return obs;
}

// SafeProbe with the process-wide view of the guest: nothing starts while
// another instance's probe runs in it, the pid left outstanding by an
// earlier probe (of any instance) is reaped first, and what this probe
// leaves outstanding is recorded there (a probe abandoned in libvirt does
// so when it returns, whether or not its collector still exists).
GuestStatusObservation ProbeWithOutstanding(OutstandingExecs& outstanding, GuestAgent& agent,
                                            const std::string& uuid, const ProbeOptions& options,
                                            ProbeMemory& memory, const Clock& clock,
                                            const Sleeper& sleep, std::stop_token stop) {
  if (!outstanding.BeginProbe(uuid)) {
    GuestStatusObservation obs;
    obs.uuid = uuid;
    obs.daemon = "none";
    obs.error =
        "timeout: a probe started before the last reload is still running in this guest; "
        "not starting another";
    obs.status.measured_mono_ns = clock.MonotonicNs();
    return obs;
  }
  const auto before = outstanding.Get(uuid, clock.MonotonicNs());
  memory.stuck_pid.reset();
  memory.stuck_command.reset();
  if (before) {
    memory.stuck_pid = before->pid;
    memory.stuck_command = before->command;
  }
  GuestStatusObservation obs =
      SafeProbe(agent, uuid, options, memory, clock, sleep, std::move(stop));
  if (memory.stuck_pid) {
    outstanding.Remember(uuid, *memory.stuck_pid,
                         memory.stuck_command.value_or(GuestCommandId::kChronycTracking),
                         clock.MonotonicNs());
  } else if (before) {
    outstanding.Forget(uuid, before->pid);
  }
  outstanding.EndProbe(uuid);
  return obs;
}

}  // namespace

// One probe on a pool worker: the collector is touched only under a lease;
// the probe itself uses copies and co-owned state.
void GuestStatusCollector::Probe(JobContext& ctx, const std::string& uuid) {
  ProbeMemory memory;
  std::shared_ptr<GuestAgent> agent;
  std::shared_ptr<OutstandingExecs> outstanding;
  ProbeOptions probe;
  Sleeper sleep;
  std::stop_token stop;
  const Clock* clock = nullptr;
  {
    auto lease = ctx.Enter();
    if (!lease) return;
    std::lock_guard lock(mu_);
    auto it = guests_.find(uuid);
    if (it == guests_.end()) {  // stopped running while it waited: skip
      busy_.erase(uuid);
      cv_.notify_all();
      return;
    }
    memory = it->second.memory;
    agent = agent_;
    outstanding = options_.outstanding;
    probe = options_.probe;
    sleep = sleep_;
    stop = stop_.get_token();
    clock = &clock_;
  }
  GuestStatusObservation obs =
      ProbeWithOutstanding(*outstanding, *agent, uuid, probe, memory, *clock, sleep, stop);
  ctx.Disarm();  // a late probe is still the newest news: it is kept
  auto lease = ctx.Enter();
  if (!lease) return;
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

void GuestStatusCollector::OnAbandon(const std::string& uuid) {
  std::lock_guard lock(mu_);
  auto it = guests_.find(uuid);
  if (it == guests_.end()) return;
  const double limit_s = NsToSeconds(ProbeDeadlineNs(options_.probe));
  spdlog::warn(
      "guest_status: domain '{}' ({}): probe still blocked in libvirt after {:.0f} s; left "
      "behind, the guest is not probed again until it returns",
      it->second.name, uuid, limit_s);
  GuestStatusObservation obs;
  obs.uuid = uuid;
  obs.daemon = "none";
  obs.error = fmt::format("timeout: probe still blocked in libvirt after {:.0f} s", limit_s);
  obs.status.measured_mono_ns = clock_.MonotonicNs();
  it->second.last = std::move(obs);
  // Stays busy: no new probe for this guest until the blocked one returns.
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
        if (busy_.insert(d.uuid).second) {
          JobOptions o;
          o.key = d.uuid;
          o.timeout_ns = ProbeDeadlineNs(options_.probe);
          o.on_abandon = [this, uuid = d.uuid] { OnAbandon(uuid); };
          const auto submitted = pool_->Submit(
              [this, uuid = d.uuid](JobContext& ctx) { Probe(ctx, uuid); }, std::move(o));
          if (submitted == WorkerPool::Submitted::kRejected) busy_.erase(d.uuid);
        }
      }
      guests_ = std::move(next);  // forgets domains that stopped or vanished
    }

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
  CollectorOptions options = OptionsFromConfig(config);
  options.outstanding = OutstandingExecs::Process();
  options.stuck = ProcessStuckProbes();
  return std::make_unique<GuestStatusCollector>(
      std::make_shared<LibvirtGuestAgent>(libvirt::ConnectionPolicy::FromConfig(config.libvirt),
                                          clock),
      std::move(options), clock);
}

}  // namespace vmtime::guest_status
