// MetadataReader: reads each domain's group and labels from its libvirt
// metadata (domain_metadata.h) without ever holding up the libvirt
// collector.
//
// - When read: once when a domain is first listed, again on its
//   metadata-change event (urgent) and for every domain after libvirt
//   reconnects (events may have been missed meanwhile). Never per round: at
//   10,000 domains a round reads nothing unless something changed.
// - Where: on a WorkerPool of its own (one worker, deadline
//   libvirt.call_deadline per read, one abandoned call tolerated), so a slow
//   or hung libvirtd delays only metadata; Collect and Harvest only copy
//   what has been read.
// - What is handed out: TakeChanged() returns the domains whose metadata
//   differs from what was last handed out (a domain never read counts as
//   having none, so domains without metadata are never news); the collector
//   puts them into LibvirtObservation::metadata and the store keeps them.
// - Bad metadata: XML that is not well-formed counts as no metadata; entries
//   that break the rules are left out. Either is logged once per domain and
//   content (a warning naming the domain and every problem), not per round.
// Time is read only through the injected Clock; the pool's watchdog runs on
// its own thread in production (background_tick) and by hand in tests.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "exporter/collectors/libvirt/libvirt_api.h"
#include "exporter/core/clock.h"
#include "exporter/model/observations.h"

namespace vmtime::libvirt {

struct MetadataOptions {
  bool vmtime = true;  // libvirt.metadata: the project's namespace
  bool nova = false;   // libvirt.nova_metadata: OpenStack Nova's
  double call_deadline_s = 5;
  bool background_tick = true;  // tests: false, and call Tick() themselves
};

class MetadataReader {
 public:
  MetadataReader(const Clock& clock, std::shared_ptr<LibvirtApi> api, MetadataOptions options);
  // Shuts the pool down; a read still blocked in libvirt is left behind and
  // touches nothing of the reader.
  ~MetadataReader();
  MetadataReader(const MetadataReader&) = delete;
  MetadataReader& operator=(const MetadataReader&) = delete;

  // A fresh domain list: queues reads for new domains (all of them after a
  // reconnect, `connection_generation` changed) and forgets vanished ones.
  void Reconcile(const std::vector<DomainInfo>& domains, uint64_t connection_generation);
  // The metadata-change event: re-read this domain first.
  void Invalidate(const std::string& uuid, const std::string& name);
  // Domains whose metadata changed since the last call, by uuid.
  std::vector<std::pair<SharedString, DomainMetadata>> TakeChanged();
  // Called (from the reader's worker) when a change is stored.
  void SetWakeup(std::function<void()> wake);
  // The pool's watchdog pass (tests without background_tick).
  void Tick();
  // Tests: waits (bounded, real time) until no read is queued or running.
  bool WaitIdle(std::chrono::milliseconds timeout);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace vmtime::libvirt
