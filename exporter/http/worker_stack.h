// Worker stacks: hand back the pages a deep request left behind.
//
// civetweb runs one thread per open connection (512 workers, README
// "Connection limits"). A worker's stack keeps every page its deepest
// request ever touched: 8 KiB idle, 24 KiB once it has served a request,
// about 56 KiB for /metrics, whose 32 KiB write buffer is on the stack
// (docs/performance.md, "HTTP connections"), and connections land on any
// idle worker, so a long-running exporter ends up with all 512 at their
// deepest: about 8 MiB that no request is using. When a connection closes,
// the worker is shallow again (civetweb calls connection_close from its
// worker loop); ReleaseStackBelow then returns the pages below the current
// frame to the kernel (madvise MADV_DONTNEED: the next request that goes as
// deep faults them in again, zero-filled, a few microseconds). Linux only.
#pragma once

#include <cstddef>

namespace vmtime {

// Bytes of the calling thread's stack kept below the current frame: more
// than the release's own call into madvise uses, and no more, so that a
// worker that served requests keeps the pages of an idle one (what the rest
// of the close path and the next request touch below that is faulted in
// again, a page at a time). 8 KiB until 2026-12-02: a served worker then
// kept 2 pages more than an idle one (docs/performance.md, "HTTP
// connections").
inline constexpr size_t kStackKeepBelowBytes = 1024;

// Releases the calling thread's stack pages more than `keep_below` bytes
// below its current frame. Returns the bytes of address range released (0
// when there is none, or the thread's stack bounds are unknown). Must not be
// called on the process's main thread (its stack grows on demand).
size_t ReleaseStackBelow(size_t keep_below = kStackKeepBelowBytes);

}  // namespace vmtime
