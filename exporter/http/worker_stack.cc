#include "exporter/http/worker_stack.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

namespace vmtime {

namespace {

struct StackBounds {
  uintptr_t low = 0;  // lowest usable address (above any guard page)
  bool known = false;
};

StackBounds ThisThreadStack() {
  // Looked up once per thread: pthread_getattr_np is cheap for threads the
  // process created, and the bounds never change.
  thread_local StackBounds bounds = [] {
    StackBounds b;
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) != 0) return b;
    void* addr = nullptr;
    size_t size = 0;
    if (pthread_attr_getstack(&attr, &addr, &size) == 0 && addr != nullptr && size > 0) {
      b.low = reinterpret_cast<uintptr_t>(addr);
      b.known = true;
    }
    pthread_attr_destroy(&attr);
    return b;
  }();
  return bounds;
}

}  // namespace

size_t ReleaseStackBelow(size_t keep_below) {
  const StackBounds b = ThisThreadStack();
  if (!b.known) return 0;
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  volatile char marker = 0;  // an address in the current frame
  const auto sp = reinterpret_cast<uintptr_t>(&marker);
  if (sp < b.low + keep_below) return 0;
  const uintptr_t low = (b.low + page - 1) / page * page;
  const uintptr_t high = (sp - keep_below) / page * page;
  if (high <= low) return 0;
  if (madvise(reinterpret_cast<void*>(low), high - low, MADV_DONTNEED) != 0) return 0;
  return high - low;
}

}  // namespace vmtime
