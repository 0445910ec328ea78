#include "exporter/store/store.h"

#include <fnmatch.h>

#include <algorithm>
#include <cmath>

#include "exporter/config/libvirt_uri.h"
#include "exporter/store/host_reference.h"
#include "exporter/store/host_reference_ptp.h"
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
  reference_order_ = config.host.reference_order;
  group_rules_.clear();
  for (const GroupRule& rule : config.groups.rules)
    group_rules_.emplace_back(rule.match, rule.group);
  // What the libvirt collector reads changed: it is rebuilt and reads every
  // domain again, handing out only what it finds; forget the old reads so
  // nothing read under the old settings stays.
  const std::pair<bool, bool> metadata_sources{config.libvirt.metadata,
                                               config.libvirt.nova_metadata};
  if (metadata_sources != metadata_sources_) metadata_.clear();
  metadata_sources_ = metadata_sources;
  enabled_.clear();
  for (const auto& [id, cc] : config.collectors) {
    if (cc.enabled) enabled_.insert(id);
  }
  for (auto& [uuid, vm] : vms_) {
    vm.samples.Trim(history_samples_);
  }
  // Forget sections of collectors that are now disabled.
  auto enabled = [&](CollectorId id) { return enabled_.contains(id); };
  if (!enabled(CollectorId::kTimex)) timex_.reset();
  if (!enabled(CollectorId::kChrony)) chrony_.reset(), chrony_up_ = false;
  if (!enabled(CollectorId::kNtp)) ntp_.reset();
  if (!enabled(CollectorId::kNtpd)) ntpd_.reset(), ntpd_up_ = false;
  if (!enabled(CollectorId::kTimesyncd)) timesyncd_.reset(), timesyncd_up_ = false;
  if (!enabled(CollectorId::kPtp)) ptp_.reset(), ptp_up_ = false;
  if (!enabled(CollectorId::kLibvirt)) {
    vms_.clear(), gone_.clear(), metadata_.clear(), libvirt_connected_ = false;
  }
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
  // The collector makes both from integer nanoseconds; anything else is not
  // a measurement and would mean something else once packed.
  if (!std::isfinite(sample.offset_s) || !std::isfinite(sample.uncertainty_s)) return;
  scoring::ClockSample s = sample;
  s.uncertainty_s = std::max(0.0, s.uncertainty_s);
  newest_mono_ns_ = std::max(newest_mono_ns_, s.host_mono_ns);
  if (!vm.samples.empty()) {
    const auto& prev = vm.samples.back();
    if (s.host_mono_ns <= prev.host_mono_ns) return;  // already have it
    if (vm.returned) s.after_interruption = true;
    double drift = 0;
    vm.samples.Unpack(unpacked_);
    if (auto d = scoring::EstimateDrift(unpacked_, params_)) drift = d->ratio;
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
  vm.samples.Push(s, history_samples_);
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
  for (const auto& [uuid, meta] : lv.metadata) metadata_[uuid] = meta;
  if (lv.partial) {
    // A harvest: only the domains with news; nobody vanished.
    for (const auto& d : lv.domains) {
      auto it = vms_.find(d.uuid);
      if (it == vms_.end()) it = vms_.emplace(d.uuid, Revive(d.uuid)).first;
      MergeDomain(it->second, d);
    }
    return;
  }
  // In place: a round over a steady fleet allocates and frees no map node
  // (a new map per round left 10,000 nodes a round to fragment the heap).
  for (auto& [uuid, vm] : vms_) vm.listed = false;
  for (const auto& d : lv.domains) {
    auto it = vms_.find(d.uuid);
    if (it == vms_.end()) it = vms_.emplace(d.uuid, Revive(d.uuid)).first;
    MergeDomain(it->second, d);
    it->second.listed = true;
  }
  // Whatever was not listed: remember it for a while.
  for (auto it = vms_.begin(); it != vms_.end();) {
    if (it->second.listed) {
      ++it;
      continue;
    }
    VmState& vm = it->second;
    const int64_t last = vm.samples.empty() ? newest_mono_ns_ : vm.samples.back().host_mono_ns;
    gone_[it->first] = GoneVm{std::move(vm), last};
    it = vms_.erase(it);
  }
  ForgetGoneLocked();
  // Metadata of unlisted domains goes at once: the collector forgets them
  // too and reads them again should they come back.
  for (auto it = metadata_.begin(); it != metadata_.end();) {
    it = vms_.contains(it->first) ? std::next(it) : metadata_.erase(it);
  }
}

Store::VmState Store::Revive(const SharedString& uuid) {
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
  if (obs.ntpd) ntpd_ = obs.ntpd, ntpd_up_ = true;
  if (obs.timesyncd) timesyncd_ = obs.timesyncd, timesyncd_up_ = true;
  if (obs.ptp) ptp_ = obs.ptp, ptp_up_ = true;
  if (obs.libvirt) ApplyLibvirt(*obs.libvirt);
  if (obs.guest_status) {
    for (const auto& g : obs.guest_status->guests) {
      auto it = vms_.find(g.uuid);
      if (it != vms_.end()) it->second.guest = std::make_shared<const GuestStatusObservation>(g);
    }
  }
}

