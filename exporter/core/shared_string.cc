#include "exporter/core/shared_string.h"

#include <cstring>
#include <limits>
#include <new>
#include <ostream>
#include <stdexcept>

namespace vmtime {

SharedString::SharedString(std::string_view s) {
  if (s.empty()) return;
  if (s.size() >= std::numeric_limits<uint32_t>::max()) {
    throw std::length_error("SharedString: text over 4 GiB");
  }
  void* block = ::operator new(sizeof(Rep) + s.size() + 1);
  rep_ = new (block) Rep{{1}, static_cast<uint32_t>(s.size())};
  std::memcpy(rep_->text(), s.data(), s.size());
  rep_->text()[s.size()] = '\0';
}

SharedString& SharedString::operator=(const SharedString& o) noexcept {
  if (rep_ != o.rep_) {
    o.Ref();
    Unref();
    rep_ = o.rep_;
  }
  return *this;
}

SharedString& SharedString::operator=(SharedString&& o) noexcept {
  if (this != &o) {
    Unref();
    rep_ = o.rep_;
    o.rep_ = nullptr;
  }
  return *this;
}

void SharedString::Unref() noexcept {
  if (rep_ == nullptr) return;
  // The last reference frees: acquire so that no use by another thread's
  // copy is reordered after the free (as shared_ptr does).
  if (rep_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    rep_->~Rep();
    ::operator delete(rep_);
  }
  rep_ = nullptr;
}

std::ostream& operator<<(std::ostream& os, const SharedString& s) { return os << s.view(); }

}  // namespace vmtime
