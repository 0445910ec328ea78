#include "exporter/app/app.h"

#include <spdlog/spdlog.h>

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
  auto auth = BasicAuth::Load(config->web.config_file);
  if (!auth) return auth.error();
  return config;
}

App::App(Flags flags, Config config, const Clock& clock)
    : flags_(std::move(flags)), config_(std::move(config)), clock_(clock), store_(config_) {
  poller_ = std::make_unique<Poller>(
      clock_, store_, [this](std::shared_ptr<const Snapshot> s) { snapshots_.Set(std::move(s)); });
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
  // A failed reload keeps the time of the last success.
  rs.last_success_real_ns =
      successful ? clock_.RealtimeNs() : snapshots_.Get()->reload.last_success_real_ns;
  store_.SetReload(rs);
  snapshots_.Set(store_.Build(clock_.MonotonicNs(), clock_.RealtimeNs()));
}

Status App::Start() {
  auto auth = BasicAuth::Load(config_.web.config_file);
  if (!auth) return auth.error();
  PublishReload(true);
  poller_->Configure(BuildEntries(config_));
  poller_->Start();
  HttpHooks hooks;
  hooks.reload = [this] { return Reload(); };
  hooks.ready = [this] { return poller_->FirstRoundDone(); };
  auto http = HttpServer::Start(config_.web, std::move(*auth), snapshots_, std::move(hooks));
  if (!http) return http.error();
  http_ = std::move(*http);
  std::string ports;
  for (int p : http_->ListeningPorts()) ports += (ports.empty() ? "" : ",") + std::to_string(p);
  spdlog::info("listening on address={} port={} telemetry_path={} config={}",
               config_.web.listen_address, ports, config_.web.telemetry_path, config_.source);
  return Status::Ok();
}

Status App::Reload() {
  std::lock_guard lock(reload_mu_);
  auto next = LoadEffectiveConfig(flags_);
  if (!next) {
    spdlog::error("config reload failed, keeping the running configuration: {}",
                  next.error().message);
    PublishReload(false);
    return next.error();
  }
  if (next->web.listen_address != config_.web.listen_address ||
      next->web.telemetry_path != config_.web.telemetry_path) {
    spdlog::warn("config reload: web.* changes take effect only after a restart");
    next->web = config_.web;
  }
  store_.SetConfig(*next);
  poller_->Configure(BuildEntries(*next));
  config_ = std::move(*next);
  PublishReload(true);
  spdlog::info("config reloaded from {}", config_.source);
  return Status::Ok();
}

void App::Stop(bool close_http) {
  if (close_http) {
    // civetweb's mg_stop waits for its master thread's poll period (up to
    // about a second); main skips it at exit, where the kernel closes the socket.
    http_.reset();
  }
  if (poller_) poller_->Stop();
}

std::vector<int> App::ListeningPorts() const {
  return http_ ? http_->ListeningPorts() : std::vector<int>{};
}

}  // namespace vmtime
