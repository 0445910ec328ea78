#include "exporter/store/store.h"

#include <algorithm>

#include "exporter/config/libvirt_uri.h"
#include "exporter/store/host_reference.h"
#include "scoring/score.h"

namespace vmtime {

Store::Store(const Config& config) { SetConfig(config); }

void Store::SetConfig(const Config& config) {
  std::lock_guard lock(mu_);
  params_ = config.scoring;
  history_samples_ = std::max<size_t>(2, config.history_samples);
  libvirt_interval_s_ = config.Collector(CollectorId::kLibvirt).interval_s;
  ntp_configured_ = config.ntp.servers.size();
  remote_libvirt_ = ClassifyLibvirtUri(config.libvirt.uri).remote;
  component_scores_ = config.metrics.component_scores;
  enabled_.clear();
  for (const auto& [id, cc] : config.collectors) {
    if (cc.enabled) enabled_.insert(id);
  }
  for (auto& [uuid, vm] : vms_) {
    if (vm.samples.size() > history_samples_) {
      vm.samples.erase(
          vm.samples.begin(),
          vm.samples.begin() + static_cast<long>(vm.samples.size() - history_samples_));
    }
  }
  // Forget sections of collectors that are now disabled.
  auto enabled = [&](CollectorId id) { return enabled_.contains(id); };
  if (!enabled(CollectorId::kTimex)) timex_.reset();
  if (!enabled(CollectorId::kChrony)) chrony_.reset(), chrony_up_ = false;
  if (!enabled(CollectorId::kNtp)) ntp_.reset();
  if (!enabled(CollectorId::kLibvirt)) vms_.clear(), gone_.clear(), libvirt_connected_ = false;
  for (auto it = runs_.begin(); it != runs_.end();) {
    const auto id = CollectorIdFromName(it->first);
    it = id && enabled(*id) ? std::next(it) : runs_.erase(it);
  }
}

namespace {
// Unlisted domains remembered at most, so a churning host cannot grow it.
constexpr size_t kMaxGone = 10000;
}  // namespace

void Store::AddSample(VmState& vm, const scoring::ClockSample& sample, double rtt_s) {
  scoring::ClockSample s = sample;
  newest_mono_ns_ = std::max(newest_mono_ns_, s.host_mono_ns);
  if (!vm.samples.empty()) {
    const auto& prev = vm.samples.back();
    if (s.host_mono_ns <= prev.host_mono_ns) return;  // already have it
    if (vm.returned) s.after_interruption = true;
    double drift = 0;
    if (auto d = scoring::EstimateDrift(vm.samples, params_)) drift = d->ratio;
    switch (scoring::StepBetween(prev, s, drift, params_)) {
      case scoring::StepDirection::kForward:
        ++vm.steps_total.forward;
        break;
      case scoring::StepDirection::kBackward:
        ++vm.steps_total.backward;
        break;
      case scoring::StepDirection::kNone:
        break;
    }
  }
  if (vm.samples.size() >= history_samples_) vm.samples.erase(vm.samples.begin());
  vm.samples.push_back(s);
  vm.returned = false;
  vm.rtt_s = rtt_s;
}

void Store::MergeDomain(VmState& vm, const DomainObservation& d) {
  vm.name = d.name;
  vm.uuid = d.uuid;
  vm.state = d.state;
  vm.agent_up = d.agent_up;
  vm.agent_attempted = d.agent_attempted;
  vm.agent_error = d.agent_error;
  if (d.sample) AddSample(vm, *d.sample, d.rtt_s);
}

void Store::ApplyLibvirt(const LibvirtObservation& lv) {
  libvirt_connected_ = lv.connected;
  if (lv.partial) {
    // A harvest: only the domains with news; nobody vanished.
    for (const auto& d : lv.domains) {
      auto it = vms_.find(d.uuid);
      if (it == vms_.end()) it = vms_.emplace(d.uuid, Revive(d.uuid)).first;
      MergeDomain(it->second, d);
    }
    return;
  }
  std::map<std::string, VmState> next;
  for (const auto& d : lv.domains) {
    auto it = vms_.find(d.uuid);
    VmState vm = it != vms_.end() ? std::move(it->second) : Revive(d.uuid);
    if (it != vms_.end()) vms_.erase(it);
    MergeDomain(vm, d);
    next.emplace(d.uuid, std::move(vm));
  }
  // Whatever is left was not listed: remember it for a while.
  for (auto& [uuid, vm] : vms_) {
    const int64_t last = vm.samples.empty() ? newest_mono_ns_ : vm.samples.back().host_mono_ns;
    gone_[uuid] = GoneVm{std::move(vm), last};
  }
  vms_ = std::move(next);
  ForgetGoneLocked();
}

Store::VmState Store::Revive(const std::string& uuid) {
  auto it = gone_.find(uuid);
  if (it == gone_.end()) return VmState{};
  VmState vm = std::move(it->second.vm);
  gone_.erase(it);
  vm.returned = true;
  return vm;
}

// Unlisted domains are kept while their history could still matter to the
// detectors (drift_window_s after their newest sample), and at most kMaxGone
// of them (the oldest go first).
void Store::ForgetGoneLocked() {
  const auto window_ns = static_cast<int64_t>(std::min(params_.drift_window_s, 1e9) * 1e9);
  for (auto it = gone_.begin(); it != gone_.end();) {
    it = newest_mono_ns_ - it->second.last_mono_ns > window_ns ? gone_.erase(it) : std::next(it);
  }
  while (gone_.size() > kMaxGone) {
    auto oldest = std::min_element(gone_.begin(), gone_.end(), [](const auto& a, const auto& b) {
      return a.second.last_mono_ns < b.second.last_mono_ns;
    });
    gone_.erase(oldest);
  }
}

void Store::Apply(const Observations& obs) {
  std::lock_guard lock(mu_);
  if (obs.timex) {
    timex_ = obs.timex;
    if (obs.timex->kvm_offset_artifact) ++kvm_artifacts_;
  }
  if (obs.chrony) {
    chrony_ = obs.chrony;
    chrony_up_ = true;
  }
  if (obs.ntp) ntp_ = obs.ntp;
  if (obs.libvirt) ApplyLibvirt(*obs.libvirt);
  if (obs.guest_status) {
    for (const auto& g : obs.guest_status->guests) {
      auto it = vms_.find(g.uuid);
      if (it != vms_.end()) it->second.guest = g;
    }
  }
}

void Store::MarkFailed(const std::string& collector) {
  std::lock_guard lock(mu_);
  const auto id = CollectorIdFromName(collector);
  if (id == CollectorId::kChrony) chrony_up_ = false;
  if (id == CollectorId::kLibvirt) {
    libvirt_connected_ = false;
    for (auto& [uuid, vm] : vms_) {
      vm.agent_up = false;
      if (vm.agent_error.empty()) vm.agent_error = "libvirt collector failed";
    }
  }
}

void Store::RecordRun(const CollectorStatus& status) {
  std::lock_guard lock(mu_);
  runs_[status.name] = status;
}

void Store::SetReload(const ReloadStatus& reload) {
  std::lock_guard lock(mu_);
  reload_ = reload;
}

size_t Store::vm_count() const {
  std::lock_guard lock(mu_);
  return vms_.size();
}

std::optional<scoring::HostReference> Store::HostReferenceLocked() const {
  return DecideHostReference(chrony_up_ ? chrony_ : std::nullopt, timex_);
}

void Store::SetEventCountersSource(std::function<EventCounters()> source) {
  std::lock_guard lock(mu_);
  event_counters_ = std::move(source);
}

std::shared_ptr<const Snapshot> Store::Build(int64_t now_mono_ns, int64_t now_real_ns) const {
  auto snap = std::make_shared<Snapshot>();
  std::lock_guard lock(mu_);
  snap->built_real_ns = now_real_ns;
  snap->timex = timex_;
  snap->timex_kvm_artifacts_total = kvm_artifacts_;
  snap->chrony_up = chrony_up_;
  snap->chrony = chrony_;
  snap->ntp = ntp_;
  snap->ntp_configured = ntp_configured_;
  snap->libvirt_enabled = enabled_.contains(CollectorId::kLibvirt);
  snap->libvirt_connected = libvirt_connected_;
  snap->component_scores = component_scores_;
  snap->reload = reload_;
  if (event_counters_) snap->events = event_counters_();
  const auto host = HostReferenceLocked();
  snap->host_reference = host;
  // host - UTC in seconds, when the host's own offset is known. Through a
  // remote libvirt URI the guests' offsets are relative to this machine, not
  // to their hypervisor: this machine's sync state and offset say nothing
  // about the hypervisor's clock, so neither is combined with them.
  const bool have_host_offset = !remote_libvirt_ && host.has_value() && host->offset_s.has_value();
  const double host_offset_s = have_host_offset ? *host->offset_s : 0.0;

  snap->vms.reserve(vms_.size());
  for (const auto& [uuid, vm] : vms_) {
    VmView v;
    v.name = vm.name;
    v.uuid = vm.uuid;
    v.state = vm.state;
    v.agent_up = vm.agent_up;
    v.agent_attempted = vm.agent_attempted;
    v.agent_error = vm.agent_error;
    if (!vm.samples.empty()) {
      v.last_sample = vm.samples.back();
      v.rtt_s = vm.rtt_s;
      if (have_host_offset) v.utc_offset_s = vm.samples.back().offset_s + host_offset_s;
    }
    v.steps_total = vm.steps_total;
    v.guest = vm.guest;
    scoring::VmInput in;
    in.samples = vm.samples;
    in.running = vm.state == DomainState::kRunning;
    in.agent_reachable = vm.agent_up;
    in.agent_attempted = vm.agent_attempted;
    if (vm.guest) in.guest = vm.guest->status;
    if (!remote_libvirt_) in.host = host;
    in.now_mono_ns = now_mono_ns;
    in.poll_interval_s = libvirt_interval_s_;
    v.score = scoring::Score(in, params_);
    snap->vms.push_back(std::move(v));
  }
  std::sort(snap->vms.begin(), snap->vms.end(), [](const VmView& a, const VmView& b) {
    return a.name != b.name ? a.name < b.name : a.uuid < b.uuid;
  });
  snap->collectors.reserve(runs_.size());
  for (const auto& [name, st] : runs_) snap->collectors.push_back(st);
  return snap;
}

}  // namespace vmtime
