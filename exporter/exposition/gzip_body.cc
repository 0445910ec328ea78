// The incremental gzip body of /metrics (see the header).
#include "exporter/exposition/gzip_body.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <functional>
#include <random>
#include <span>
#include <string_view>
#include <utility>

#include "exporter/exposition/metrics.h"
#include "exporter/exposition/text_writer.h"
#include "exporter/exposition/vm_metrics.h"

namespace vmtime::exposition {
namespace {

// RFC 1952 member header: ID1 ID2, CM deflate, no flags, MTIME 0, XFL, OS
// Unix (what zlib's gzip wrapper writes).
std::string GzipHeader(int level) {
  const char xfl = level == 1 ? 4 : (level == 9 ? 2 : 0);
  return std::string{'\x1f', '\x8b', '\x08', '\0', '\0', '\0', '\0', '\0', xfl, '\x03'};
}

void AppendLe32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
}

// The VM index ranges [begin, end) of the chunks (see the header).
std::vector<std::pair<size_t, size_t>> ChunkRanges(const std::vector<VmView>& vms,
                                                   size_t chunk_vms) {
  std::vector<std::pair<size_t, size_t>> ranges;
  ranges.reserve(vms.size() / chunk_vms + 1);
  const std::hash<std::string_view> hash;
  size_t begin = 0;
  for (size_t i = 1; i <= vms.size(); ++i) {
    if (i < vms.size() && i - begin < 4 * chunk_vms && hash(vms[i].uuid) % chunk_vms != 0) {
      continue;
    }
    ranges.emplace_back(begin, i);
    begin = i;
  }
  return ranges;
}

// The 128-bit product of `x` and `y`, its halves xored.
uint64_t Fold(uint64_t x, uint64_t y) {
  const unsigned __int128 product = static_cast<unsigned __int128>(x) * y;
  return static_cast<uint64_t>(product) ^ static_cast<uint64_t>(product >> 64);
}

uint64_t Load64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// A bijective avalanche of 64 bits (xorshift-multiply rounds).
uint64_t Finalise(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

// The digest's random words: std::random_device (the kernel's getrandom on
// Linux), or, if it cannot be read, the clock and an address mixed.
std::array<uint64_t, 4> RandomSeed(const void* self) {
  std::array<uint64_t, 4> seed{};
  try {
    std::random_device device;
    for (uint64_t& word : seed) word = (uint64_t{device()} << 32) ^ device();
  } catch (const std::exception&) {
    uint64_t h =
        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^
        reinterpret_cast<uintptr_t>(self);
    for (uint64_t& word : seed) word = h = Finalise(h + 0x9e3779b97f4a7c15ULL);
  }
  return seed;
}

// The heap bytes behind `s` (none while it fits in the string itself).
size_t HeapBytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

// What make_shared<const std::string> allocates besides the characters:
// the control block's two counts and vtable pointer, and the string.
constexpr size_t kSharedStringBytes = 2 * sizeof(int) + sizeof(void*) + sizeof(std::string);

}  // namespace

// One raw-deflate stream state, reset for every piece.
class GzipBody::Deflater {
 public:
  explicit Deflater(int level) {
    ok_ = deflateInit2(&zs_, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK;
  }
  ~Deflater() {
    if (ok_) deflateEnd(&zs_);
  }
  Deflater(const Deflater&) = delete;
  Deflater& operator=(const Deflater&) = delete;
  bool ok() const { return ok_; }

  // `text` as a piece: raw deflate ending in a sync flush, CRC-32, length.
  Status Compress(std::string_view text, Piece& piece) {
    piece.text_bytes = text.size();
    piece.crc =
        static_cast<uint32_t>(crc32_z(0, reinterpret_cast<const Bytef*>(text.data()), text.size()));
    piece.deflated.reset();
    if (text.empty()) return Status();
    if (deflateReset(&zs_) != Z_OK) return Error{"gzip: deflateReset failed"};
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs_.avail_in = static_cast<uInt>(text.size());  // a piece is far below 4 GiB
    std::string out(deflateBound(&zs_, text.size()) + 16, '\0');
    size_t used = 0;
    for (;;) {
      zs_.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      zs_.avail_out = static_cast<uInt>(out.size() - used);
      const int rc = deflate(&zs_, Z_SYNC_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Error{"gzip: deflate failed (zlib error " + std::to_string(rc) + ")"};
      }
      used = out.size() - zs_.avail_out;
      if (zs_.avail_in == 0 && zs_.avail_out != 0) break;  // all in, flush complete
      out.resize(out.size() * 2);
    }
    out.resize(used);
    out.shrink_to_fit();
    piece.deflated = std::make_shared<const std::string>(std::move(out));
    return Status();
  }

 private:
  z_stream zs_{};
  bool ok_ = false;
};

GzipBody::GzipBody(int level, size_t chunk_vms)
    : level_(level),
      chunk_vms_(std::max<size_t>(chunk_vms, 1)),
      seed_(RandomSeed(this)),
      deflater_(std::make_unique<Deflater>(level)) {}
GzipBody::~GzipBody() = default;

GzipBody::KeyDigest GzipBody::KeyDigestOf(std::string_view bytes) const {
  // Two chains (see the header); the odd multipliers are the 64-bit golden
  // ratio and a splitmix64 constant.
  constexpr uint64_t kMulA = 0x9e3779b97f4a7c15ULL, kMulB = 0xbf58476d1ce4e5b9ULL;
  uint64_t a = seed_[0], b = seed_[2];
  const auto step = [&](uint64_t w0, uint64_t w1) {
    a = (std::rotl(a, 23) * kMulA) ^ Fold(w0 ^ seed_[0], w1 ^ seed_[1]);
    b = (std::rotl(b, 41) * kMulB) ^ Fold(w0 ^ seed_[2], w1 ^ seed_[3]);
  };
  const char* p = bytes.data();
  size_t left = bytes.size();
  for (; left >= 16; p += 16, left -= 16) step(Load64(p), Load64(p + 8));
  char tail[16] = {};  // the last 0-15 bytes, zero-padded (the length tells them apart)
  std::memcpy(tail, p, left);
  step(Load64(tail), Load64(tail + 8));
  const auto size = static_cast<uint64_t>(bytes.size());
  return KeyDigest{Finalise(a ^ size), Finalise(b ^ std::rotl(size, 32))};
}

Result<ResponseBody> GzipBody::Make(const Snapshot& s) {
  if (!deflater_->ok())
    return Error{"gzip: deflateInit2 failed at level " + std::to_string(level_)};
  try {
    return MakeBody(s);
  } catch (const std::exception& e) {
    chunks_.clear();  // start over next time
    index_.clear();
    return Error{std::string("gzip: ") + e.what()};
  }
}

Status GzipBody::MakeChunk(const Snapshot& s, std::span<const VmView> vms, std::string& text,
                           Chunk& chunk) {
  const std::span<const VmFamily> families = VmFamilies();
  chunk.pieces.assign(families.size(), Piece{});
  for (size_t f = 0; f < families.size(); ++f) {
    if (!FamilyWanted(s, families[f])) continue;
    text.clear();
    AppendVmFamilySamples(families[f], vms, text);
    if (auto st = deflater_->Compress(text, chunk.pieces[f]); !st.ok()) return st;
  }
  ++chunks_made_;
  return Status();
}

Status GzipBody::UpdateChunks(const Snapshot& s) {
  std::vector<Chunk> old = std::move(chunks_);
  auto old_index = std::move(index_);
  chunks_.clear();
  index_.clear();
  chunks_made_ = 0;
  if (!s.libvirt_enabled) return Status();
  const auto ranges = ChunkRanges(s.vms, chunk_vms_);
  chunks_.reserve(ranges.size());
  index_.reserve(ranges.size());
  std::string text, key;
  for (const auto& [begin, end] : ranges) {
    const std::span<const VmView> vms(s.vms.data() + begin, end - begin);
    key.clear();
    key += s.component_scores ? '\1' : '\0';
    for (const VmView& vm : vms) AppendVmExpositionKey(vm, s.component_scores, key);
    const SharedString& first = vms.front().uuid;
    // Two chunks start with the same uuid only when libvirt lists a uuid
    // twice; only the first of them is looked up (the other is made anew).
    index_.try_emplace(first, chunks_.size());
    const auto was = old_index.find(first);
    const KeyDigest digest = KeyDigestOf(key);
    if (was != old_index.end() && !old[was->second].pieces.empty() &&
        old[was->second].digest == digest) {
      chunks_.push_back(std::move(old[was->second]));  // unchanged: reused as it is
      old[was->second].pieces.clear();
      continue;
    }
    Chunk& chunk = chunks_.emplace_back();
    chunk.digest = digest;
    if (auto st = MakeChunk(s, vms, text, chunk); !st.ok()) return st;
  }
  return Status();
}

size_t GzipBody::retained_bytes() const {
  size_t bytes = chunks_.capacity() * sizeof(Chunk);
  for (const Chunk& c : chunks_) {
    bytes += c.pieces.capacity() * sizeof(Piece);
    for (const Piece& p : c.pieces) {
      // The shared text: its control block and string (one allocation,
      // make_shared) and its characters.
      if (p.deflated) bytes += kSharedStringBytes + HeapBytes(*p.deflated);
    }
  }
  // One node per entry (next pointer, the pair, the cached hash) and the
  // buckets; the uuid's text is shared with the snapshot's.
  bytes += index_.bucket_count() * sizeof(void*);
  bytes += index_.size() * (sizeof(void*) + sizeof(decltype(index_)::value_type) + sizeof(size_t));
  return bytes;
}

Result<ResponseBody> GzipBody::MakeBody(const Snapshot& s) {
  if (auto st = UpdateChunks(s); !st.ok()) {
    chunks_.clear();  // start over next time
    index_.clear();
    return st.error();
  }
  // The host section (heads[0]) and the HELP/TYPE lines of each family with
  // a sample (heads[1 + f]) are compressed anew; the chunks' pieces are
  // referred to, not copied.
  const std::span<const VmFamily> families = VmFamilies();
  std::vector<Piece> heads(1 + families.size());
  std::string text;
  AppendHostText(s, text);
  if (auto st = deflater_->Compress(text, heads[0]); !st.ok()) return st.error();
  ResponseBody out;
  out.Reserve(3 + families.size() * (1 + chunks_.size()));
  out.Append(std::make_shared<const std::string>(GzipHeader(level_)));
  uint32_t crc = 0;
  uint64_t total = 0;
  const auto add = [&](const Piece& p) {
    out.Append(p.deflated);
    crc = static_cast<uint32_t>(crc32_combine(crc, p.crc, static_cast<z_off_t>(p.text_bytes)));
    total += p.text_bytes;
  };
  add(heads[0]);
  for (size_t f = 0; f < families.size(); ++f) {
    if (!FamilyWanted(s, families[f])) continue;
    const bool any = std::any_of(chunks_.begin(), chunks_.end(),
                                 [f](const Chunk& c) { return c.pieces[f].text_bytes > 0; });
    if (!any) continue;  // no sample: no HELP/TYPE either (as RenderText)
    text.clear();
    AppendFamilyHeader(text, families[f].name, families[f].help, families[f].type);
    if (auto st = deflater_->Compress(text, heads[1 + f]); !st.ok()) return st.error();
    add(heads[1 + f]);
    for (const Chunk& c : chunks_) add(c.pieces[f]);
  }
  std::string trailer = {'\x03', '\0'};  // an empty final block (fixed Huffman codes)
  AppendLe32(trailer, crc);
  AppendLe32(trailer, static_cast<uint32_t>(total));  // ISIZE: the length modulo 2^32
  out.Append(std::make_shared<const std::string>(std::move(trailer)));
  return out;
}

}  // namespace vmtime::exposition
