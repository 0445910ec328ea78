// App: the exporter's lifecycle, shared by main() and the in-process tests.
// Loads the configuration, builds the collectors from the table, runs the
// poller and the HTTP server, and reloads on request (SIGHUP, or
// POST /-/reload with --web.enable-lifecycle): the config file and the web
// config file (basic auth users) are both re-read; if either is bad the
// reload is refused, logged, and the old ones keep running.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "exporter/cli/flags.h"
#include "exporter/core/memory_trimmer.h"
#include "exporter/events/audit_sink.h"
#include "exporter/events/differ.h"
#include "exporter/exposition/snapshot_holder.h"
#include "exporter/http/server.h"
#include "exporter/poller/poller.h"
#include "exporter/remediation/engine.h"
#include "exporter/store/store.h"

namespace vmtime {

// Loads the config file named by the flags (or the built-in default) and
// applies the flag overrides. Errors name file:line:column.
Result<Config> LoadEffectiveConfig(const Flags& flags);

class App {
 public:
  App(Flags flags, Config config, const Clock& clock);
  ~App();

  // Starts the poller and the HTTP server.
  Status Start();
  // Re-reads the configuration; on error the running one is kept.
  Status Reload();
  // Stops the poller and (with close_http) the HTTP server.
  void Stop(bool close_http = true);

  std::vector<int> ListeningPorts() const;
  const SnapshotHolder& snapshots() const { return snapshots_; }
  Poller& poller() { return *poller_; }
  // The audit sink (docs/audit.md): remediation and tests emit through it.
  AuditSink& audit() { return *audit_; }

 private:
  std::vector<PollerEntry> BuildEntries(const Config& config);
  // Logs the web config's warnings and builds the authenticator for it,
  // keeping the running one's still-valid cached successes.
  std::shared_ptr<const Authenticator> MakeAuthenticator(const BasicAuth& web) const;
  // (Re)builds the remediation engine for `config` (a new one when the
  // libvirt section changed); returns the one it replaced, to be released
  // outside reload_mu_.
  std::shared_ptr<remediation::RemediationEngine> ConfigureRemediation(const Config& config,
                                                                       bool libvirt_changed);
  // Records the outcome of a (re)load and publishes a snapshot showing it.
  void PublishReload(bool successful);
  // Publishes `s` after turning what changed since the last one into audit
  // events (runs on the poller's publishing path, under its lock).
  void OnSnapshot(std::shared_ptr<const Snapshot> s);
  void EmitHostEvent(std::string type, nlohmann::json values);

  Flags flags_;
  Config config_;
  const Clock& clock_;
  std::mutex reload_mu_;
  SnapshotHolder snapshots_;
  Store store_;
  // Before poller_ and remediation_ (destroyed after them): the poller's
  // publishes and the remediation engine's attempts feed it.
  std::shared_ptr<AuditSink> audit_;
  // Before poller_ (destroyed after it): every publish pokes it.
  MemoryTrimmer trimmer_;
  DifferState differ_;          // guarded by the poller's publishing lock
  bool stopped_event_ = false;  // exporter_stopped emitted
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<HttpServer> http_;
  std::shared_ptr<const Authenticator> auth_;  // the one http_ uses
  std::map<CollectorId, std::shared_ptr<Collector>> instances_;
  // Remediation (issue 15 item 3): its events go to audit_. The engine is
  // reached from the poller's publish callback under remediation_mu_ (a leaf
  // apart from the engine's own lock); it is destroyed before the poller.
  std::mutex remediation_mu_;
  std::shared_ptr<remediation::RemediationEngine> remediation_;
  int64_t last_reload_success_real_ns_ = 0;  // guarded by reload_mu_ (after Start)
};

}  // namespace vmtime
