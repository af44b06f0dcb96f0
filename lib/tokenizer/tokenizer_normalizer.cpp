#include "tokenizer_normalizer.h"

#include "unicode_normalize.h"

namespace indexcache::tokenizer_detail {

void Normalizer::add_nfc() { steps_.push_back({Kind::Nfc, std::nullopt, {}}); }

void Normalizer::add_replace(Regex pattern, std::string content) {
  steps_.push_back({Kind::Replace, std::move(pattern), std::move(content)});
}

void Normalizer::add_prepend(std::string prefix) { steps_.push_back({Kind::Prepend, std::nullopt, std::move(prefix)}); }

std::string_view Normalizer::apply(std::string_view text, NormalizeScratch& scratch, MatchScratch& match) const {
  // Steps alternate between the two buffers so that each reads the previous one's output.
  std::string_view current = text;
  int next_buffer = 0;
  for (const Step& step : steps_) {
    std::string& out = scratch.buffers[next_buffer];
    if (apply_step(step, current, out, scratch, match)) {
      current = out;
      next_buffer = 1 - next_buffer;
    }
  }
  return current;
}

bool Normalizer::apply_step(const Step& step, std::string_view text, std::string& out, NormalizeScratch& scratch,
                            MatchScratch& match) const {
  switch (step.kind) {
    case Kind::Nfc:
      return unicode::to_nfc(text, out);
    case Kind::Prepend:
      if (text.empty()) return false;
      out.assign(step.content);
      out.append(text.data(), text.size());
      return true;
    case Kind::Replace: {
      scratch.matches.clear();
      step.pattern->find_all(text, match, scratch.matches);
      if (scratch.matches.empty()) return false;
      out.clear();
      std::size_t previous = 0;
      for (const Span& found : scratch.matches) {
        out.append(text.data() + previous, found.begin - previous);
        out += step.content;
        previous = found.end;
      }
      out.append(text.data() + previous, text.size() - previous);
      return true;
    }
  }
  return false;
}

}  // namespace indexcache::tokenizer_detail
