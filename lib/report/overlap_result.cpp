#include "overlap_result.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace indexcache {
namespace {

nlohmann::ordered_json statistics_json(const DomainOverlap& group) {
  nlohmann::ordered_json nearest = nlohmann::ordered_json::array();
  for (const EarlierNeighbour& item : group.statistics.nearest) {
    nearest.push_back({{"layer", item.layer},
                       {"earlier", item.earlier ? nlohmann::ordered_json(*item.earlier) : nlohmann::ordered_json()},
                       {"overlap", item.earlier ? nlohmann::ordered_json(item.overlap) : nlohmann::ordered_json()}});
  }
  nlohmann::ordered_json blocks = nlohmann::ordered_json::array();
  for (const OverlapBlock& block : group.statistics.blocks) {
    blocks.push_back({{"first", block.first}, {"last", block.last}, {"min_overlap", block.min_overlap}});
  }
  return {{"adjacent", group.statistics.adjacent}, {"nearest_earlier", nearest}, {"blocks", blocks}};
}

std::string blocks_text(const std::vector<OverlapBlock>& blocks) {
  if (blocks.empty()) return "none";
  std::string text;
  for (const OverlapBlock& block : blocks) {
    text += (text.empty() ? "" : ", ") + std::to_string(block.first) + "-" + std::to_string(block.last);
  }
  return text;
}

}  // namespace

nlohmann::ordered_json overlap_json(const OverlapReport& report, const nlohmann::ordered_json& description,
                                    bool with_files) {
  nlohmann::ordered_json result{{"format", kOverlapFormat}};
  for (const auto& [key, value] : description.items()) result[key] = value;
  const DomainOverlap& all = report.all();
  result["layers"] = report.layers();
  result["first_layer"] = report.first_layer;
  result["last_layer"] = report.last_layer;
  result["index_topk"] = report.index_topk;
  result["query_stride"] = report.query_stride;
  result["max_queries"] = report.max_queries > 0 ? nlohmann::ordered_json(report.max_queries) : nlohmann::ordered_json();
  result["block_threshold"] = report.block_threshold;
  result["measured_queries"] = all.measured_queries;
  result["chance_overlap"] = all.chance_overlap;
  result["baseline_loss"] = report.baseline_loss;
  result["overlap"] = all.overlap;
  const nlohmann::ordered_json all_statistics = statistics_json(all);
  for (const auto& [key, value] : all_statistics.items()) result[key] = value;
  nlohmann::ordered_json domains = nlohmann::ordered_json::array();
  for (const DomainOverlap& group : report.domains) {
    nlohmann::ordered_json entry{{"domain", group.name},
                                 {"sequences", group.sequences},
                                 {"measured_queries", group.measured_queries},
                                 {"chance_overlap", group.chance_overlap},
                                 {"overlap", group.overlap}};
    const nlohmann::ordered_json statistics = statistics_json(group);
    for (const auto& [key, value] : statistics.items()) entry[key] = value;
    if (with_files) {
      entry["csv"] = "overlap-" + group.file_stem + ".csv";
      entry["svg"] = "overlap-" + group.file_stem + ".svg";
    }
    domains.push_back(entry);
  }
  result["domains"] = domains;
  if (with_files) result["report"] = "report.html";
  result["seconds"] = report.seconds;
  return result;
}

std::string block_strip(const std::vector<double>& values) {
  static const char* blocks[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::string strip;
  for (double value : values) {
    int level = static_cast<int>(std::lround(std::clamp(value, 0.0, 1.0) * 8.0));
    strip += blocks[level];
  }
  return strip;
}

std::string overlap_summary(const OverlapReport& report) {
  std::string text;
  char line[512];
  const DomainOverlap& all = report.all();
  std::snprintf(line, sizeof line, "layers %lld-%lld of %lld, top-%lld, %lld measured queries, baseline loss %.6f\n",
                static_cast<long long>(report.first_layer), static_cast<long long>(report.last_layer),
                static_cast<long long>(report.model_layers), static_cast<long long>(report.index_topk),
                static_cast<long long>(all.measured_queries), report.baseline_loss);
  text += line;
  if (all.measured_queries == 0) {
    return text + "no query had more than index_topk causal candidates: use longer sequences (--seq-len)\n";
  }
  std::snprintf(line, sizeof line, "chance level %.3f (random top-%lld choices on the same queries would overlap this much)\n",
                all.chance_overlap, static_cast<long long>(report.index_topk));
  text += line;
  std::size_t width = 6;
  for (const DomainOverlap& group : report.domains) width = std::max(width, group.name.size());
  std::snprintf(line, sizeof line, "%-*s %6s %8s %9s %14s  blocks (overlap >= %.2f)\n", static_cast<int>(width),
                "domain", "seqs", "queries", "adj mean", "adj min (at)", report.block_threshold);
  text += line;
  for (const DomainOverlap& group : report.domains) {
    if (group.measured_queries == 0) {
      std::snprintf(line, sizeof line, "%-*s %6lld %8d  (no query with more than top-k candidates)\n",
                    static_cast<int>(width), group.name.c_str(), static_cast<long long>(group.sequences), 0);
      text += line;
      continue;
    }
    const std::vector<double>& adjacent = group.statistics.adjacent;
    double mean = 0.0;
    for (double value : adjacent) mean += value;
    mean /= static_cast<double>(std::max<std::size_t>(1, adjacent.size()));
    std::size_t lowest = static_cast<std::size_t>(std::min_element(adjacent.begin(), adjacent.end()) - adjacent.begin());
    char minimum[48];
    std::snprintf(minimum, sizeof minimum, "%.3f (%lld)", adjacent.empty() ? 0.0 : adjacent[lowest],
                  static_cast<long long>(report.first_layer + static_cast<int64_t>(lowest) + 1));
    std::snprintf(line, sizeof line, "%-*s %6lld %8lld %9.3f %14s  %s\n", static_cast<int>(width), group.name.c_str(),
                  static_cast<long long>(group.sequences), static_cast<long long>(group.measured_queries), mean, minimum,
                  blocks_text(group.statistics.blocks).c_str());
    text += line;
  }
  text += "adjacent overlap, layer l vs l-1 for l = " + std::to_string(report.first_layer + 1) + ".." +
          std::to_string(report.last_layer) + " (block height = overlap, full = 1):\n";
  for (const DomainOverlap& group : report.domains) {
    std::snprintf(line, sizeof line, "  %-*s |", static_cast<int>(width), group.name.c_str());
    text += line + block_strip(group.statistics.adjacent) + "|\n";
  }
  return text;
}

}  // namespace indexcache
