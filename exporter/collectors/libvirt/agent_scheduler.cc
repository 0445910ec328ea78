// See agent_scheduler.h.
#include "exporter/collectors/libvirt/agent_scheduler.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "exporter/collectors/libvirt/clock_bracket.h"
#include "exporter/core/worker_pool.h"

namespace vmtime::libvirt {

namespace {

// Running and blocked (idle vCPU) domains have a live guest clock.
bool Samplable(DomainState s) { return s == DomainState::kRunning || s == DomainState::kBlocked; }

constexpr char kDeadlineError[] = "guest agent call exceeded deadline";

struct Entry {
  SharedString uuid;  // shared with the list's, the observations' and the store's copies
  SharedString name;
  DomainState state = DomainState::kUnknown;
  bool agent_up = false;
  bool attempted = false;  // an attempt finished since the domain last started running
  int failures = 0;
  SharedString agent_error;
  // Newest sample not yet handed out. On the heap only from the sample to
  // the next hand-out (a harvest, at most a few seconds): a ClockSample in
  // every entry would cost 48 bytes per domain for nothing most of the time.
  std::unique_ptr<scoring::ClockSample> sample;
  double rtt_s = 0;
  int64_t last_attempt_mono_ns = 0;
  int64_t next_retry_mono_ns = 0;  // earliest next attempt while failing
  bool queued = false;             // in the backlog or the pool's queue, not started yet
  uint32_t queue_ticket = 0;       // the backlog slot that is current (older ones are void)
  bool in_flight = false;
  bool stuck = false;               // in flight past its deadline
  bool retrigger = false;           // an event arrived while in flight
  bool dirty = false;               // has news not handed out yet
  uint64_t timeout_generation = 0;  // connection generation the agent timeout was set on
  uint64_t seen_round = 0;
  // Unconsumed interruptions (host monotonic when seen; 0: none): the first
  // sample taken after the earliest one is marked after_interruption.
  int64_t interruption_first_mono_ns = 0;
  int64_t interruption_last_mono_ns = 0;
};

// What one sampling job needs, copied under the lock, so that its blocking
// part touches nothing of the scheduler (which may be gone when it returns).
struct Plan {
  std::shared_ptr<LibvirtApi> api;
  std::string uuid;
  std::string name;
  bool set_timeout = false;
  uint64_t generation = 0;
  int samples = 1;
  int timeout_s = 0;
  int64_t call_deadline_ns = 0;
};

struct Outcome {
  bool ok = false;
  bool abandoned = false;  // the watchdog gave up on this call; result is void
  Error error;
  Bracket best;
  std::optional<Status> timeout_status;  // of SetAgentTimeout, when called
};

Outcome Abandoned() {
  Outcome o;
  o.abandoned = true;
  return o;
}

// K bracketed calls, each under its own deadline. Runs without any lock and
// touches only the plan (co-owned api), the job context and the clock.
Outcome TakeSample(JobContext& ctx, const Clock& clock, const Plan& plan) {
  Outcome out;
  auto arm = [&] { return ctx.ArmDeadline(clock.MonotonicNs() + plan.call_deadline_ns); };
  if (plan.set_timeout) {
    if (!arm()) return Abandoned();
    out.timeout_status = plan.api->SetAgentTimeout(plan.uuid, plan.name, plan.timeout_s);
  }
  std::vector<Bracket> brackets;
  brackets.reserve(plan.samples);
  for (int i = 0; i < plan.samples; ++i) {
    if (!arm()) return Abandoned();
    Bracket b;
    b.t0_mono_ns = clock.MonotonicNs();
    b.t0_real_ns = clock.RealtimeNs();
    Result<GuestTime> t = plan.api->GetTime(plan.uuid, plan.name);
    b.t1_real_ns = clock.RealtimeNs();
    b.t1_mono_ns = clock.MonotonicNs();
    if (ctx.abandoned()) return Abandoned();
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

// One text per state, shared by every domain in it.
const SharedString& NotSampledError(DomainState s) {
  static const auto* const kTexts = [] {
    auto* texts = new std::array<SharedString, static_cast<size_t>(DomainState::kSuspended) + 1>;
    for (size_t i = 0; i < texts->size(); ++i) {
      (*texts)[i] = std::string("domain is ") + DomainStateName(static_cast<DomainState>(i)) +
                    " (not sampled)";
    }
    return texts;
  }();
  const auto i = static_cast<size_t>(s);
  return i < kTexts->size() ? (*kTexts)[i] : (*kTexts)[0];
}

}  // namespace

struct AgentScheduler::Impl {
  Impl(const LibvirtConfig& c, const Clock& clk, std::shared_ptr<LibvirtApi> a)
      : config(c), clock(clk), api(std::move(a)) {}

  const LibvirtConfig config;
  const Clock& clock;
  const std::shared_ptr<LibvirtApi> api;
  std::unique_ptr<WorkerPool> pool;  // set once in the constructor

  mutable std::mutex mu;  // everything below; taken before the pool's lock
  std::unordered_map<SharedString, Entry, SharedStringHash, SharedStringEqual> domains;
  // The last list's entries, in order. Entries leave `domains` only in
  // Update, which rebuilds this first, and never one listed in it.
  std::vector<Entry*> listed;
  std::vector<SharedString> dirty;  // uuids with news, each once
  // Domains waiting for a worker, in order. The pool's own queue is kept at
  // most `concurrency` jobs deep and refilled from here as jobs start, so
  // a round over 10,000 domains costs 16 bytes per waiting domain here
  // instead of a queued job (closures, key, list and map nodes, uuid
  // copies: 400-500 bytes) each. A slot whose ticket is not its entry's current one is void
  // (the entry was queued again urgently). Entries leave `domains` only in
  // Update, which drops their slots first.
  struct Slot {
    Entry* entry;
    uint32_t ticket;
  };
  std::deque<Slot> backlog;
  int pool_queued = 0;  // jobs submitted to the pool and not started yet
  uint64_t round = 0;
  int64_t last_round_mono_ns = 0;
  // The gaps between the last three full rounds (0: not seen yet), newest
  // last; their median is the cadence a collect is measured against.
  std::array<int64_t, 3> round_gaps_ns{};
  std::function<void()> wake;
  bool wake_armed = true;  // the next news calls `wake`
  bool shutdown = false;
  bool timeout_warning_logged = false;

  void Enqueue(Entry& e, bool urgent);
  // Submits one job for `e` to the pool (urgent: at the front).
  void SubmitLocked(Entry& e, bool urgent);
  // Moves backlog slots to the pool until its queue is `concurrency` deep.
  void DispatchLocked();
  void RunJob(JobContext& ctx, const SharedString& uuid);
  std::optional<Plan> StartLocked(const SharedString& uuid);
  std::function<void()> FinishLocked(const Plan& plan, const Outcome& out);
  void LateReturnLocked(const Plan& plan);
  void OnAbandon(const SharedString& uuid);
  void RetryTimer();
  void RecordFailure(Entry& e, const std::string& message, int64_t now);
  void LogTimeoutStatus(const Status& st);
  DomainObservation Observe(Entry& e);
  void ClearDirtyLocked();

  // Records that `e` has news; returns the wakeup to call (outside the
  // lock) when it is the first news since the last hand-out.
  std::function<void()> MarkDirtyLocked(Entry& e) {
    if (!e.dirty) {
      e.dirty = true;
      dirty.push_back(e.uuid);
    }
    if (!wake_armed || !wake || shutdown) return nullptr;
    wake_armed = false;
    return wake;
  }

  void MarkInterrupted(Entry& e, int64_t now) {
    if (e.interruption_first_mono_ns == 0) e.interruption_first_mono_ns = now;
    e.interruption_last_mono_ns = now;
  }

  // Whether the sample whose bracket ended at `t1_mono_ns` is the first
  // after an interruption; consumes the interruptions seen before t1.
  static bool ConsumeInterruption(Entry& e, int64_t t1_mono_ns) {
    if (e.interruption_first_mono_ns == 0 || e.interruption_first_mono_ns > t1_mono_ns) {
      return false;  // none, or only after this sample was taken: marks the next one
    }
    if (e.interruption_last_mono_ns > t1_mono_ns) {
      e.interruption_first_mono_ns = e.interruption_last_mono_ns;
    } else {
      e.interruption_first_mono_ns = e.interruption_last_mono_ns = 0;
    }
    return true;
  }

  // Not running: not sampled, and neither up nor down until it runs and an
  // attempt finishes.
  static void SetNotSampled(Entry& e) {
    e.agent_up = false;
    e.attempted = false;
    e.agent_error = NotSampledError(e.state);
    e.failures = 0;
    e.next_retry_mono_ns = 0;
  }

  // Running again (after a pause, a stop, or first seen): not attempted yet.
  static void SetRunningAgain(Entry& e) {
    e.agent_up = false;
    e.attempted = false;
    e.agent_error.clear();
  }
};

int64_t RetryDelayNs(const LibvirtConfig& config, int failures) {
  const double base = std::max(0.0, config.agent_retry_interval_s);
  if (failures < std::max(1, config.agent_max_attempts)) return SecondsToNs(base);
  const int extra = failures - std::max(1, config.agent_max_attempts) + 1;  // >= 1
  const double delay = base * std::ldexp(1.0, std::min(extra, 40));
  return SecondsToNs(std::min(delay, std::max(base, config.agent_backoff_max_s)));
}

void AgentScheduler::Impl::Enqueue(Entry& e, bool urgent) {
  if (e.queued && !urgent) return;
  if (shutdown) return;
  e.queued = true;
  ++e.queue_ticket;  // voids a backlog slot it may hold
  if (urgent) {
    SubmitLocked(e, true);  // events go ahead of everything queued
    return;
  }
  backlog.push_back(Slot{&e, e.queue_ticket});
  DispatchLocked();
}

void AgentScheduler::Impl::SubmitLocked(Entry& e, bool urgent) {
  const SharedString uuid = e.uuid;
  JobOptions o;
  o.key = uuid.str();
  o.urgent = urgent;
  o.on_abandon = [this, uuid] { OnAbandon(uuid); };
  switch (pool->Submit([this, uuid](JobContext& ctx) { RunJob(ctx, uuid); }, std::move(o))) {
    case WorkerPool::Submitted::kQueued:
      ++pool_queued;
      break;
    case WorkerPool::Submitted::kAlreadyQueued:
      break;  // its job is still waiting in the pool (moved to the front when urgent)
    case WorkerPool::Submitted::kRejected:
      e.queued = false;  // shutting down
      break;
  }
}

void AgentScheduler::Impl::DispatchLocked() {
  const int depth = std::max(1, config.concurrency);
  while (pool_queued < depth && !backlog.empty() && !shutdown) {
    const Slot slot = backlog.front();
    backlog.pop_front();
    if (slot.entry->queue_ticket != slot.ticket || !slot.entry->queued) continue;  // void
    SubmitLocked(*slot.entry, false);
  }
}

// One sampling job. The scheduler is touched only under a lease; between
// the two leases the job blocks in libvirt and may be abandoned.
void AgentScheduler::Impl::RunJob(JobContext& ctx, const SharedString& uuid) {
  std::optional<Plan> plan;
  const Clock* clk = nullptr;
  {
    auto lease = ctx.Enter();
    if (!lease) return;
    std::lock_guard lock(mu);
    if (pool_queued > 0) --pool_queued;
    DispatchLocked();  // keep the pool's queue filled from the backlog
    plan = StartLocked(uuid);
    clk = &clock;
  }
  if (!plan) return;
  const Outcome out = TakeSample(ctx, *clk, *plan);
  const bool in_time = ctx.Disarm() && !out.abandoned;
  auto lease = ctx.Enter();
  if (!lease) return;  // the scheduler is gone: touch nothing
  std::function<void()> wake_fn;
  {
    std::lock_guard lock(mu);
    if (in_time) {
      wake_fn = FinishLocked(*plan, out);
    } else {
      LateReturnLocked(*plan);
    }
  }
  if (wake_fn) wake_fn();
}

std::optional<Plan> AgentScheduler::Impl::StartLocked(const SharedString& uuid) {
  auto it = domains.find(uuid);
  if (it == domains.end()) return std::nullopt;
  Entry& e = it->second;
  e.queued = false;
  if (e.in_flight || !Samplable(e.state) || shutdown) return std::nullopt;
  e.in_flight = true;
  e.last_attempt_mono_ns = clock.MonotonicNs();
  Plan p;
  p.api = api;
  p.uuid = uuid.str();
  p.name = e.name.str();
  p.generation = api->ConnectionGeneration();
  p.set_timeout = config.set_agent_timeout && config.agent_timeout_s > 0 &&
                  e.timeout_generation != p.generation;
  p.samples = std::max(1, config.samples);
  p.timeout_s = static_cast<int>(std::ceil(config.agent_timeout_s));
  p.call_deadline_ns = SecondsToNs(std::max(0.001, config.call_deadline_s));
  return p;
}

std::function<void()> AgentScheduler::Impl::FinishLocked(const Plan& plan, const Outcome& out) {
  if (out.timeout_status) LogTimeoutStatus(*out.timeout_status);
  auto it = domains.find(plan.uuid);
  if (it == domains.end()) return nullptr;
  Entry& d = it->second;
  d.in_flight = false;
  if (plan.set_timeout) d.timeout_generation = plan.generation;
  const int64_t now = clock.MonotonicNs();
  if (!Samplable(d.state)) {
    SetNotSampled(d);  // paused or stopped while the call ran: no verdict
  } else if (out.ok) {
    if (!d.agent_up) spdlog::info("libvirt: domain '{}' ({}): guest agent up", d.name, d.uuid);
    d.agent_up = true;
    d.attempted = true;
    d.agent_error.clear();
    d.failures = 0;
    d.next_retry_mono_ns = 0;
    scoring::ClockSample s = SampleFromBracket(out.best);
    s.after_interruption = ConsumeInterruption(d, out.best.t1_mono_ns);
    // A marked sample not handed out yet is replaced by this one: the mark
    // moves on, since the store's previous sample is still before the gap.
    if (d.sample && d.sample->after_interruption) s.after_interruption = true;
    if (d.sample) {
      *d.sample = s;
    } else {
      d.sample = std::make_unique<scoring::ClockSample>(s);
    }
    d.rtt_s = NsToSeconds(out.best.RoundTripNs());
  } else {
    RecordFailure(d, out.error.message, now);
  }
  if (d.retrigger) {
    d.retrigger = false;
    Enqueue(d, /*urgent=*/true);
  }
  return MarkDirtyLocked(d);
}

void AgentScheduler::Impl::LateReturnLocked(const Plan& plan) {
  // The watchdog already reported this call failed (OnAbandon). Free the
  // domain for scheduling again.
  auto it = domains.find(plan.uuid);
  if (it == domains.end()) return;
  Entry& d = it->second;
  d.in_flight = false;
  d.stuck = false;
  const int64_t now = clock.MonotonicNs();
  spdlog::info("libvirt: domain '{}': stuck guest agent call returned after {:.1f} s", d.name,
               NsToSeconds(now - d.last_attempt_mono_ns));
  d.next_retry_mono_ns = std::max(d.next_retry_mono_ns, now);
  if (d.retrigger) {
    d.retrigger = false;
    Enqueue(d, /*urgent=*/true);
  }
}

void AgentScheduler::Impl::OnAbandon(const SharedString& uuid) {
  std::function<void()> wake_fn;
  {
    std::lock_guard lock(mu);
    auto it = domains.find(uuid);
    if (it == domains.end() || shutdown) return;
    Entry& e = it->second;
    if (!e.in_flight || e.stuck) return;
    e.stuck = true;  // stays in_flight until the call returns
    RecordFailure(e, kDeadlineError, clock.MonotonicNs());
    spdlog::warn(
        "libvirt: domain '{}' ({}): guest agent call exceeded the {:.1f} s deadline; its worker "
        "is left blocked in libvirt ({} stuck call(s) now) and the domain is not polled again "
        "until the call returns",
        e.name, e.uuid, config.call_deadline_s, pool->stats().stuck);
    wake_fn = MarkDirtyLocked(e);
  }
  if (wake_fn) wake_fn();
}

void AgentScheduler::Impl::RetryTimer() {
  std::lock_guard lock(mu);
  if (shutdown) return;
  const int64_t now = clock.MonotonicNs();
  for (auto& [uuid, e] : domains) {
    if (e.failures > 0 && !e.in_flight && !e.queued && Samplable(e.state) &&
        e.seen_round == round && now >= e.next_retry_mono_ns) {
      Enqueue(e, /*urgent=*/false);
    }
  }
}

void AgentScheduler::Impl::RecordFailure(Entry& e, const std::string& message, int64_t now) {
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

void AgentScheduler::Impl::LogTimeoutStatus(const Status& st) {
  if (st.ok()) return;
  if (!timeout_warning_logged) {
    timeout_warning_logged = true;
    spdlog::warn(
        "libvirt: could not set the guest agent response timeout ({}); relying on the "
        "exporter-side call deadline only (further failures logged at debug level)",
        st.message());
  } else {
    spdlog::debug("libvirt: {}", st.message());
  }
}

DomainObservation AgentScheduler::Impl::Observe(Entry& e) {
  DomainObservation o;
  o.name = e.name;
  o.uuid = e.uuid;
  o.state = e.state;
  o.agent_up = e.agent_up;
  o.agent_attempted = e.attempted;
  o.agent_error = e.agent_error;
  o.agent_failures = e.failures;
  if (e.sample) {
    o.sample = *e.sample;
    e.sample.reset();
  }
  o.rtt_s = e.rtt_s;
  o.last_attempt_mono_ns = e.last_attempt_mono_ns;
  return o;
}

void AgentScheduler::Impl::ClearDirtyLocked() {
  for (const SharedString& uuid : dirty) {
    if (auto it = domains.find(uuid); it != domains.end()) it->second.dirty = false;
  }
  dirty.clear();
  wake_armed = true;
}

std::shared_ptr<StuckCounter> ProcessStuckAgentCalls() {
  static const auto counter = std::make_shared<StuckCounter>();
  return counter;
}

AgentScheduler::AgentScheduler(const LibvirtConfig& config, const Clock& clock,
                               std::shared_ptr<LibvirtApi> api, SchedulerOptions options)
    : impl_(std::make_unique<Impl>(config, clock, std::move(api))) {
  WorkerPoolOptions o;
  o.name = "libvirt agent workers";
  o.workers = std::max(1, config.concurrency);
  o.max_stuck = std::max(0, config.max_stuck_calls);
  o.shared_stuck = std::move(options.stuck_calls);
  if (options.background_tick) {
    o.watchdog_period = options.tick_interval;
    Impl* impl = impl_.get();
    o.on_tick = [impl] { impl->RetryTimer(); };
  }
  impl_->pool = std::make_unique<WorkerPool>(clock, std::move(o));
}

AgentScheduler::~AgentScheduler() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->shutdown = true;
    impl_->wake = nullptr;
  }
  impl_->pool->Shutdown(kShutdownGrace);
}

std::vector<DomainObservation> AgentScheduler::Update(const std::vector<DomainInfo>& domains) {
  Impl& sh = *impl_;
  std::lock_guard lock(sh.mu);
  const int64_t now = sh.clock.MonotonicNs();
  // A full round queues every healthy running domain. Collects that follow
  // a round closely (a reload, a manual poll) do not start another one:
  // closer than half the cadence, the median of the last three gaps between
  // full rounds. (Against the last gap alone, one collect late by more than
  // a third of the interval, a slow list on a busy host, made the next
  // on-time collect look close: that round was skipped, the domains' samples
  // came two intervals apart and the whole host looked stale.)
  bool full_round = true;
  if (sh.round > 0) {
    std::array<int64_t, 3> gaps = sh.round_gaps_ns;
    std::sort(gaps.begin(), gaps.end());
    int64_t cadence = 0;
    const auto known = std::count_if(gaps.begin(), gaps.end(), [](int64_t g) { return g > 0; });
    if (known == 3) {
      cadence = gaps[1];
    } else if (known > 0) {
      cadence = gaps[3 - known];  // too few for a median: the smallest seen
    }
    full_round = cadence <= 0 || now - sh.last_round_mono_ns >= cadence / 2;
  }
  if (full_round) {
    if (sh.round > 0) {
      std::rotate(sh.round_gaps_ns.begin(), sh.round_gaps_ns.begin() + 1, sh.round_gaps_ns.end());
      sh.round_gaps_ns.back() = now - sh.last_round_mono_ns;
    }
    sh.last_round_mono_ns = now;
  }
  const uint64_t round = ++sh.round;
  sh.listed.clear();
  sh.listed.reserve(domains.size());
  std::vector<Entry*> due;  // queued below in name order
  for (const DomainInfo& d : domains) {
    auto [it, inserted] = sh.domains.try_emplace(d.uuid);
    Entry& e = it->second;
    if (inserted) e.uuid = it->first;
    if (e.seen_round == round) continue;  // listed twice: ignore the repeat
    const bool was_samplable = Samplable(e.state);
    if (e.name != d.name) e.name = d.name;  // else keep the text the others share
    e.state = d.state;
    e.seen_round = round;
    sh.listed.push_back(&e);
    if (!inserted && was_samplable != Samplable(d.state)) {
      sh.MarkInterrupted(e, now);  // a pause or stop the events did not tell us about
    }
    if (!Samplable(d.state)) {
      if (!e.in_flight) Impl::SetNotSampled(e);
      continue;
    }
    if (!was_samplable && !inserted) {
      e.timeout_generation = 0;  // restarted: re-apply the agent timeout
      if (!e.in_flight) Impl::SetRunningAgain(e);
    }
    if (e.in_flight || e.queued) continue;
    if (e.failures == 0 ? full_round : now >= e.next_retry_mono_ns) due.push_back(&e);
  }
  // A round samples the domains in name order, the snapshot's order: the
  // samples one harvest publishes are then a run of neighbouring VMs, which
  // is what lets the /metrics gzip body recompress only the chunks around
  // them (exposition/gzip_body.h; libvirt lists in its own order).
  std::sort(due.begin(), due.end(), [](const Entry* a, const Entry* b) {
    return a->name != b->name ? a->name < b->name : a->uuid < b->uuid;
  });
  for (Entry* e : due) sh.Enqueue(*e, false);
  // Forget vanished domains (kept while a call is still in flight), after
  // dropping their backlog slots.
  // (A void slot may point at an entry no longer queued, so any vanishing
  // entry counts.)
  bool vanished = false;
  for (const auto& [uuid, e] : sh.domains) {
    if (e.seen_round != round && !e.in_flight) vanished = true;
  }
  if (vanished && !sh.backlog.empty()) {
    std::erase_if(sh.backlog, [round](const Impl::Slot& slot) {
      return slot.entry->seen_round != round && !slot.entry->in_flight;
    });
  }
  for (auto it = sh.domains.begin(); it != sh.domains.end();) {
    if (it->second.seen_round != round && !it->second.in_flight) {
      it = sh.domains.erase(it);
    } else {
      ++it;
    }
  }
  std::vector<DomainObservation> out;
  out.reserve(sh.listed.size());
  for (Entry* e : sh.listed) out.push_back(sh.Observe(*e));
  sh.ClearDirtyLocked();
  return out;
}

std::vector<DomainObservation> AgentScheduler::Current() {
  Impl& sh = *impl_;
  std::lock_guard lock(sh.mu);
  std::vector<DomainObservation> out;
  out.reserve(sh.listed.size());
  for (Entry* e : sh.listed) out.push_back(sh.Observe(*e));
  sh.ClearDirtyLocked();
  return out;
}

std::vector<DomainObservation> AgentScheduler::Harvest() {
  Impl& sh = *impl_;
  std::lock_guard lock(sh.mu);
  std::vector<DomainObservation> out;
  out.reserve(sh.dirty.size());
  for (const SharedString& uuid : sh.dirty) {
    auto it = sh.domains.find(uuid);
    if (it != sh.domains.end() && it->second.dirty) out.push_back(sh.Observe(it->second));
  }
  sh.ClearDirtyLocked();
  return out;
}

void AgentScheduler::Tick() {
  impl_->pool->Tick();
  impl_->RetryTimer();
}

void AgentScheduler::OnEvent(const std::string& uuid, const std::string& name, DomainEvent event) {
  Impl& sh = *impl_;
  std::function<void()> wake_fn;
  {
    std::lock_guard lock(sh.mu);
    if (sh.shutdown) return;
    spdlog::debug("libvirt: event {} for domain '{}' ({})", DomainEventName(event), name, uuid);
    auto [it, inserted] = sh.domains.try_emplace(uuid);
    Entry& e = it->second;
    if (inserted) {
      e.uuid = it->first;
      e.name = name;
      e.seen_round = sh.round;  // schedulable until the next list says otherwise
    }
    const int64_t now = sh.clock.MonotonicNs();
    const bool was_samplable = Samplable(e.state);
    switch (event) {
      case DomainEvent::kSuspended:
      case DomainEvent::kStopped:
        e.state = event == DomainEvent::kSuspended ? DomainState::kPaused : DomainState::kShutoff;
        sh.MarkInterrupted(e, now);
        if (!e.in_flight) Impl::SetNotSampled(e);
        wake_fn = sh.MarkDirtyLocked(e);
        break;
      case DomainEvent::kAgentDisconnected:
        return;
      case DomainEvent::kStarted:
      case DomainEvent::kResumed:
      case DomainEvent::kAgentConnected:
        if (event == DomainEvent::kStarted) e.timeout_generation = 0;  // a new QEMU process
        if (event != DomainEvent::kResumed) {
          e.failures = 0;
          e.next_retry_mono_ns = 0;
        }
        if (event != DomainEvent::kAgentConnected) sh.MarkInterrupted(e, now);
        e.state = DomainState::kRunning;
        if (!was_samplable && !e.in_flight) Impl::SetRunningAgain(e);
        if (e.in_flight) {
          e.retrigger = true;  // poll again as soon as the current call returns
        } else {
          sh.Enqueue(e, /*urgent=*/true);
        }
        break;
    }
  }
  if (wake_fn) wake_fn();
}

void AgentScheduler::SetWakeup(std::function<void()> wake) {
  std::lock_guard lock(impl_->mu);
  impl_->wake = std::move(wake);
  impl_->wake_armed = true;
}

bool AgentScheduler::WaitIdle(std::chrono::milliseconds timeout, int allow_busy) {
  return impl_->pool->WaitIdle(timeout, allow_busy);
}

int AgentScheduler::StuckCalls() const { return impl_->pool->stats().stuck; }

int AgentScheduler::LiveWorkers() const { return impl_->pool->stats().live; }

AgentScheduler::QueueDepths AgentScheduler::Queued() const {
  QueueDepths q;
  {
    std::lock_guard lock(impl_->mu);
    q.backlog = impl_->backlog.size();
  }
  q.pool = impl_->pool->stats().queued;
  return q;
}

}  // namespace vmtime::libvirt
