// See engine.h.
#include "exporter/remediation/engine.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <optional>
#include <vector>

#include "exporter/collectors/libvirt/clock_bracket.h"

namespace vmtime::remediation {
namespace {

constexpr char kDecideKey[] = "(decide)";  // never a uuid

// What one attempt needs after its blocking calls: copied under the lock.
struct Plan {
  Action action;
  std::shared_ptr<libvirt::LibvirtApi> api;
  int samples = 3;
  int64_t call_deadline_ns = 0;
  double verify_tolerance_s = 0;
};

// How one attempt (or intent) ended: the event's values.
struct Report {
  Action action;
  RemediationResult result = RemediationResult::kFailed;
  bool dry_run = false;
  std::optional<scoring::ClockSample> after;  // the re-measure
  double set_bracket_s = 0;                   // host reads around virDomainSetTime
  double bound_s = 0;                         // |offset after| allowed for "ok"
  int64_t set_time_real_ns = 0;               // the explicit time passed to the guest
  std::string error;
};

// The blocking part: set, then re-measure. Touches only the plan, the job
// context and the clock.
Report Attempt(JobContext& ctx, const Clock& clock, const Plan& plan, bool* abandoned) {
  Report r;
  r.action = plan.action;
  auto arm = [&] { return ctx.ArmDeadline(clock.MonotonicNs() + plan.call_deadline_ns); };
  const std::string& uuid = plan.action.uuid;
  const std::string& name = plan.action.name;
  if (!arm()) return *abandoned = true, r;
  const int64_t t0_mono = clock.MonotonicNs();
  const int64_t t0_real = clock.RealtimeNs();  // the time the guest is set to
  libvirt::GuestTime t;
  t.seconds = t0_real / kNsPerSecond;
  t.nanoseconds = static_cast<uint32_t>(t0_real % kNsPerSecond);
  const Status set = plan.api->SetTime(uuid, name, t);
  const int64_t t1_mono = clock.MonotonicNs();
  if (ctx.abandoned()) return *abandoned = true, r;
  r.set_time_real_ns = t0_real;
  r.set_bracket_s = NsToSeconds(t1_mono - t0_mono);
  if (!set.ok()) {
    r.error = set.message();
    return r;
  }
  std::vector<libvirt::Bracket> brackets;
  for (int i = 0; i < plan.samples; ++i) {
    if (!arm()) return *abandoned = true, r;
    libvirt::Bracket b;
    b.t0_mono_ns = clock.MonotonicNs();
    b.t0_real_ns = clock.RealtimeNs();
    Result<libvirt::GuestTime> g = plan.api->GetTime(uuid, name);
    b.t1_real_ns = clock.RealtimeNs();
    b.t1_mono_ns = clock.MonotonicNs();
    if (ctx.abandoned()) return *abandoned = true, r;
    if (!g.ok()) {
      r.error = "set, but the re-measure failed: " + g.error().message;
      return r;
    }
    b.guest_seconds = g->seconds;
    b.guest_nanoseconds = g->nanoseconds;
    brackets.push_back(b);
  }
  r.after = libvirt::SampleFromBracket(brackets[*libvirt::BestBracket(brackets)]);
  // The guest was set to t0_real somewhere inside the set bracket, so it
  // lags the host by at most the bracket; the re-measure adds its own +-.
  r.bound_s = r.after->uncertainty_s + r.set_bracket_s + plan.verify_tolerance_s;
  r.result = std::fabs(r.after->offset_s) <= r.bound_s ? RemediationResult::kOk
                                                       : RemediationResult::kNotCorrected;
  return r;
}

nlohmann::json OrNull(const std::optional<double>& v) { return v ? nlohmann::json(*v) : nullptr; }

}  // namespace

struct RemediationEngine::Impl {
  Impl(const RemediationConfig& p, const Clock& c, std::shared_ptr<libvirt::LibvirtApi> a,
       std::shared_ptr<EventSink> e, ResultCallback r)
      : clock(c), api(std::move(a)), events(std::move(e)), on_result(std::move(r)), policy(p) {}

  const Clock& clock;
  const std::shared_ptr<libvirt::LibvirtApi> api;
  const std::shared_ptr<EventSink> events;
  const ResultCallback on_result;
  std::unique_ptr<WorkerPool> pool;

