// See agent_scheduler.h.
#include "exporter/collectors/libvirt/agent_scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include "exporter/collectors/libvirt/clock_bracket.h"

namespace vmtime::libvirt {

namespace {

const char* StateText(DomainState s) {
  switch (s) {
    case DomainState::kRunning:
      return "running";
    case DomainState::kBlocked:
      return "blocked";
    case DomainState::kPaused:
      return "paused";
    case DomainState::kShutdown:
      return "shutting down";
    case DomainState::kShutoff:
      return "shut off";
    case DomainState::kCrashed:
      return "crashed";
    case DomainState::kSuspended:
      return "suspended";
    case DomainState::kUnknown:
      break;
  }
  return "in an unknown state";
}

// Running and blocked (idle vCPU) domains have a live guest clock.
bool Samplable(DomainState s) { return s == DomainState::kRunning || s == DomainState::kBlocked; }

constexpr char kDeadlineError[] = "guest agent call exceeded deadline";

struct Entry {
  std::string uuid;
  std::string name;
  DomainState state = DomainState::kUnknown;
  bool agent_up = false;
  bool attempted = false;  // an attempt finished (or the domain is not samplable)
  std::string agent_error;
  int failures = 0;
  std::optional<scoring::ClockSample> sample;  // newest since last handed out
  double rtt_s = 0;
  int64_t last_attempt_mono_ns = 0;
  int64_t next_retry_mono_ns = 0;  // earliest next attempt while failing
  bool queued = false;
  bool in_flight = false;
  bool stuck = false;               // in flight past its deadline
  bool wake_after = false;          // call the wakeup callback after the next sample
  bool retrigger = false;           // an event arrived while in flight
  uint64_t timeout_generation = 0;  // connection generation the agent timeout was set on
  uint64_t seen_round = 0;
};

struct Slot {
  std::thread thread;
  bool busy = false;
  bool abandoned = false;
  bool exited = false;
  std::string uuid;
  int64_t call_start_mono_ns = 0;
};

struct Outcome {
  bool ok = false;
  bool abandoned = false;  // the watchdog gave up on this call; result is void
  Error error;
  Bracket best;
};

Outcome Abandoned() {
  Outcome o;
  o.abandoned = true;
  return o;
}

}  // namespace

struct AgentScheduler::Shared {
  Shared(const LibvirtConfig& c, const Clock& clk, std::shared_ptr<LibvirtApi> a)
      : config(c), clock(clk), api(std::move(a)) {}

  const LibvirtConfig config;
  const Clock& clock;
  const std::shared_ptr<LibvirtApi> api;

  mutable std::mutex mu;
  std::condition_variable work_cv;  // queue non-empty or shutdown
  std::condition_variable idle_cv;  // a worker finished a job or exited
  std::condition_variable tick_cv;  // shutdown for the tick thread
  std::unordered_map<std::string, Entry> domains;
  std::vector<std::string> listed;  // uuids of the last list, in order
  std::deque<std::string> queue;
  std::list<std::shared_ptr<Slot>> slots;
  int stuck = 0;
  uint64_t round = 0;
  int64_t last_round_mono_ns = 0;
  int64_t prev_round_gap_ns = 0;
  std::function<void()> wake;
  std::atomic<bool> shutdown{false};
  bool timeout_warning_logged = false;

  int LiveWorkersLocked() const {
    int n = 0;
    for (const auto& s : slots) n += (!s->abandoned && !s->exited) ? 1 : 0;
    return n;
  }

  void Enqueue(Entry& e, bool urgent) {
    if (e.queued) {
      if (urgent) {  // move it to the front
        auto it = std::find(queue.begin(), queue.end(), e.uuid);
        if (it != queue.end()) queue.erase(it);
        queue.push_front(e.uuid);
      }
      return;
    }
    e.queued = true;
    if (urgent) {
      queue.push_front(e.uuid);
    } else {
      queue.push_back(e.uuid);
    }
    work_cv.notify_one();
  }

  // Starts workers until `concurrency` are live, bounded by the stuck budget.
  void EnsureWorkersLocked(const std::shared_ptr<Shared>& self) {
    const int concurrency = std::max(1, config.concurrency);
    const int max_stuck = std::max(0, config.max_stuck_calls);
    while (!shutdown && LiveWorkersLocked() < concurrency &&
           LiveWorkersLocked() + stuck < concurrency + max_stuck) {
      auto slot = std::make_shared<Slot>();
      slot->thread = std::thread([self, slot] { WorkerLoop(self, slot); });
      slots.push_back(std::move(slot));
    }
  }

