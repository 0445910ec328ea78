// ResponseBody: a /metrics body as a list of shared, immutable parts.
//
// The gzip body of a snapshot is made of compressed pieces that the next
// snapshot's body mostly reuses (gzip_body.h). Copying them into one
// contiguous string kept the body twice in memory (1.7 MB at 10,000 VMs,
// and the previous body beside it until the last request sending it was
// done: docs/performance.md, "Memory at 10,000 VMs"). A ResponseBody
// instead holds a reference to each part, in order; the HTTP server writes
// the parts one after the other. A part is never changed once made, so a
// body stays valid for the requests still sending it while newer bodies are
// made.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace vmtime::exposition {

// The allocator of a body's list of parts: blocks of kMapFromBytes or more
// are mapped (mmap) and unmapped when freed. A 10,000-VM gzip body has
// about 3,300 parts (53 KB of list), and a body is made up to 4 times a
// second: below glibc's mmap threshold (1 MiB, main.cc) such blocks would
// come and go between the arena's long-lived blocks and fragment it.
template <typename T>
struct PartListAllocator {
  static constexpr size_t kMapFromBytes = 16 * 1024;
  using value_type = T;
  PartListAllocator() = default;
  template <typename U>
  PartListAllocator(const PartListAllocator<U>&) {}  // NOLINT(google-explicit-constructor)
  T* allocate(size_t n) { return static_cast<T*>(AllocateBlock(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { FreeBlock(p, n * sizeof(T)); }
  bool operator==(const PartListAllocator&) const { return true; }

 private:
  static void* AllocateBlock(size_t bytes);
  static void FreeBlock(void* p, size_t bytes);
};

class ResponseBody {
 public:
  using Part = std::shared_ptr<const std::string>;

  ResponseBody() = default;
  // One part holding `text`.
  explicit ResponseBody(std::string text);

  // Appends `part` (null or empty parts are left out).
  void Append(Part part);
  void Reserve(size_t parts) { parts_.reserve(parts); }

  // The body's length in bytes: the parts' sizes summed.
  size_t size() const { return size_; }
  std::span<const Part> parts() const { return {parts_.data(), parts_.size()}; }
  // The body's bytes in one string (tests and tools; the server writes the
  // parts).
  std::string Flatten() const;

 private:
  std::vector<Part, PartListAllocator<Part>> parts_;
  size_t size_ = 0;
};

}  // namespace vmtime::exposition
