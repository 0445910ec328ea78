// See response_body.h.
#include "exporter/exposition/response_body.h"

#include <sys/mman.h>

#include <new>
#include <utility>

namespace vmtime::exposition {

template <typename T>
void* PartListAllocator<T>::AllocateBlock(size_t bytes) {
  if (bytes < kMapFromBytes) return ::operator new(bytes);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return p;
}

template <typename T>
void PartListAllocator<T>::FreeBlock(void* p, size_t bytes) {
  if (bytes < kMapFromBytes) {
    ::operator delete(p);
  } else {
    munmap(p, bytes);
  }
}

template struct PartListAllocator<ResponseBody::Part>;

ResponseBody::ResponseBody(std::string text) {
  Append(std::make_shared<const std::string>(std::move(text)));
}

void ResponseBody::Append(Part part) {
  if (!part || part->empty()) return;
  size_ += part->size();
  parts_.push_back(std::move(part));
}

std::string ResponseBody::Flatten() const {
  std::string out;
  out.reserve(size_);
  for (const Part& p : parts_) out += *p;
  return out;
}

}  // namespace vmtime::exposition