  std::mutex mu;  // everything below; taken before the pool's lock
  RemediationConfig policy;
  MetadataByUuid metadata;
  Memory memory;
  std::shared_ptr<const Snapshot> latest;
  bool shutdown = false;

  void DecideJob(JobContext& ctx);
  void AttemptJob(JobContext& ctx, const Plan& plan);
  void OnAbandon(const Action& action);
  void Finish(const std::string& uuid);
  void Emit(const Report& r);
};

void RemediationEngine::Impl::DecideJob(JobContext& ctx) {
  auto lease = ctx.Enter();
  if (!lease) return;
  std::vector<Report> intents;  // dry runs and refusals: reported at once
  {
    std::lock_guard lock(mu);
    if (shutdown || !latest) return;
    const std::shared_ptr<const Snapshot> snap = std::exchange(latest, nullptr);
    for (Action& a : Decide(*snap, policy, metadata, clock.MonotonicNs(), memory)) {
      if (a.kind != ActionKind::kSet) {
        Report r;
        r.action = std::move(a);
        r.dry_run = r.action.kind == ActionKind::kDryRun;
        r.result = r.dry_run ? RemediationResult::kDryRun : RemediationResult::kRefusedBackward;
        if (!r.dry_run) {
          r.error = "correction would step the guest back by more than max_backward_step (" +
                    std::to_string(policy.max_backward_step_s) +
                    " s); set remediation.allow_large_backward to allow it";
        }
        intents.push_back(std::move(r));
        continue;
      }
      spdlog::info(
          "remediation: domain '{}' ({}): setting the guest clock from the host (reason={} "
          "offset_before_s={:+.6f} uncertainty_s={:.6f})",
          a.name, a.uuid, a.reason, a.offset_before_s, a.uncertainty_before_s);
      auto plan = std::make_shared<Plan>();
      plan->action = a;
      plan->api = api;
      plan->samples = std::max(1, policy.samples);
      plan->call_deadline_ns = SecondsToNs(std::max(0.01, policy.call_deadline_s));
      plan->verify_tolerance_s = policy.verify_tolerance_s;
      JobOptions o;
      o.key = a.uuid;
      o.on_abandon = [this, a] { OnAbandon(a); };
      if (pool->Submit([this, plan](JobContext& c) { AttemptJob(c, *plan); }, std::move(o)) ==
          WorkerPool::Submitted::kRejected) {
        memory[a.uuid].in_flight = false;
      }
    }
  }
  for (const Report& r : intents) Emit(r);
}

void RemediationEngine::Impl::AttemptJob(JobContext& ctx, const Plan& plan) {
  bool abandoned = false;
  const Report r = Attempt(ctx, clock, plan, &abandoned);
  const bool in_time = ctx.Disarm() && !abandoned;
  auto lease = ctx.Enter();
  if (!lease) return;  // the engine is gone: touch nothing
  if (in_time) {
    Emit(r);
  } else {
    spdlog::info("remediation: domain '{}': the abandoned call returned", plan.action.name);
  }
  Finish(plan.action.uuid);
}

void RemediationEngine::Impl::OnAbandon(const Action& action) {
  Report r;
  r.action = action;
  r.result = RemediationResult::kFailed;
  {
    std::lock_guard lock(mu);
    if (shutdown) return;
    r.error = "guest agent call exceeded the remediation.call_deadline of " +
              std::to_string(policy.call_deadline_s) +
              " s; its worker is left blocked in libvirt and the domain is not tried again "
              "until the call returns";
  }
  Emit(r);
}

void RemediationEngine::Impl::Finish(const std::string& uuid) {
  std::lock_guard lock(mu);
  auto it = memory.find(uuid);
  if (it == memory.end()) return;
  it->second.in_flight = false;
  it->second.last_done_mono_ns = clock.MonotonicNs();
}

void RemediationEngine::Impl::Emit(const Report& r) {
  const Action& a = r.action;
  const char* result = RemediationResultName(r.result);
  std::optional<double> after_offset, after_unc;
  if (r.after) {
    after_offset = r.after->offset_s;
    after_unc = r.after->uncertainty_s;
  }
  if (r.dry_run) {
    spdlog::info(
        "remediation: domain '{}' ({}): dry_run: would set the guest clock from the host "
        "(reason={} offset_before_s={:+.6f} uncertainty_s={:.6f})",
        a.name, a.uuid, a.reason, a.offset_before_s, a.uncertainty_before_s);
  } else {
    spdlog::info(
        "remediation: domain '{}' ({}): result={} reason={} offset_before_s={:+.6f} "
        "uncertainty_s={:.6f} offset_after_s={} uncertainty_after_s={} set_bracket_s={:.6f} "
        "bound_s={:.6f}{}{}",
        a.name, a.uuid, result, a.reason, a.offset_before_s, a.uncertainty_before_s,
        after_offset ? fmt::format("{:+.6f}", *after_offset) : "none",
        after_unc ? fmt::format("{:.6f}", *after_unc) : "none", r.set_bracket_s, r.bound_s,
        r.error.empty() ? "" : " error=", r.error);
  }
  Event e;
  e.time_real_ns = clock.RealtimeNs();
  e.type = "remediation";
  e.domain = a.name;
  e.uuid = a.uuid;
  e.before = {{"offset_s", a.offset_before_s}, {"uncertainty_s", a.uncertainty_before_s}};
  e.after = r.after ? nlohmann::json{{"offset_s", *after_offset}, {"uncertainty_s", *after_unc}}
                    : nlohmann::json(nullptr);
  e.values = {{"result", result},
              {"dry_run", r.dry_run},
              {"reason", a.reason},
              {"offset_before_s", a.offset_before_s},
              {"offset_after_s", OrNull(after_offset)},
              {"uncertainty_before_s", a.uncertainty_before_s},
              {"uncertainty_after_s", OrNull(after_unc)},
              {"set_bracket_s", r.set_bracket_s},
              {"bound_s", r.bound_s},
              {"set_time_real_ns", r.set_time_real_ns},
              {"error", r.error}};
  if (events) events->Emit(std::move(e));
  if (on_result) on_result(a.uuid, r.result);
}

RemediationEngine::RemediationEngine(const RemediationConfig& policy, const Clock& clock,
                                     std::shared_ptr<libvirt::LibvirtApi> api,
                                     std::shared_ptr<EventSink> events, ResultCallback on_result,
                                     EngineOptions options)
    : impl_(std::make_unique<Impl>(policy, clock, std::move(api), std::move(events),
                                   std::move(on_result))) {
  WorkerPoolOptions o;
  o.name = "remediation workers";
  o.workers = std::max(1, policy.workers);
  o.max_stuck = 4 * std::max(1, policy.workers);
  if (options.background_tick) o.watchdog_period = std::chrono::milliseconds(200);
  impl_->pool = std::make_unique<WorkerPool>(clock, std::move(o));
}

RemediationEngine::~RemediationEngine() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->shutdown = true;
  }
  impl_->pool->Shutdown(WorkerPool::kDefaultGrace);
}

void RemediationEngine::SetPolicy(const RemediationConfig& policy) {
  std::lock_guard lock(impl_->mu);
  impl_->policy = policy;
  impl_->pool->SetSize(std::max(1, policy.workers), 4 * std::max(1, policy.workers));
}

void RemediationEngine::SetMetadata(MetadataByUuid metadata) {
  std::lock_guard lock(impl_->mu);
  impl_->metadata = std::move(metadata);
}

void RemediationEngine::OnSnapshot(std::shared_ptr<const Snapshot> snapshot) {
  Impl& im = *impl_;
  std::lock_guard lock(im.mu);
  if (im.shutdown) return;
  im.latest = std::move(snapshot);
  JobOptions o;
  o.key = kDecideKey;
  o.urgent = true;
  Impl* p = &im;
  im.pool->Submit([p](JobContext& ctx) { p->DecideJob(ctx); }, std::move(o));
}

void RemediationEngine::Tick() { impl_->pool->Tick(); }

bool RemediationEngine::WaitIdle(std::chrono::milliseconds timeout) {
  return impl_->pool->WaitIdle(timeout);
}

}  // namespace vmtime::remediation
