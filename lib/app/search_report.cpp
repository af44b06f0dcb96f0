#include "search_report.h"

#include "domain_loss.h"

namespace indexcache {

IndexerCostModel indexer_cost_model(const ModelConfig& config) {
  return {config.num_hidden_layers, config.index_n_heads, config.index_head_dim, config.index_topk};
}

SearchReport build_search_report(Session& session, const SessionOptions& options, const LayerPlan& plan,
                                 const std::string& plan_path, Progress& progress) {
  SearchReport report;
  report.plan_path = plan_path;
  report.plan = plan;
  report.domain_losses = evaluate_domain_losses(session, options, plan.pattern, progress);
  report.cost_model = indexer_cost_model(session.config);
  report.cost = project_indexer_cost(report.cost_model, plan.kept(), report_contexts());
  return report;
}

}  // namespace indexcache
