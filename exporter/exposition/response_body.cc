// See response_body.h.
#include "exporter/exposition/response_body.h"

#include <utility>

namespace vmtime::exposition {

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