void Store::MarkFailed(const std::string& collector) {
  std::lock_guard lock(mu_);
  const auto id = CollectorIdFromName(collector);
  if (id == CollectorId::kChrony) chrony_up_ = false;
  if (id == CollectorId::kNtpd) ntpd_up_ = false;
  if (id == CollectorId::kTimesyncd) timesyncd_up_ = false;
  if (id == CollectorId::kPtp) ptp_up_ = false;
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
  // One candidate per source of HostReferenceSourceNames(); a source is
  // present while its collector answered its last run.
  std::vector<HostReferenceCandidate> c;
  auto add = [&c](const char* name, bool present, auto&& make) {
    c.push_back({name, present ? std::optional<scoring::HostReference>(make()) : std::nullopt});
  };
  add("chrony", chrony_up_ && chrony_, [&] { return HostReferenceFromChrony(*chrony_); });
  add("ntpd", ntpd_up_ && ntpd_, [&] { return HostReferenceFromNtpd(*ntpd_); });
  add("timesyncd", timesyncd_up_ && timesyncd_,
      [&] { return HostReferenceFromTimesyncd(*timesyncd_); });
  add("ptp", ptp_up_ && ptp_, [&] { return HostReferenceFromPtp(*ptp_); });
  add("kernel", timex_.has_value(), [&] { return HostReferenceFromKernel(*timex_); });
  return SelectHostReference(reference_order_, c);
}

SharedString Store::GroupOfLocked(const VmState& vm, const DomainMetadata* meta) const {
  if (meta != nullptr && !meta->group.empty()) return meta->group;
  for (const auto& [match, group] : group_rules_) {
    if (fnmatch(match.c_str(), vm.name.c_str(), 0) == 0) return group;
  }
  return {};
}

std::map<SharedString, double, std::less<>> Store::BuildGroupsLocked(Snapshot& snap,
                                                                     int64_t now_mono_ns) const {
  // A member's offset counts while its domain runs and its newest sample is
  // not stale (the `stale` reason's knot), so a guest whose agent died an
  // hour ago does not hold the spread open.
  const double fresh_s = params_.freshness_full_intervals * libvirt_interval_s_;
  std::map<SharedString, GroupView, std::less<>> groups;
  std::map<SharedString, std::pair<double, double>, std::less<>> range;  // min, max offset
  for (const VmView& v : snap.vms) {
    if (v.group.empty()) continue;
    GroupView& g = groups[v.group];
    g.name = v.group;
    ++g.members;
    if (v.state != DomainState::kRunning || !v.last_sample) continue;
    const double age_s = static_cast<double>(now_mono_ns - v.last_sample->host_mono_ns) / 1e9;
    if (!(age_s <= fresh_s)) continue;
    const double off = v.last_sample->offset_s;
    auto [it, first] = range.try_emplace(v.group, off, off);
    if (first || off < it->second.first) g.min_domain = v.name;
    if (first || off > it->second.second) g.max_domain = v.name;
    it->second.first = std::min(it->second.first, off);
    it->second.second = std::max(it->second.second, off);
    ++g.measured;
  }
  std::map<SharedString, double, std::less<>> spreads;
  snap.groups.reserve(groups.size());
  for (auto& [name, g] : groups) {
    if (auto it = range.find(name); it != range.end()) {
      g.spread_s = it->second.second - it->second.first;
    }
    if (g.measured >= 2) spreads[name] = g.spread_s;
    snap.groups.push_back(std::move(g));
  }
  std::sort(snap.groups.begin(), snap.groups.end(), [](const GroupView& a, const GroupView& b) {
    return a.spread_s != b.spread_s ? a.spread_s > b.spread_s : a.name < b.name;
  });
  return spreads;
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
  snap->ntpd_up = ntpd_up_;
  snap->ntpd = ntpd_;
  snap->timesyncd_up = timesyncd_up_;
  snap->timesyncd = timesyncd_;
  snap->ntp_configured = ntp_configured_;
  snap->ptp_enabled = enabled_.contains(CollectorId::kPtp);
  snap->ptp_up = ptp_up_;
  if (ptp_up_ && ptp_) {
    snap->ptp = ptp_;
    snap->ptp_host_reference = HostReferenceFromPtp(*ptp_);
  }
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
    const auto meta = metadata_.find(uuid);
    const DomainMetadata* m = meta != metadata_.end() ? &meta->second : nullptr;
    v.group = GroupOfLocked(vm, m);
    if (m != nullptr) v.labels = m->labels;
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
    v.remediations_total = vm.remediations;
    snap->vms.push_back(std::move(v));
  }
  // Scoring needs each group's spread, hence a second pass.
  const auto spreads = BuildGroupsLocked(*snap, now_mono_ns);
  auto state = vms_.begin();  // snap->vms holds one view per VmState, in vms_ order
  for (VmView& v : snap->vms) {
    const VmState& vm = (state++)->second;
    scoring::VmInput in;
    vm.samples.Unpack(unpacked_);
    in.samples = unpacked_;
    in.running = vm.state == DomainState::kRunning;
    in.agent_reachable = vm.agent_up;
    in.agent_attempted = vm.agent_attempted;
    if (vm.guest) in.guest = vm.guest->status;
    if (!remote_libvirt_) in.host = host;
    in.now_mono_ns = now_mono_ns;
    in.poll_interval_s = libvirt_interval_s_;
    if (auto s = spreads.find(v.group); s != spreads.end()) in.group_offset_spread_s = s->second;
    v.score = scoring::Score(in, params_);
  }
  std::sort(snap->vms.begin(), snap->vms.end(), [](const VmView& a, const VmView& b) {
    return a.name != b.name ? a.name < b.name : a.uuid < b.uuid;
  });
  snap->collectors.reserve(runs_.size());
  for (const auto& [name, st] : runs_) snap->collectors.push_back(st);
  return snap;
}

void Store::RecordRemediation(const std::string& uuid, RemediationResult result) {
  std::lock_guard lock(mu_);
  auto it = vms_.find(uuid);
  if (it == vms_.end()) return;
  auto& counts = it->second.remediations;
  auto next =
      counts ? std::make_shared<RemediationCounts>(*counts) : std::make_shared<RemediationCounts>();
  ++(*next)[static_cast<size_t>(result)];
  counts = std::move(next);
}

}  // namespace vmtime
