// The incremental gzip body of /metrics (see the header).
#include "exporter/exposition/gzip_body.h"

#include <zlib.h>

#include <algorithm>
#include <functional>
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

// The heap bytes behind `s` (none while it fits in the string itself).
size_t HeapBytes(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

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
    piece.deflated.clear();
    if (text.empty()) return Status();
    if (deflateReset(&zs_) != Z_OK) return Error{"gzip: deflateReset failed"};
    zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    zs_.avail_in = static_cast<uInt>(text.size());  // a piece is far below 4 GiB
    piece.deflated.resize(deflateBound(&zs_, text.size()) + 16);
    size_t used = 0;
    for (;;) {
      zs_.next_out = reinterpret_cast<Bytef*>(piece.deflated.data() + used);
      zs_.avail_out = static_cast<uInt>(piece.deflated.size() - used);
      const int rc = deflate(&zs_, Z_SYNC_FLUSH);
      if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return Error{"gzip: deflate failed (zlib error " + std::to_string(rc) + ")"};
      }
      used = piece.deflated.size() - zs_.avail_out;
      if (zs_.avail_in == 0 && zs_.avail_out != 0) break;  // all in, flush complete
      piece.deflated.resize(piece.deflated.size() * 2);
    }
    piece.deflated.resize(used);
    piece.deflated.shrink_to_fit();
    return Status();
  }

 private:
  z_stream zs_{};
  bool ok_ = false;
};

GzipBody::GzipBody(int level, size_t chunk_vms)
    : level_(level),
      chunk_vms_(std::max<size_t>(chunk_vms, 1)),
      deflater_(std::make_unique<Deflater>(level)) {}
GzipBody::~GzipBody() = default;

Result<std::string> GzipBody::Make(const Snapshot& s) {
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
  std::unordered_map<std::string, size_t> old_index = std::move(index_);
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
    const std::string& first = vms.front().uuid;
    // Two chunks start with the same uuid only when libvirt lists a uuid
    // twice; only the first of them is looked up (the other is made anew).
    index_.try_emplace(first, chunks_.size());
    const auto was = old_index.find(first);
    if (was != old_index.end() && !old[was->second].pieces.empty() && old[was->second].key == key) {
      chunks_.push_back(std::move(old[was->second]));  // unchanged: reused as it is
      old[was->second].pieces.clear();
      continue;
    }
    Chunk& chunk = chunks_.emplace_back();
    chunk.key = key;
    if (auto st = MakeChunk(s, vms, text, chunk); !st.ok()) return st;
  }
  return Status();
}

size_t GzipBody::retained_bytes() const {
  size_t bytes = chunks_.capacity() * sizeof(Chunk);
  for (const Chunk& c : chunks_) {
    bytes += HeapBytes(c.key) + c.pieces.capacity() * sizeof(Piece);
    for (const Piece& p : c.pieces) bytes += HeapBytes(p.deflated);
  }
  // One node per entry (next pointer, the pair, the cached hash) and the buckets.
  bytes += index_.bucket_count() * sizeof(void*);
  for (const auto& entry : index_) {
    bytes += sizeof(void*) + sizeof(entry) + sizeof(size_t) + HeapBytes(entry.first);
  }
  return bytes;
}

Result<std::string> GzipBody::MakeBody(const Snapshot& s) {
  if (auto st = UpdateChunks(s); !st.ok()) {
    chunks_.clear();  // start over next time
    index_.clear();
    return st.error();
  }
  std::string out = GzipHeader(level_);
  out.reserve(last_bytes_ + last_bytes_ / 16 + 4096);
  uint32_t crc = 0;
  uint64_t total = 0;
  const auto add = [&](const Piece& p) {
    out += p.deflated;
    crc = static_cast<uint32_t>(crc32_combine(crc, p.crc, static_cast<z_off_t>(p.text_bytes)));
    total += p.text_bytes;
  };
  std::string text;
  Piece scratch;
  AppendHostText(s, text);
  if (auto st = deflater_->Compress(text, scratch); !st.ok()) return st.error();
  add(scratch);
  const std::span<const VmFamily> families = VmFamilies();
  for (size_t f = 0; f < families.size(); ++f) {
    if (!FamilyWanted(s, families[f])) continue;
    bool any = false;
    for (const Chunk& c : chunks_) any = any || c.pieces[f].text_bytes > 0;
    if (!any) continue;  // no sample: no HELP/TYPE either (as RenderText)
    text.clear();
    AppendFamilyHeader(text, families[f].name, families[f].help, families[f].type);
    if (auto st = deflater_->Compress(text, scratch); !st.ok()) return st.error();
    add(scratch);
    for (const Chunk& c : chunks_) add(c.pieces[f]);
  }
  out += '\x03';  // an empty final block (fixed Huffman codes)
  out += '\0';
  AppendLe32(out, crc);
  AppendLe32(out, static_cast<uint32_t>(total));  // ISIZE: the length modulo 2^32
  last_bytes_ = out.size();
  return out;
}

}  // namespace vmtime::exposition
