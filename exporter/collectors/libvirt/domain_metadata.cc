// See domain_metadata.h.
#include "exporter/collectors/libvirt/domain_metadata.h"

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>

namespace vmtime::libvirt {
namespace {

// ---- a small, bounded XML reader ----

struct XmlElement {
  std::string name;                                             // local name (prefix removed)
  std::vector<std::pair<std::string, std::string>> attributes;  // local names, xmlns* left out
  std::string text;                                             // direct character data
  std::vector<std::unique_ptr<XmlElement>> children;
};

std::string_view LocalName(std::string_view qname) {
  const size_t colon = qname.rfind(':');
  return colon == std::string_view::npos ? qname : qname.substr(colon + 1);
}

bool IsNameChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || c == '-' || c == '.' || c == ':';
}
bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

void AppendUtf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class XmlReader {
 public:
  explicit XmlReader(std::string_view in) : in_(in) {}

  Result<std::unique_ptr<XmlElement>> Document() {
    if (in_.size() > kMaxMetadataBytes) {
      return Error{"metadata longer than " + std::to_string(kMaxMetadataBytes) + " bytes"};
    }
    if (!SkipMisc()) return Fail();
    if (!Peek('<')) return Fail("expected an element");
    auto root = Element(1);
    if (!root) return Fail();
    if (!SkipMisc()) return Fail();
    if (pos_ != in_.size()) return Fail("content after the root element");
    return root;
  }

 private:
  Error Fail(std::string what = {}) {
    if (!what.empty() && error_.empty()) error_ = std::move(what);
    return Error{"metadata is not well-formed XML at byte " + std::to_string(pos_) + ": " +
                 (error_.empty() ? "unexpected input" : error_)};
  }
  bool Bad(std::string what) {
    if (error_.empty()) error_ = std::move(what);
    return false;
  }
  bool Peek(char c) const { return pos_ < in_.size() && in_[pos_] == c; }
  bool StartsWith(std::string_view s) const { return in_.substr(pos_).starts_with(s); }
  void SkipSpace() {
    while (pos_ < in_.size() && IsSpace(in_[pos_])) ++pos_;
  }
  // Skips past `end`; false when it never comes.
  bool SkipPast(std::string_view end) {
    const size_t at = in_.find(end, pos_);
    if (at == std::string_view::npos) return false;
    pos_ = at + end.size();
    return true;
  }
  // Whitespace, comments and processing instructions between elements.
  bool SkipMisc() {
    for (;;) {
      SkipSpace();
      if (StartsWith("<!--")) {
        if (!SkipPast("-->")) return Bad("unterminated comment");
      } else if (StartsWith("<?")) {
        if (!SkipPast("?>")) return Bad("unterminated processing instruction");
      } else if (StartsWith("<!")) {
        return Bad("DTDs and declarations are not accepted");
      } else {
        return true;
      }
    }
  }
  std::string Name() {
    const size_t start = pos_;
    while (pos_ < in_.size() && IsNameChar(in_[pos_])) ++pos_;
    return std::string(in_.substr(start, pos_ - start));
  }
  // Decodes one reference after '&' into `out`.
  bool Reference(std::string& out) {
    const size_t semi = in_.find(';', pos_);
    if (semi == std::string_view::npos || semi - pos_ > 10) return Bad("bad entity reference");
    const std::string_view ref = in_.substr(pos_, semi - pos_);
    pos_ = semi + 1;
    if (ref == "lt") return out += '<', true;
    if (ref == "gt") return out += '>', true;
    if (ref == "amp") return out += '&', true;
    if (ref == "quot") return out += '"', true;
    if (ref == "apos") return out += '\'', true;
    if (ref.size() < 2 || ref[0] != '#') return Bad("unknown entity &" + std::string(ref) + ";");
    const bool hex = ref[1] == 'x';
    const std::string_view digits = ref.substr(hex ? 2 : 1);
    if (digits.empty()) return Bad("empty character reference");
    uint32_t cp = 0;
    for (char c : digits) {
      int d = -1;
      if (c >= '0' && c <= '9') d = c - '0';
      if (hex && c >= 'a' && c <= 'f') d = c - 'a' + 10;
      if (hex && c >= 'A' && c <= 'F') d = c - 'A' + 10;
      if (d < 0) return Bad("bad character reference");
      cp = cp * (hex ? 16 : 10) + static_cast<uint32_t>(d);
      if (cp > 0x10FFFF) return Bad("character reference out of range");
    }
    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return Bad("bad character reference");
    AppendUtf8(cp, out);
    return true;
  }
  bool AttributeValue(std::string& out) {
    if (!Peek('"') && !Peek('\'')) return Bad("attribute value without quotes");
    const char quote = in_[pos_++];
    while (pos_ < in_.size() && in_[pos_] != quote) {
      const char c = in_[pos_++];
      if (c == '<') return Bad("'<' in an attribute value");
      if (c == '&') {
        if (!Reference(out)) return false;
      } else {
        out += c;
      }
    }
    if (!Peek(quote)) return Bad("unterminated attribute value");
    ++pos_;
    return true;
  }
  bool Attributes(XmlElement& e) {
    for (;;) {
      const size_t before = pos_;
      SkipSpace();
      if (Peek('>') || Peek('/')) return true;
      if (pos_ == before) return Bad("expected whitespace before an attribute");
      std::string name = Name();
      if (name.empty()) return Bad("expected an attribute name");
      SkipSpace();
      if (!Peek('=')) return Bad("expected '=' after attribute " + name);
      ++pos_;
      SkipSpace();
      std::string value;
      if (!AttributeValue(value)) return false;
      if (name == "xmlns" || name.starts_with("xmlns:")) continue;
      const std::string local(LocalName(name));
      for (const auto& [n, v] : e.attributes) {
        if (n == local) return Bad("duplicate attribute " + local);
      }
      e.attributes.emplace_back(local, std::move(value));
    }
  }
  // Character data, references, CDATA, comments and child elements up to
  // the end tag of `e`.
  bool Content(XmlElement& e, const std::string& qname, size_t depth) {
    for (;;) {
      if (pos_ >= in_.size()) return Bad("unterminated element " + qname);
      const char c = in_[pos_];
      if (c == '&') {
        ++pos_;
        if (!Reference(e.text)) return false;
      } else if (c != '<') {
        e.text += c;
        ++pos_;
      } else if (StartsWith("</")) {
        pos_ += 2;
        if (Name() != qname) return Bad("end tag does not match <" + qname + ">");
        SkipSpace();
        if (!Peek('>')) return Bad("expected '>' in an end tag");
        ++pos_;
        return true;
      } else if (StartsWith("<!--")) {
        if (!SkipPast("-->")) return Bad("unterminated comment");
      } else if (StartsWith("<![CDATA[")) {
        pos_ += 9;
        const size_t end = in_.find("]]>", pos_);
        if (end == std::string_view::npos) return Bad("unterminated CDATA section");
        e.text.append(in_.substr(pos_, end - pos_));
        pos_ = end + 3;
      } else if (StartsWith("<?")) {
        if (!SkipPast("?>")) return Bad("unterminated processing instruction");
      } else if (StartsWith("<!")) {
        return Bad("declarations are not accepted inside elements");
      } else {
        auto child = Element(depth + 1);
        if (!child) return false;
        e.children.push_back(std::move(child));
      }
    }
  }
  std::unique_ptr<XmlElement> Element(size_t depth) {
    if (depth > kMaxDepth) {
      Bad("elements nested deeper than " + std::to_string(kMaxDepth));
      return nullptr;
    }
    if (++elements_ > kMaxElements) {
      Bad("more than " + std::to_string(kMaxElements) + " elements");
      return nullptr;
    }
    ++pos_;  // '<'
    const std::string qname = Name();
    if (qname.empty()) {
      Bad("expected an element name");
      return nullptr;
    }
    auto e = std::make_unique<XmlElement>();
    e->name = std::string(LocalName(qname));
    if (!Attributes(*e)) return nullptr;
    if (StartsWith("/>")) {
      pos_ += 2;
      return e;
    }
    if (!Peek('>')) {
      Bad("expected '>' or '/>' after <" + qname);
      return nullptr;
    }
    ++pos_;
    if (!Content(*e, qname, depth)) return nullptr;
    return e;
  }

  std::string_view in_;
  size_t pos_ = 0;
  size_t elements_ = 0;
  std::string error_;
};

std::string Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return std::string(s);
}

