#include "exporter/app/app.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <array>

#include "exporter/collectors/libvirt/real_libvirt_api.h"
#include "exporter/collectors/registry.h"
#include "exporter/config/libvirt_uri.h"
#include "exporter/core/build_info.h"

namespace vmtime {

Result<Config> LoadEffectiveConfig(const Flags& flags) {
  Result<Config> config = flags.config_file.empty() ? ParseConfig(DefaultConfigYaml(), "<built-in>")
                                                    : LoadConfigFile(flags.config_file);
  if (!config) return config;
  ApplyFlags(flags, *config);
  // After the flags: they may set the URI or the opt-in.
  if (Status st = CheckLibvirtUri(config->libvirt.uri, config->libvirt.allow_remote); !st.ok()) {
    return st.error();
  }
  if (const auto loc = ClassifyLibvirtUri(config->libvirt.uri); loc.remote) {
    spdlog::warn(
        "libvirt.uri {} is remote ({}), accepted by libvirt.allow_remote: guest offsets are "
        "measured against this machine's clock; vmtime_vm_clock_utc_offset_seconds is not "
        "exported and the host reference is not scored",
        config->libvirt.uri, loc.reason);
  }
  auto web = BasicAuth::Load(config->web.config_file);
  if (!web) return web.error();
  auto tls = LoadTlsServerConfig(config->web.config_file);
  if (!tls) return tls.error();
  if (*tls) {  // the certificate and key files must load too
    auto contexts = TlsContexts::Create(**tls);
    if (!contexts) return Error{config->web.config_file + ": " + contexts.error().message};
  }
  return config;
}

namespace {

std::string HostNameOrEmpty() {
  std::array<char, 256> buf{};
  if (gethostname(buf.data(), buf.size() - 1) != 0) return {};
  return buf.data();
}

AuditOptions AuditOptionsFrom(const AuditConfig& c) {
  AuditOptions o;
  o.file = c.file;
  o.max_size_bytes = c.max_size_bytes;
  o.sync_interval_s = c.sync_interval_s;
  o.queue_size = c.queue_size;
  o.ring_size = c.ring_size;
  o.host = HostNameOrEmpty();
  return o;
}

}  // namespace

App::App(Flags flags, Config config, const Clock& clock)
    : flags_(std::move(flags)),
      config_(std::move(config)),
      clock_(clock),
      store_(config_),
      trimmer_(clock_) {
  audit_ = std::make_shared<AuditSink>(clock_, AuditOptionsFrom(config_.audit));
  store_.SetEventCountersSource([this] { return audit_->Counters(); });
  poller_ = std::make_unique<Poller>(
      clock_, store_, [this](std::shared_ptr<const Snapshot> s) { OnSnapshot(std::move(s)); });
}

void App::OnSnapshot(std::shared_ptr<const Snapshot> s) {
  if (!s) return;
  std::vector<Event> events;
  DiffSnapshot(differ_, *s, events);
  for (Event& e : events) audit_->Emit(std::move(e));
  snapshots_.Set(s);
  trimmer_.Poke();  // the snapshot before this one may be gone now
  // Under remediation_mu_, so the engine is never released on this
  // thread (under the poller's lock); OnSnapshot only queues a decision.
  std::lock_guard lock(remediation_mu_);
  if (remediation_) remediation_->OnSnapshot(std::move(s));
}

void App::EmitHostEvent(std::string type, nlohmann::json values) {
  Event e;
  e.time_real_ns = clock_.RealtimeNs();
  e.type = std::move(type);
  e.values = std::move(values);
  audit_->Emit(std::move(e));
}

std::shared_ptr<remediation::RemediationEngine> App::ConfigureRemediation(const Config& config,
                                                                          bool libvirt_changed) {
  std::lock_guard lock(remediation_mu_);
  const bool wanted = config.remediation.enabled && config.Collector(CollectorId::kLibvirt).enabled;
  if (remediation_ && wanted && !libvirt_changed) {
    remediation_->SetPolicy(config.remediation);
    return nullptr;
  }
  std::shared_ptr<remediation::RemediationEngine> old = std::move(remediation_);
  remediation_.reset();
  if (wanted) {
    // Its own libvirt connection (opened at the first attempt): remediation
    // calls never queue behind the collector's guest calls.
    auto api = std::make_shared<libvirt::RealLibvirtApi>(config.libvirt, clock_);
    remediation_ = std::make_shared<remediation::RemediationEngine>(
        config.remediation, clock_, std::move(api), audit_,
        [this](const std::string& uuid, RemediationResult result) {
          store_.RecordRemediation(uuid, result);
          poller_->PublishNow();
        });
    spdlog::info("remediation: enabled (dry_run={}, threshold={} s, min_interval={} s)",
                 config.remediation.dry_run, config.remediation.threshold_s,
                 config.remediation.min_interval_s);
  }
  return old;
}

App::~App() { Stop(); }

std::vector<PollerEntry> App::BuildEntries(const Config& config) {
  std::vector<PollerEntry> entries;
  std::map<CollectorId, std::shared_ptr<Collector>> next;
  for (const auto& def : CollectorTable()) {
    const auto& cc = config.Collector(def.id);
    if (!cc.enabled) continue;
    // Reuse the running instance when the sections it reads did not change,
    // so connections and per-domain state survive a reload.
    auto it = instances_.find(def.id);
    std::shared_ptr<Collector> instance =
        it != instances_.end() && CollectorSettingsEqual(def.id, config_, config)
            ? it->second
            : MakeCollector(def.id, config, clock_);
    next[def.id] = instance;
    entries.push_back({instance, cc});
  }
  instances_ = std::move(next);
  return entries;
}

void App::PublishReload(bool successful) {
  ReloadStatus rs;
  rs.last_successful = successful;
  rs.source = config_.source;
  // A failed reload keeps the time of the last success (kept here, under
  // reload_mu_ or before the poller starts, not read back from a snapshot).
  if (successful) last_reload_success_real_ns_ = clock_.RealtimeNs();
  rs.last_success_real_ns = last_reload_success_real_ns_;
  store_.SetReload(rs);
  // Built and published under the poller's lock, after the store has the
  // status: a poller publish built before SetReload can no longer land after
  // this one and hide the outcome.
  poller_->PublishNow();
}

std::shared_ptr<const Authenticator> App::MakeAuthenticator(const BasicAuth& web) const {
  for (const auto& w : web.warnings()) spdlog::warn("web config: {}", w);
  auto auth = std::make_shared<Authenticator>(web.users(), clock_);
  if (auth_) auth->KeepSuccessesFrom(*auth_);
  return auth;
}

Status App::Start() {
  auto web = BasicAuth::Load(config_.web.config_file);
  if (!web) return web.error();
  EmitHostEvent("exporter_started", {{"version", kVersion},
                                     {"revision", kRevision},
                                     {"config", config_.source},
                                     {"audit_file", config_.audit.file}});
  PublishReload(true);
  ConfigureRemediation(config_, /*libvirt_changed=*/true);
  poller_->Configure(BuildEntries(config_));
  poller_->Start();
  HttpHooks hooks;
  hooks.reload = [this] { return Reload(); };
  hooks.ready = [this] { return poller_->FirstRoundDone(); };
  hooks.lifecycle = flags_.enable_lifecycle;
  hooks.events = [this](std::string_view query) { return ServeEvents(*audit_, query); };
  auth_ = MakeAuthenticator(*web);
  auto http = HttpServer::Start(config_.web, auth_, snapshots_, std::move(hooks));
  if (!http) return http.error();
  http_ = std::move(*http);
  std::string ports;
  for (int p : http_->ListeningPorts()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  spdlog::info("listening on address={} port={} telemetry_path={} config={} lifecycle={}",
               config_.web.listen_address, ports, config_.web.telemetry_path, config_.source,
               flags_.enable_lifecycle ? "on" : "off");
  return Status::Ok();
}

Status App::Reload() {
  // Collectors the new table replaced: destroyed after the reload is
  // published and reload_mu_ released (their destructors may wait up to
  // their pools' grace period for calls blocked in libvirt).
  std::vector<std::shared_ptr<Collector>> retired;
  std::unique_lock lock(reload_mu_);
  // SIGHUP also tells the trail writer to reopen audit.file (logrotate's
  // rename + create), whether or not the new configuration loads.
  audit_->Reopen();
  // Both files are read and validated before anything changes: a broken
  // config or web config file refuses the whole reload.
  auto next = LoadEffectiveConfig(flags_);
  Result<BasicAuth> web =
      next ? BasicAuth::Load(next->web.config_file) : Result<BasicAuth>(next.error());
  if (!next || !web) {
    const Error& e = !next ? next.error() : web.error();
    spdlog::error("config reload failed, keeping the running configuration: {}", e.message);
    EmitHostEvent("config_reloaded", {{"successful", false}, {"error", e.message}});
    PublishReload(false);
    return e;
  }
  if (next->web.listen_address != config_.web.listen_address ||
      next->web.telemetry_path != config_.web.telemetry_path ||
      next->web.allowed_hosts != config_.web.allowed_hosts) {
    spdlog::warn("config reload: web.* changes take effect only after a restart");
    next->web.listen_address = config_.web.listen_address;
    next->web.telemetry_path = config_.web.telemetry_path;
  }
  if (http_) {
    // Certificates and key are re-read now; a bad one refuses the reload.
    Status tls = http_->ReloadTls();
    if (!tls) {
      spdlog::error("config reload failed, keeping the running configuration: {}", tls.message());
      EmitHostEvent("config_reloaded", {{"successful", false}, {"error", tls.message()}});
      PublishReload(false);
      return tls;
    }
  }
  // The new authenticator replaces the old one in one step. It keeps only
  // the cached successes of users whose hash is unchanged: a removed user
  // or a changed password is refused by the next request.
  if (next->audit != config_.audit) {
    spdlog::warn("config reload: audit.* changes take effect only after a restart");
    next->audit = config_.audit;
  }
  auth_ = MakeAuthenticator(*web);
  if (http_) http_->SetAuthenticator(auth_);
  store_.SetConfig(*next);
  std::shared_ptr<remediation::RemediationEngine> old_engine =
      ConfigureRemediation(*next, !(next->libvirt == config_.libvirt));
  retired = poller_->Configure(BuildEntries(*next));
  config_ = std::move(*next);
  EmitHostEvent("config_reloaded", {{"successful", true}, {"config", config_.source}});
  PublishReload(true);
  spdlog::info("config reloaded from {} (web config: {}, {} basic auth users)", config_.source,
               config_.web.config_file.empty() ? "none" : config_.web.config_file,
               web->users().size());
  lock.unlock();
  old_engine.reset();  // its pool's grace period, outside every lock
  if (!retired.empty()) {
    const size_t n = retired.size();
    const int64_t start = clock_.MonotonicNs();
    retired.clear();
    spdlog::debug("config reload: {} replaced collector(s) released in {:.3f}s", n,
                  NsToSeconds(clock_.MonotonicNs() - start));
  }
  return Status::Ok();
}

void App::Stop(bool close_http) {
  if (close_http) {
    // civetweb's mg_stop waits for its master thread's poll period (up to
    // about a second); main skips it at exit, where the kernel closes the socket.
    http_.reset();
  }
  if (poller_) poller_->Stop();
  std::shared_ptr<remediation::RemediationEngine> engine;
  {
    std::lock_guard lock(remediation_mu_);
    engine = std::move(remediation_);
  }
  engine.reset();  // its attempts end (or are abandoned) before the trail closes
  if (audit_ && !stopped_event_) {
    stopped_event_ = true;
    EmitHostEvent("exporter_stopped", nlohmann::json::object());
    audit_->Close();  // writes what is queued: main() exits without destructors
  }
}

std::vector<int> App::ListeningPorts() const {
  return http_ ? http_->ListeningPorts() : std::vector<int>{};
}

}  // namespace vmtime