  void RecordFailure(Entry& e, const std::string& message, int64_t now) {
    if (e.agent_up || e.failures == 0) {
      spdlog::warn("libvirt: domain '{}' ({}): guest agent down: {}", e.name, e.uuid, message);
    } else {
      spdlog::debug("libvirt: domain '{}': guest agent still down ({} failures): {}", e.name,
                    e.failures + 1, message);
    }
    e.agent_up = false;
    e.attempted = true;
    e.agent_error = message;
    e.failures++;
    e.next_retry_mono_ns = now + RetryDelayNs(config, e.failures);
  }

  static Outcome RunSample(const std::shared_ptr<Shared>& self, const std::shared_ptr<Slot>& slot,
                           const std::string& uuid, const std::string& name, bool set_timeout);
  static void WorkerLoop(std::shared_ptr<Shared> self, std::shared_ptr<Slot> slot);
  static void Tick(const std::shared_ptr<Shared>& self);
};

int64_t RetryDelayNs(const LibvirtConfig& config, int failures) {
  const double base = std::max(0.0, config.agent_retry_interval_s);
  if (failures < std::max(1, config.agent_max_attempts)) return SecondsToNs(base);
  const int extra = failures - std::max(1, config.agent_max_attempts) + 1;  // >= 1
  const double delay = base * std::ldexp(1.0, std::min(extra, 40));
  return SecondsToNs(std::min(delay, std::max(base, config.agent_backoff_max_s)));
}

// Runs on a worker without the lock held, except around the bookkeeping.
Outcome AgentScheduler::Shared::RunSample(const std::shared_ptr<Shared>& self,
                                          const std::shared_ptr<Slot>& slot,
                                          const std::string& uuid, const std::string& name,
                                          bool set_timeout) {
  Outcome out;
  auto begin_call = [&]() -> bool {
    std::lock_guard lock(self->mu);
    if (slot->abandoned || self->shutdown) return false;
    slot->call_start_mono_ns = self->clock.MonotonicNs();
    return true;
  };
  auto still_owned = [&]() -> bool {
    std::lock_guard lock(self->mu);
    return !slot->abandoned && !self->shutdown;
  };

  if (set_timeout) {
    if (!begin_call()) return Abandoned();
    const int seconds = static_cast<int>(std::ceil(self->config.agent_timeout_s));
    Status st = self->api->SetAgentTimeout(uuid, name, seconds);
    if (!still_owned()) return Abandoned();
    if (!st.ok()) {
      std::lock_guard lock(self->mu);
      if (!self->timeout_warning_logged) {
        self->timeout_warning_logged = true;
        spdlog::warn(
            "libvirt: could not set the guest agent response timeout ({}); relying on the "
            "exporter-side call deadline only (further failures logged at debug level)",
            st.message());
      } else {
        spdlog::debug("libvirt: {}", st.message());
      }
    }
  }

  const int k = std::max(1, self->config.samples);
  std::vector<Bracket> brackets;
  brackets.reserve(k);
  for (int i = 0; i < k; ++i) {
    if (!begin_call()) return Abandoned();
    Bracket b;
    b.t0_mono_ns = self->clock.MonotonicNs();
    b.t0_real_ns = self->clock.RealtimeNs();
    Result<GuestTime> t = self->api->GetTime(uuid, name);
    // After a long block the owner may be gone: check before touching the clock.
    if (self->shutdown) return Abandoned();
    b.t1_real_ns = self->clock.RealtimeNs();
    b.t1_mono_ns = self->clock.MonotonicNs();
    if (!still_owned()) return Abandoned();
    if (!t.ok()) {
      out.error = t.error();
      return out;
    }
    b.guest_seconds = t->seconds;
    b.guest_nanoseconds = t->nanoseconds;
    brackets.push_back(b);
  }
  out.ok = true;
  out.best = brackets[*BestBracket(brackets)];
  return out;
}

void AgentScheduler::Shared::WorkerLoop(std::shared_ptr<Shared> self, std::shared_ptr<Slot> slot) {
  std::unique_lock lock(self->mu);
  while (true) {
    self->work_cv.wait(lock, [&] { return self->shutdown || !self->queue.empty(); });
    if (self->shutdown) break;
    std::string uuid = std::move(self->queue.front());
    self->queue.pop_front();
    auto it = self->domains.find(uuid);
    if (it == self->domains.end()) continue;
    Entry& e = it->second;
    e.queued = false;
    if (e.in_flight || !Samplable(e.state)) {
      e.wake_after = false;
      continue;
    }
    e.in_flight = true;
    const bool wake_after = e.wake_after;
    e.wake_after = false;
    const uint64_t generation = self->api->ConnectionGeneration();
    const bool set_timeout = self->config.set_agent_timeout && self->config.agent_timeout_s > 0 &&
                             e.timeout_generation != generation;
    const std::string name = e.name;
    e.last_attempt_mono_ns = self->clock.MonotonicNs();
    slot->busy = true;
    slot->uuid = uuid;
    lock.unlock();

    Outcome outcome = RunSample(self, slot, uuid, name, set_timeout);

    lock.lock();
    if (self->shutdown && !slot->abandoned) break;
    if (slot->abandoned) {
      // The watchdog already reported this call as failed and replaced this
      // thread. Free the domain for scheduling again and leave.
      self->stuck--;
      auto jt = self->domains.find(uuid);
      if (jt != self->domains.end() && !self->shutdown) {
        Entry& d = jt->second;
        d.in_flight = false;
        d.stuck = false;
        const int64_t now = self->clock.MonotonicNs();
        spdlog::info("libvirt: domain '{}': stuck guest agent call returned after {:.1f} s", d.name,
                     NsToSeconds(now - d.last_attempt_mono_ns));
        d.next_retry_mono_ns = std::max(d.next_retry_mono_ns, now);
        if (d.retrigger) {
          d.retrigger = false;
          d.wake_after = true;
          self->Enqueue(d, /*urgent=*/true);
        }
      }
      slot->exited = true;
      if (!self->shutdown) self->EnsureWorkersLocked(self);
      self->idle_cv.notify_all();
      return;  // detached by the watchdog
    }
    slot->busy = false;
    auto jt = self->domains.find(uuid);
    bool wake = false;
    if (jt != self->domains.end()) {
      Entry& d = jt->second;
      d.in_flight = false;
      const int64_t now = self->clock.MonotonicNs();
      if (set_timeout) d.timeout_generation = generation;
      if (outcome.ok) {
        if (!d.agent_up) {
          spdlog::info("libvirt: domain '{}' ({}): guest agent up", d.name, d.uuid);
        }
        d.agent_up = true;
        d.attempted = true;
        d.agent_error.clear();
        d.failures = 0;
        d.next_retry_mono_ns = 0;
        d.sample = SampleFromBracket(outcome.best);
        d.rtt_s = NsToSeconds(outcome.best.RoundTripNs());
      } else {
        self->RecordFailure(d, outcome.error.message, now);
      }
      wake = wake_after;
      if (d.retrigger) {
        d.retrigger = false;
        d.wake_after = true;
        self->Enqueue(d, /*urgent=*/true);
      }
    }
    std::function<void()> wake_fn = wake ? self->wake : nullptr;
    self->idle_cv.notify_all();
    if (wake_fn) {
      lock.unlock();
      wake_fn();
      lock.lock();
    }
  }
  slot->exited = true;
  slot->busy = false;
  self->idle_cv.notify_all();
}

void AgentScheduler::Shared::Tick(const std::shared_ptr<Shared>& self) {
  std::lock_guard lock(self->mu);
  if (self->shutdown) return;
  const int64_t now = self->clock.MonotonicNs();
  const int64_t deadline_ns = SecondsToNs(std::max(0.001, self->config.call_deadline_s));
  for (auto& slot : self->slots) {
    if (!slot->busy || slot->abandoned || slot->exited) continue;
    if (now - slot->call_start_mono_ns <= deadline_ns) continue;
    slot->abandoned = true;
    slot->thread.detach();
    self->stuck++;
    auto it = self->domains.find(slot->uuid);
    if (it != self->domains.end()) {
      Entry& e = it->second;
      e.stuck = true;  // stays in_flight until the call returns
      self->RecordFailure(e, kDeadlineError, now);
      spdlog::warn(
          "libvirt: domain '{}' ({}): guest agent call exceeded the {:.1f} s deadline; its "
          "worker is left blocked in libvirt ({} stuck call(s) now) and the domain is not "
          "polled again until the call returns",
          e.name, e.uuid, self->config.call_deadline_s, self->stuck);
    }
    if (self->stuck >= std::max(0, self->config.max_stuck_calls)) {
      spdlog::error(
          "libvirt: {} guest agent calls are stuck (max_stuck_calls {}): no replacement "
          "workers are started until some return",
          self->stuck, self->config.max_stuck_calls);
    }
  }
  // Forget threads that have finished (joined) or were detached.
  for (auto it = self->slots.begin(); it != self->slots.end();) {
    Slot& s = **it;
    if (s.abandoned) {
      it = self->slots.erase(it);  // detached; co-owns `self` until it returns
    } else if (s.exited) {
      if (s.thread.joinable()) s.thread.join();
      it = self->slots.erase(it);
    } else {
      ++it;
    }
  }
  self->EnsureWorkersLocked(self);
  // Retry timer: failing agents whose next attempt is due.
  for (auto& [uuid, e] : self->domains) {
    if (e.failures > 0 && !e.in_flight && !e.queued && Samplable(e.state) &&
        e.seen_round == self->round && now >= e.next_retry_mono_ns) {
      self->Enqueue(e, /*urgent=*/false);
    }
  }
}

AgentScheduler::AgentScheduler(const LibvirtConfig& config, const Clock& clock,
                               std::shared_ptr<LibvirtApi> api, SchedulerOptions options)
    : shared_(std::make_shared<Shared>(config, clock, std::move(api))) {
  {
    std::lock_guard lock(shared_->mu);
    shared_->EnsureWorkersLocked(shared_);
  }
  if (options.background_tick) {
    auto self = shared_;
    const auto period = options.tick_interval;
    tick_thread_ = std::thread([self, period] {
      std::unique_lock lock(self->mu);
      while (!self->shutdown) {
        self->tick_cv.wait_for(lock, period, [&] { return self->shutdown.load(); });
        if (self->shutdown) break;
        lock.unlock();
        Shared::Tick(self);
        lock.lock();
      }
    });
  }
}

AgentScheduler::~AgentScheduler() {
  std::list<std::shared_ptr<Slot>> slots;
  {
    std::lock_guard lock(shared_->mu);
    shared_->shutdown = true;
    shared_->wake = nullptr;
    shared_->work_cv.notify_all();
    shared_->tick_cv.notify_all();
  }
  if (tick_thread_.joinable()) tick_thread_.join();
  std::unique_lock lock(shared_->mu);
  // Workers inside a guest call finish it first; wait a bounded time, then
  // detach whoever is still blocked in libvirt.
  const auto limit = std::chrono::steady_clock::now() +
                     std::chrono::milliseconds(static_cast<int64_t>(
                         std::clamp(shared_->config.call_deadline_s, 0.1, 10.0) * 1000));
  shared_->idle_cv.wait_until(lock, limit, [&] {
    for (const auto& s : shared_->slots) {
      if (!s->abandoned && !s->exited) return false;
    }
    return true;
  });
  slots.swap(shared_->slots);
  lock.unlock();
  for (auto& s : slots) {
    if (!s->thread.joinable()) continue;
    if (s->exited) {
      s->thread.join();
    } else {
      s->thread.detach();
    }
  }
}

std::vector<DomainObservation> AgentScheduler::Update(const std::vector<DomainInfo>& domains) {
  std::lock_guard lock(shared_->mu);
  Shared& sh = *shared_;
  const int64_t now = sh.clock.MonotonicNs();
  // A full round queues every healthy running domain. Event-triggered
  // Collects that follow a round closely do not start another one.
  bool full_round = true;
  if (sh.round > 0 && sh.prev_round_gap_ns > 0) {
    full_round = now - sh.last_round_mono_ns >= sh.prev_round_gap_ns / 2;
  }
  if (full_round) {
    if (sh.round > 0) sh.prev_round_gap_ns = now - sh.last_round_mono_ns;
    sh.last_round_mono_ns = now;
  }
  const uint64_t round = ++sh.round;
  sh.listed.clear();
  sh.listed.reserve(domains.size());
  for (const DomainInfo& d : domains) {
    auto [it, inserted] = sh.domains.try_emplace(d.uuid);
    Entry& e = it->second;
    if (inserted) e.uuid = d.uuid;
    if (e.seen_round == round) continue;  // listed twice: ignore the repeat
    const bool was_samplable = Samplable(e.state);
    e.name = d.name;
    e.state = d.state;
    e.seen_round = round;
    sh.listed.push_back(d.uuid);
    if (!Samplable(d.state)) {
      if (!e.in_flight) {
        e.agent_up = false;
        e.attempted = true;
        e.agent_error = std::string("domain is ") + StateText(d.state) + " (not sampled)";
        e.failures = 0;
        e.next_retry_mono_ns = 0;
      }
      continue;
    }
    if (!was_samplable && !inserted) e.timeout_generation = 0;  // restarted: re-apply timeout
    if (e.in_flight || e.queued) continue;
    if (e.failures == 0 ? full_round : now >= e.next_retry_mono_ns) sh.Enqueue(e, false);
  }
  // Forget vanished domains (kept while a call is still in flight).
  for (auto it = sh.domains.begin(); it != sh.domains.end();) {
    if (it->second.seen_round != round && !it->second.in_flight) {
      it = sh.domains.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<DomainObservation> out;
  out.reserve(sh.listed.size());
  for (const std::string& uuid : sh.listed) {
    Entry& e = sh.domains.at(uuid);
    DomainObservation o;
    o.name = e.name;
    o.uuid = e.uuid;
    o.state = e.state;
    o.agent_up = e.agent_up;
    o.agent_attempted = e.attempted;
    o.agent_error = e.agent_error;
    o.agent_failures = e.failures;
    o.sample = std::exchange(e.sample, std::nullopt);
    o.rtt_s = e.rtt_s;
    o.last_attempt_mono_ns = e.last_attempt_mono_ns;
    out.push_back(std::move(o));
  }
  return out;
}

std::vector<DomainObservation> AgentScheduler::Current() {
  std::lock_guard lock(shared_->mu);
  std::vector<DomainObservation> out;
  out.reserve(shared_->listed.size());
  for (const std::string& uuid : shared_->listed) {
    auto it = shared_->domains.find(uuid);
    if (it == shared_->domains.end()) continue;
    Entry& e = it->second;
    DomainObservation o;
    o.name = e.name;
    o.uuid = e.uuid;
    o.state = e.state;
    o.agent_up = e.agent_up;
    o.agent_attempted = e.attempted;
    o.agent_error = e.agent_error;
    o.agent_failures = e.failures;
    o.sample = std::exchange(e.sample, std::nullopt);
    o.rtt_s = e.rtt_s;
    o.last_attempt_mono_ns = e.last_attempt_mono_ns;
    out.push_back(std::move(o));
  }
  return out;
}

void AgentScheduler::Tick() { Shared::Tick(shared_); }

void AgentScheduler::OnEvent(const std::string& uuid, const std::string& name, DomainEvent event) {
  std::lock_guard lock(shared_->mu);
  Shared& sh = *shared_;
  if (sh.shutdown) return;
  spdlog::debug("libvirt: event {} for domain '{}' ({})", DomainEventName(event), name, uuid);
  auto [it, inserted] = sh.domains.try_emplace(uuid);
  Entry& e = it->second;
  if (inserted) {
    e.uuid = uuid;
    e.name = name;
    e.seen_round = sh.round;  // schedulable until the next list says otherwise
  }
  switch (event) {
    case DomainEvent::kSuspended:
      e.state = DomainState::kPaused;
      return;
    case DomainEvent::kStopped:
      e.state = DomainState::kShutoff;
      return;
    case DomainEvent::kAgentDisconnected:
      return;
    case DomainEvent::kStarted:
      e.timeout_generation = 0;  // a new QEMU process: the agent timeout is gone
      [[fallthrough]];
    case DomainEvent::kAgentConnected:
      e.failures = 0;
      e.next_retry_mono_ns = 0;
      [[fallthrough]];
    case DomainEvent::kResumed:
      e.state = DomainState::kRunning;
      break;
  }
  if (e.in_flight) {
    e.retrigger = true;  // poll again as soon as the current call returns
    return;
  }
  e.wake_after = true;
  sh.Enqueue(e, /*urgent=*/true);
}

void AgentScheduler::SetWakeup(std::function<void()> wake) {
  std::lock_guard lock(shared_->mu);
  shared_->wake = std::move(wake);
}

bool AgentScheduler::WaitIdle(std::chrono::milliseconds timeout, int allow_busy) {
  std::unique_lock lock(shared_->mu);
  return shared_->idle_cv.wait_for(lock, timeout, [&] {
    if (!shared_->queue.empty()) return false;
    int busy = 0;
    for (const auto& s : shared_->slots) busy += (s->busy && !s->abandoned) ? 1 : 0;
    return busy <= allow_busy;
  });
}

int AgentScheduler::StuckCalls() const {
  std::lock_guard lock(shared_->mu);
  return shared_->stuck;
}

int AgentScheduler::LiveWorkers() const {
  std::lock_guard lock(shared_->mu);
  return shared_->LiveWorkersLocked();
}

}  // namespace vmtime::libvirt