const std::string* Attribute(const XmlElement& e, std::string_view name) {
  for (const auto& [n, v] : e.attributes) {
    if (n == name) return &v;
  }
  return nullptr;
}

const XmlElement* Child(const XmlElement& e, std::string_view name) {
  for (const auto& c : e.children) {
    if (c->name == name) return c.get();
  }
  return nullptr;
}

// Adds label `name`=`value` when both are valid, there is room and the name
// is new; otherwise records why not.
void AddLabel(std::string_view name, std::string_view value, ParsedMetadata& out) {
  std::string bad = CheckLabelName(name);
  if (bad.empty()) bad = CheckLabelValue(value);
  if (!bad.empty()) {
    out.problems.push_back(std::move(bad));
    return;
  }
  auto& labels = out.metadata.labels;
  for (const auto& [n, v] : labels) {
    if (n == name) {
      out.problems.push_back("duplicate label '" + std::string(name) + "'");
      return;
    }
  }
  if (labels.size() >= DomainMetadata::kMaxLabels) {
    out.problems.push_back("more than " + std::to_string(DomainMetadata::kMaxLabels) +
                           " labels: '" + std::string(name) + "' left out");
    return;
  }
  labels.emplace_back(name, value);
}

void SortLabels(DomainMetadata& m) { std::sort(m.labels.begin(), m.labels.end()); }

