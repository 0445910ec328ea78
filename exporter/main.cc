// vmtime_exporter: entry point. Flags, logging, configuration, signals.
// Exit codes: 0 clean stop, 1 runtime failure (cannot listen), 2 bad flags
// or configuration (the message names file:line:column).
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "exporter/app/app.h"
#include "exporter/core/build_info.h"
#include "exporter/core/log.h"

int main(int argc, char** argv) {
  using namespace vmtime;
  // Bounded memory, by measurement (docs/performance.md, "/metrics side by
  // side", "Memory at 10,000 VMs, steady state"): one malloc arena instead
  // of one per HTTP thread (two left 10 MiB more free memory resident at
  // 10,000 VMs, fragmented between long-lived and per-publish blocks), and
  // blocks of 1 MiB or more (a rendered /metrics body, the JSON view)
  // always mmapped, so freeing one returns it to the system instead of
  // leaving its peak resident in an arena (a fixed threshold also stops
  // glibc from raising it to the size of the last freed body). With up to
  // 512 HTTP workers (README "Connection limits") glibc would otherwise make
  // up to 8 arenas per core. MALLOC_ARENA_MAX / MALLOC_MMAP_THRESHOLD_ in the
  // environment win.
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 1);
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 1 << 20);
  auto outcome = ParseFlags(argc, argv, std::cout, std::cerr);
  if (outcome.exit_code) return *outcome.exit_code;
  const Flags& flags = outcome.flags;
  if (flags.show_default) {
    std::cout << DefaultConfigYaml();
    return 0;
  }
  if (Status st = SetupLogging(flags.log_level, flags.log_format); !st.ok()) {
    std::cerr << "vmtime_exporter: " << st.message() << "\n";
    return 2;
  }
  auto config = LoadEffectiveConfig(flags);
  if (!config) {
    std::cerr << "vmtime_exporter: invalid configuration: " << config.error().message << "\n";
    return 2;
  }
  if (flags.config_check) {
    std::cout << "configuration OK: " << config->source << "\n";
    return 0;
  }

  // Signals are handled by this thread only (sigwait); block them before
  // any other thread starts so they inherit the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  spdlog::info("starting vmtime_exporter version={} revision={}", kVersion, kRevision);
  App app(flags, std::move(*config), SystemClock::Instance());
  if (Status st = app.Start(); !st.ok()) {
    spdlog::error("cannot start: {}", st.message());
    app.Stop();
    return 1;
  }
  while (true) {
    int sig = 0;
    if (sigwait(&signals, &sig) != 0) continue;
    if (sig == SIGHUP) {
      spdlog::info("SIGHUP: reloading configuration");
      (void)app.Reload();
      continue;
    }
    spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    break;
  }
  app.Stop(/*close_http=*/false);
  spdlog::info("stopped");
  spdlog::shutdown();
  // The poller is stopped; threads still blocked in libvirt hold only state
  // they co-own (docs/architecture.md, "Threads and shutdown"). Skipping the
  // remaining destructors keeps the exit bounded: civetweb's mg_stop and
  // closing the libvirt connections (RPCs to libvirtd) can take seconds.
  std::_Exit(0);
}
