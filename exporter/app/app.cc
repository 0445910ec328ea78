#include "exporter/app/app.h"

#include <spdlog/spdlog.h>

#include "exporter/collectors/libvirt/real_libvirt_api.h"
#include "exporter/collectors/registry.h"
#include "exporter/config/libvirt_uri.h"

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

App::App(Flags flags, Config config, const Clock& clock)
    : flags_(std::move(flags)), config_(std::move(config)), clock_(clock), store_(config_) {
  poller_ = std::make_unique<Poller>(clock_, store_, [this](std::shared_ptr<const Snapshot> s) {
    snapshots_.Set(s);
    // Under remediation_mu_, so the engine is never released on this
    // thread (under the poller's lock); OnSnapshot only queues a decision.
    std::lock_guard lock(remediation_mu_);
    if (remediation_) remediation_->OnSnapshot(std::move(s));
  });
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
        config.remediation, clock_, std::move(api), event_sink_,
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
  PublishReload(true);
  ConfigureRemediation(config_, /*libvirt_changed=*/true);
  poller_->Configure(BuildEntries(config_));
  poller_->Start();
  HttpHooks hooks;
  hooks.reload = [this] { return Reload(); };
  hooks.ready = [this] { return poller_->FirstRoundDone(); };
  hooks.lifecycle = flags_.enable_lifecycle;
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
  // Both files are read and validated before anything changes: a broken
  // config or web config file refuses the whole reload.
  auto next = LoadEffectiveConfig(flags_);
  Result<BasicAuth> web =
      next ? BasicAuth::Load(next->web.config_file) : Result<BasicAuth>(next.error());
  if (!next || !web) {
    const Error& e = !next ? next.error() : web.error();
    spdlog::error("config reload failed, keeping the running configuration: {}", e.message);
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
      PublishReload(false);
      return tls;
    }
  }
  // The new authenticator replaces the old one in one step. It keeps only
  // the cached successes of users whose hash is unchanged: a removed user
  // or a changed password is refused by the next request.
  auth_ = MakeAuthenticator(*web);
  if (http_) http_->SetAuthenticator(auth_);
  store_.SetConfig(*next);
  std::shared_ptr<remediation::RemediationEngine> old_engine =
      ConfigureRemediation(*next, !(next->libvirt == config_.libvirt));
  retired = poller_->Configure(BuildEntries(*next));
  config_ = std::move(*next);
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
}

std::vector<int> App::ListeningPorts() const {
  return http_ ? http_->ListeningPorts() : std::vector<int>{};
}

}  // namespace vmtime