// One entry of <vmtime>: <group> or <label name="...">.
void VmtimeEntry(const XmlElement& c, ParsedMetadata& out) {
  if (c.name == "group") {
    const std::string group = Trim(c.text);
    if (!out.metadata.group.empty()) {
      out.problems.push_back("second <group> ignored");
    } else if (std::string bad = CheckGroupName(group); !bad.empty()) {
      out.problems.push_back(std::move(bad));
    } else {
      out.metadata.group = group;
    }
  } else if (c.name == "label") {
    const std::string* name = Attribute(c, "name");
    if (name == nullptr) {
      out.problems.push_back("<label> without a name attribute");
    } else {
      AddLabel(*name, Trim(c.text), out);
    }
  } else {
    out.problems.push_back("unknown element <" + c.name + ">");
  }
}

}  // namespace

Result<ParsedMetadata> ParseVmtimeMetadata(std::string_view xml) {
  auto doc = XmlReader(xml).Document();
  if (!doc.ok()) return doc.error();
  const XmlElement& root = **doc;
  if (root.name != "vmtime") return Error{"root element is <" + root.name + ">, not <vmtime>"};
  ParsedMetadata out;
  for (const auto& c : root.children) VmtimeEntry(*c, out);
  SortLabels(out.metadata);
  return out;
}

Result<ParsedMetadata> ParseNovaMetadata(std::string_view xml) {
  auto doc = XmlReader(xml).Document();
  if (!doc.ok()) return doc.error();
  const XmlElement& root = **doc;
  if (root.name != "instance") return Error{"root element is <" + root.name + ">, not <instance>"};
  ParsedMetadata out;
  if (const XmlElement* name = Child(root, "name"))
    AddLabel("nova_instance", Trim(name->text), out);
  if (const XmlElement* flavor = Child(root, "flavor")) {
    if (const std::string* n = Attribute(*flavor, "name")) AddLabel("nova_flavor", *n, out);
  }
  if (const XmlElement* owner = Child(root, "owner")) {
    if (const XmlElement* project = Child(*owner, "project")) {
      AddLabel("nova_project", Trim(project->text), out);
    }
  }
  SortLabels(out.metadata);
  return out;
}

void MergeLabels(DomainMetadata& into, const DomainMetadata& extra,
                 std::vector<std::string>& problems) {
  for (const auto& label : extra.labels) {
    const std::string& name = label.first;  // not a structured binding: captured below
    const bool present = std::any_of(into.labels.begin(), into.labels.end(),
                                     [&](const auto& l) { return l.first == name; });
    if (present) continue;
    if (into.labels.size() >= DomainMetadata::kMaxLabels) {
      problems.push_back("more than " + std::to_string(DomainMetadata::kMaxLabels) + " labels: '" +
                         name + "' left out");
      continue;
    }
    into.labels.push_back(label);
  }
  std::sort(into.labels.begin(), into.labels.end());
}

}  // namespace vmtime::libvirt
