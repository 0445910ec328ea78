// SharedString: an immutable string whose copies share one allocation.
//
// A domain's uuid and name are copied into every table that knows the
// domain (the agent scheduler, the metadata reader, libvirt's handle cache,
// the store, each snapshot, the audit differ) and into every observation
// handed between them. As std::string a 36-byte uuid costs 80 bytes per
// copy (the object and its heap block), about 0.8 MB per copy at 10,000
// domains, and each snapshot's copies were small blocks freed again at the
// next publish, scattered between long-lived ones (docs/performance.md,
// "Memory at 10,000 VMs"). A SharedString is one pointer: the text is
// allocated once, with an atomic reference count, when it first comes in
// (from libvirt's list), and copying it counts a reference. The empty
// string allocates nothing. Thread safe as a shared_ptr is: copies may be
// made and dropped on any thread; the text never changes.
#pragma once

#include <fmt/core.h>

#include <atomic>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

namespace vmtime {

class SharedString {
 public:
  SharedString() noexcept = default;
  // Implicit, so that a std::string, a literal or a view is accepted where
  // a domain's uuid or name is expected (tests, configuration).
  SharedString(std::string_view s);   // NOLINT(google-explicit-constructor)
  SharedString(const std::string& s)  // NOLINT(google-explicit-constructor)
      : SharedString(std::string_view(s)) {}
  SharedString(const char* s)  // NOLINT(google-explicit-constructor)
      : SharedString(std::string_view(s)) {}
  SharedString(const SharedString& o) noexcept : rep_(o.rep_) { Ref(); }
  SharedString(SharedString&& o) noexcept : rep_(o.rep_) { o.rep_ = nullptr; }
  SharedString& operator=(const SharedString& o) noexcept;
  SharedString& operator=(SharedString&& o) noexcept;
  ~SharedString() { Unref(); }

  std::string_view view() const noexcept {
    return rep_ == nullptr ? std::string_view() : std::string_view(rep_->text(), rep_->size);
  }
  operator std::string_view() const noexcept { return view(); }  // NOLINT
  std::string str() const { return std::string(view()); }
  // NUL-terminated.
  const char* c_str() const noexcept { return rep_ == nullptr ? "" : rep_->text(); }
  const char* data() const noexcept { return c_str(); }
  size_t size() const noexcept { return rep_ == nullptr ? 0 : rep_->size; }
  bool empty() const noexcept { return rep_ == nullptr; }
  // Drops this copy's reference: empty afterwards (the text itself never changes).
  void clear() noexcept { Unref(); }
  size_t find(std::string_view s, size_t pos = 0) const noexcept { return view().find(s, pos); }
  // Copies sharing this one's text (0 for the empty string); tests.
  uint32_t use_count() const noexcept {
    return rep_ == nullptr ? 0 : rep_->refs.load(std::memory_order_relaxed);
  }

  friend bool operator==(const SharedString& a, const SharedString& b) noexcept {
    return a.rep_ == b.rep_ || a.view() == b.view();
  }
  friend std::strong_ordering operator<=>(const SharedString& a, const SharedString& b) noexcept {
    return a.view() <=> b.view();
  }
  friend bool operator==(const SharedString& a, std::string_view b) noexcept {
    return a.view() == b;
  }
  friend std::strong_ordering operator<=>(const SharedString& a, std::string_view b) noexcept {
    return a.view() <=> b;
  }
  friend bool operator==(const SharedString& a, const std::string& b) noexcept {
    return a.view() == std::string_view(b);
  }
  friend std::strong_ordering operator<=>(const SharedString& a, const std::string& b) noexcept {
    return a.view() <=> std::string_view(b);
  }
  friend bool operator==(const SharedString& a, const char* b) noexcept {
    return a.view() == std::string_view(b);
  }
  friend std::string operator+(const std::string& a, const SharedString& b) {
    std::string out = a;
    out += b.view();
    return out;
  }
  friend std::string operator+(const SharedString& a, const std::string& b) {
    std::string out = a.str();
    out += b;
    return out;
  }
  friend std::string operator+(const char* a, const SharedString& b) {
    std::string out = a;
    out += b.view();
    return out;
  }
  friend std::string operator+(const SharedString& a, const char* b) {
    std::string out = a.str();
    out += b;
    return out;
  }

 private:
  // One block: this header, then the text and a NUL (8 + 37 bytes for a
  // uuid: a 48-byte malloc chunk, as std::string's own heap block).
  struct Rep {
    std::atomic<uint32_t> refs;
    uint32_t size;
    const char* text() const noexcept { return reinterpret_cast<const char*>(this + 1); }
    char* text() noexcept { return reinterpret_cast<char*>(this + 1); }
  };
  void Ref() const noexcept {
    if (rep_ != nullptr) rep_->refs.fetch_add(1, std::memory_order_relaxed);
  }
  void Unref() noexcept;

  Rep* rep_ = nullptr;
};

std::ostream& operator<<(std::ostream& os, const SharedString& s);

// Hash and equality for unordered containers, transparent: a table keyed by
// SharedString is looked up with a std::string or a view without a copy.
struct SharedStringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  size_t operator()(const SharedString& s) const noexcept { return (*this)(s.view()); }
  size_t operator()(const std::string& s) const noexcept { return (*this)(std::string_view(s)); }
};
struct SharedStringEqual {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};

}  // namespace vmtime

template <>
struct fmt::formatter<vmtime::SharedString> : fmt::formatter<std::string_view> {
  template <typename Context>
  auto format(const vmtime::SharedString& s, Context& ctx) const {
    return fmt::formatter<std::string_view>::format(s.view(), ctx);
  }
};
