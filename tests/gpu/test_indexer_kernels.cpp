// The CUDA indexer kernels against their CPU/ATen references, on fresh random inputs (the seed
// is printed with every failure):
//   - tensor-core scores vs lightning_scores (dense output of the score kernel);
//   - top-k vs select_topk: identical sets except near-ties (differing positions whose reference
//     scores sit within rounding of the k-th score), counted and printed; exact ties resolve to
//     the lower position exactly like the CPU; rising scores (a compaction on every tile);
//   - fp8 quantisation vs fp8_quantize_rows (bit-exact);
//   - overlap counts vs the ATen OverlapAccumulator (exact).
// Cases tagged [sanitize] are small and run under compute-sanitizer (scripts/device-kernels.sh).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <cstdio>
#include <random>
#include <iterator>
#include <string>
#include <vector>

#include "catch_shim.h"
#include "fp8.h"
#include "indexer.h"
#include "indexer_cuda.h"
#include "fp8/fp8_quantize.h"
#include "lightning/lightning.h"
#include "select/topk_select.h"
#include "overlap.h"

using namespace indexcache;

namespace {

const at::Device kCuda(at::kCUDA, 0);

uint64_t fresh_seed() {
  static std::random_device device;
  return (static_cast<uint64_t>(device()) << 32) | device();
}

struct Shape {
  int64_t tokens, heads, dim, k;
};

std::string describe(const Shape& s, IndexerPrecision precision, uint64_t seed) {
  return "T=" + std::to_string(s.tokens) + " H=" + std::to_string(s.heads) + " D=" + std::to_string(s.dim) +
         " k=" + std::to_string(s.k) + " " + indexer_precision_label(precision) + " seed=" + std::to_string(seed);
}

at::Tensor round_to(const at::Tensor& values, IndexerPrecision precision) {
  switch (precision) {
    case IndexerPrecision::BFloat16:
    case IndexerPrecision::Model: return values.to(at::kBFloat16).to(at::kFloat);
    case IndexerPrecision::Float8: return fp8_quantize_rows(values);
    case IndexerPrecision::Float32: break;
  }
  return values;
}

enum class Pattern { Random, RepeatedKeys, RisingScores };

// A random projection on the CPU: q, k ~ N(0, 1), weights ~ N(0, 1) / sqrt(heads) (both signs).
IndexerProjection random_projection(const Shape& s, IndexerPrecision precision, uint64_t seed,
                                    Pattern pattern = Pattern::Random) {
  at::Generator generator = at::detail::createCPUGenerator(seed);
  at::Tensor q = at::randn({s.tokens, s.heads, s.dim}, generator);
  at::Tensor k = at::randn({s.tokens, s.dim}, generator);
  at::Tensor w = at::randn({s.tokens, s.heads}, generator) * std::pow(static_cast<double>(s.heads), -0.5);
  if (pattern == Pattern::RepeatedKeys) {
    // Eight distinct key vectors: every query's scores come in eight groups of exact ties.
    k = k.narrow(0, 0, std::min<int64_t>(8, s.tokens)).repeat({(s.tokens + 7) / 8, 1}).narrow(0, 0, s.tokens);
    w.narrow(0, 0, std::min<int64_t>(5, s.tokens)).zero_();  // and a few all-zero rows
  } else if (pattern == Pattern::RisingScores) {
    // Every query's scores grow with the key position: each new key enters the top-k.
    at::Tensor direction = at::randn({s.dim}, generator);
    q = q * 0.05 + direction.view({1, 1, s.dim});
    w = w.abs();
    at::Tensor ramp = at::arange(s.tokens, at::kFloat).div(static_cast<double>(s.tokens)).unsqueeze(1);
    k = k * 0.01 + ramp * direction.unsqueeze(0);
  }
  IndexerProjection p;
  p.queries = round_to(q, precision);
  p.keys = round_to(k, precision);
  p.weights = w;
  p.softmax_scale = std::pow(static_cast<double>(s.dim), -0.5);
  p.precision = precision;
  return p;
}

IndexerProjection on_device(const IndexerProjection& p, at::Device device) {
  IndexerProjection moved = p;
  moved.queries = p.queries.to(device);
  moved.keys = p.keys.to(device);
  moved.weights = p.weights.to(device);
  return moved;
}

// Reference scores [tokens, tokens] (float32 on the CPU), computed by lightning_scores on the
// GPU's ATen (cuBLAS fp32) for speed.
at::Tensor reference_scores(const IndexerProjection& gpu_projection) {
  const int64_t tokens = gpu_projection.queries.size(0);
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 30) / (gpu_projection.queries.size(1) * tokens * 4));
  at::Tensor scores = at::full({tokens, tokens}, -std::numeric_limits<float>::infinity(), at::kFloat);
  for (int64_t begin = 0; begin < tokens; begin += chunk) {
    const int64_t end = std::min(tokens, begin + chunk);
    scores.narrow(0, begin, end - begin).narrow(1, 0, end).copy_(lightning_scores(gpu_projection, begin, end));
  }
  return scores;
}

struct TopkComparison {
  int64_t rows = 0;
  int64_t identical = 0;   // same positions in the same order
  int64_t near_ties = 0;   // sets differ only in positions scored within rounding of the k-th
  int64_t wrong = 0;
  std::string first_wrong;
};

TopkComparison compare_topk(const at::Tensor& ours_in, const at::Tensor& reference_in, const at::Tensor& scores,
                            int64_t k, double tolerance) {
  TopkComparison result;
  const at::Tensor ours = ours_in.to(at::kCPU).contiguous();
  const at::Tensor reference = reference_in.to(at::kCPU).contiguous();
  const auto o = ours.accessor<int64_t, 2>();
  const auto r = reference.accessor<int64_t, 2>();
  const auto sc = scores.accessor<float, 2>();
  const int64_t tokens = ours.size(0);
  for (int64_t t = 0; t < tokens; ++t) {
    ++result.rows;
    bool equal = true;
    for (int64_t j = 0; j < k; ++j) equal = equal && o[t][j] == r[t][j];
    if (equal) {
      ++result.identical;
      continue;
    }
    const auto fail = [&](const std::string& why) {
      if (result.wrong++ == 0) result.first_wrong = "row " + std::to_string(t) + ": " + why;
    };
    if (t + 1 <= k) {
      fail("a full row must be 0..t then -1");
      continue;
    }
    float row_max = 0.0f;
    for (int64_t s = 0; s <= t; ++s) row_max = std::max(row_max, std::abs(sc[t][s]));
    const double slack = tolerance * std::max(1.0f, row_max);
    std::vector<int64_t> a(k), b(k);
    float kth = std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < k; ++j) {
      a[j] = o[t][j];
      b[j] = r[t][j];
      kth = std::min(kth, sc[t][r[t][j]]);
    }
    std::sort(a.begin(), a.end());
    std::sort(b.begin(), b.end());
    bool ok = std::adjacent_find(a.begin(), a.end()) == a.end() && a.front() >= 0 && a.back() <= t;
    if (!ok) {
      fail("positions out of range or repeated");
      continue;
    }
    // Ascending position order (lib/indexer.h), whatever the set.
    for (int64_t j = 1; j < k; ++j) {
      if (o[t][j] <= o[t][j - 1]) ok = false;
    }
    if (!ok) {
      fail("positions not in ascending order");
      continue;
    }
    std::vector<int64_t> only;
    std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(only));
    for (int64_t x : only) {
      if (std::abs(sc[t][x] - kth) > slack) ok = false;
    }
    if (ok) {
      ++result.near_ties;
    } else {
      fail("set differs beyond near-ties (k-th score " + std::to_string(kth) + ")");
    }
  }
  return result;
}

void check_topk_case(const Shape& shape, IndexerPrecision precision, Pattern pattern, IndexerCudaPath expected) {
  const uint64_t seed = fresh_seed();
  const std::string name = describe(shape, precision, seed);
  INFO(name);
  const IndexerProjection gpu = on_device(random_projection(shape, precision, seed, pattern), kCuda);
  const CudaIndexerInputs inputs = prepare_cuda_indexer(gpu, shape.k);
  CHECK(inputs.path == expected);
  const at::Tensor ours = indexer_topk(gpu, shape.k);  // the dispatch the model uses
  REQUIRE(ours.is_cuda());
  REQUIRE(ours.size(0) == shape.tokens);
  REQUIRE(ours.size(1) == shape.k);
  if (inputs.path != IndexerCudaPath::DenseFP32) {
    // Both top-k pipelines read the same score values and apply the same rule: identical output.
    const at::Tensor streaming = cuda_indexer_topk(inputs, shape.k, TopKPipeline::Streaming);
    const at::Tensor dense = cuda_indexer_topk(inputs, shape.k, TopKPipeline::ChunkedDense);
    CHECK(at::equal(streaming, dense));
    CHECK(at::equal(ours, kDefaultTopKPipeline == TopKPipeline::Streaming ? streaming : dense));
  }
  const at::Tensor scores = reference_scores(gpu);
  const at::Tensor reference = select_topk(scores, 0, shape.k);
  const double tolerance = precision == IndexerPrecision::Float8 ? 2e-3 : 2e-5;
  const TopkComparison c = compare_topk(ours, reference, scores, shape.k, tolerance);
  std::printf("top-k %-58s %-31s rows %6lld identical %6lld near-tie %4lld wrong %lld\n", name.c_str(),
              indexer_cuda_path_label(inputs.path), static_cast<long long>(c.rows),
              static_cast<long long>(c.identical), static_cast<long long>(c.near_ties),
              static_cast<long long>(c.wrong));
  INFO(c.first_wrong);
  CHECK(c.wrong == 0);
  // Exact ties resolve exactly like the CPU (bf16/fp32 scores of equal keys are bitwise equal on
  // both sides; with fp8 two of the eight tie groups may swap when their scores differ by less
  // than the fp8 accumulation error, which the near-tie rule above already accepts).
  if (pattern == Pattern::RepeatedKeys && precision != IndexerPrecision::Float8) CHECK(c.identical == c.rows);
}

IndexerCudaPath tensor_core_path(IndexerPrecision precision) {
  return precision == IndexerPrecision::Float8 ? IndexerCudaPath::TensorCoreFP8 : IndexerCudaPath::TensorCoreBF16;
}

}  // namespace

TEST_CASE("gpu kernels: the tensor-core path is available on this device", "[gpu][kernels]") {
  REQUIRE(at::hasCUDA());
  REQUIRE(kernels::lightning_available());
}

TEST_CASE("gpu kernels: tensor-core scores match lightning_scores", "[gpu][kernels][sanitize]") {
  REQUIRE(at::hasCUDA());
  struct Case {
    Shape shape;
    IndexerPrecision precision;
    int64_t begin;
  };
  std::vector<Case> cases = {
      {{1, 64, 128, 1}, IndexerPrecision::BFloat16, 0},     {{300, 32, 64, 1}, IndexerPrecision::BFloat16, 0},
      {{300, 32, 64, 1}, IndexerPrecision::BFloat16, 123},  {{200, 64, 128, 1}, IndexerPrecision::Float8, 0},
      {{130, 16, 128, 1}, IndexerPrecision::Model, 7},
  };
  const bool long_run = std::getenv("INDEXCACHE_SANITIZER") == nullptr;
  if (long_run) {
    cases.push_back({{1000, 64, 128, 1}, IndexerPrecision::BFloat16, 0});
    cases.push_back({{1000, 64, 128, 1}, IndexerPrecision::Float8, 0});
    cases.push_back({{777, 32, 128, 1}, IndexerPrecision::Float8, 300});
    cases.push_back({{700, 64, 64, 1}, IndexerPrecision::BFloat16, 0});
    cases.push_back({{1029, 16, 64, 1}, IndexerPrecision::BFloat16, 0});
  }
  for (const Case& c : cases) {
    const uint64_t seed = fresh_seed();
    const std::string name = describe(c.shape, c.precision, seed) + " begin=" + std::to_string(c.begin);
    INFO(name);
    const IndexerProjection cpu = random_projection(c.shape, c.precision, seed);
    const CudaIndexerInputs inputs = prepare_cuda_indexer(on_device(cpu, kCuda), 1);
    REQUIRE(inputs.path == tensor_core_path(c.precision));
    const at::Tensor ours = cuda_indexer_scores(inputs, c.begin, c.shape.tokens).to(at::kCPU);
    const at::Tensor reference = lightning_scores(cpu, c.begin, c.shape.tokens);
    REQUIRE(ours.sizes() == reference.sizes());
    const at::Tensor causal = at::isfinite(reference);
    CHECK(at::equal(at::isfinite(ours), causal));  // every causal score written, the rest -inf
    const at::Tensor difference = at::where(causal, ours - reference, at::zeros_like(ours));
    const double error = difference.norm().item<double>() /
                         std::max(1e-30, at::where(causal, reference, at::zeros_like(ours)).norm().item<double>());
    std::printf("scores %-62s relative error %.3g\n", name.c_str(), error);
    // bf16 operands are exact in fp32 products; only the summation order differs. The fp8
    // tensor cores accumulate with fewer bits.
    CHECK(error <= (c.precision == IndexerPrecision::Float8 ? 5e-3 : 1e-4));
  }
}

TEST_CASE("gpu kernels: top-k matches select_topk (small, sanitizer)", "[gpu][kernels][sanitize]") {
  REQUIRE(at::hasCUDA());
  check_topk_case({1, 64, 128, 2048}, IndexerPrecision::BFloat16, Pattern::Random, IndexerCudaPath::TensorCoreBF16);
  check_topk_case({100, 32, 64, 128}, IndexerPrecision::BFloat16, Pattern::Random, IndexerCudaPath::TensorCoreBF16);
  check_topk_case({1300, 64, 128, 16}, IndexerPrecision::BFloat16, Pattern::Random, IndexerCudaPath::TensorCoreBF16);
  check_topk_case({1300, 32, 128, 16}, IndexerPrecision::Float8, Pattern::RepeatedKeys, IndexerCudaPath::TensorCoreFP8);
  check_topk_case({700, 32, 64, 16}, IndexerPrecision::Float32, Pattern::Random, IndexerCudaPath::DenseFP32);
}

TEST_CASE("gpu kernels: top-k matches select_topk on the issue's shapes", "[gpu][kernels]") {
  REQUIRE(at::hasCUDA());
  const std::vector<Shape> shapes = {
      {1, 64, 128, 2048},     // T = 1
      {1500, 32, 64, 2048},   // T < k
      {2049, 64, 128, 2048},  // T = k + 1
      {2049, 32, 64, 2048},   // T = k + 1, head dim 64
      {3001, 32, 128, 64},    // T not a multiple of the 64-key tile; compactions (capacity 1152)
      {2500, 64, 64, 100},    // heads 64, head dim 64
      {4100, 16, 128, 512},   // 16 heads (16 queries per block)
      {8191, 64, 128, 2048},  // DeepSeek-V3.2 shape, compactions
      {6000, 32, 128, 2048},  // GLM-5 shape
  };
  for (const Shape& shape : shapes) {
    check_topk_case(shape, IndexerPrecision::BFloat16, Pattern::Random, IndexerCudaPath::TensorCoreBF16);
    if (shape.dim == 128) {
      check_topk_case(shape, IndexerPrecision::Float8, Pattern::Random, IndexerCudaPath::TensorCoreFP8);
    }
  }
  // Model precision with bf16 values is the bf16 kernel; with float32 values the fp32 path.
  check_topk_case({3001, 64, 128, 256}, IndexerPrecision::Model, Pattern::Random, IndexerCudaPath::TensorCoreBF16);
  check_topk_case({2500, 64, 128, 256}, IndexerPrecision::Float32, Pattern::Random, IndexerCudaPath::DenseFP32);
  // fp8 with head dim 64 and 8 heads: the fp32 path on the simulated values.
  check_topk_case({2500, 64, 64, 256}, IndexerPrecision::Float8, Pattern::Random, IndexerCudaPath::DenseFP32);
  check_topk_case({2500, 8, 32, 256}, IndexerPrecision::BFloat16, Pattern::Random, IndexerCudaPath::DenseFP32);
}

TEST_CASE("gpu kernels: exact ties and rising scores follow the CPU rule exactly", "[gpu][kernels]") {
  REQUIRE(at::hasCUDA());
  check_topk_case({3000, 64, 128, 64}, IndexerPrecision::BFloat16, Pattern::RepeatedKeys,
                  IndexerCudaPath::TensorCoreBF16);
  check_topk_case({5000, 32, 64, 2048}, IndexerPrecision::BFloat16, Pattern::RepeatedKeys,
                  IndexerCudaPath::TensorCoreBF16);
  check_topk_case({3000, 32, 128, 64}, IndexerPrecision::Float32, Pattern::RepeatedKeys, IndexerCudaPath::DenseFP32);
  check_topk_case({6000, 64, 128, 256}, IndexerPrecision::BFloat16, Pattern::RisingScores,
                  IndexerCudaPath::TensorCoreBF16);
  check_topk_case({6000, 64, 128, 256}, IndexerPrecision::Float8, Pattern::RisingScores,
                  IndexerCudaPath::TensorCoreFP8);
}

namespace {

enum class RowPattern { Random, AllEqual, FewValues, Rising, HiddenFromSample, OnlyInSample };

// Dense score rows [rows, tokens] for queries tokens - rows .. tokens - 1. The last two patterns
// defeat the select's sample of long rows (runs of 32 entries, every S-th run with
// S = ceil((t + 1) / 16384); kernels/select/topk_select.cu): the best scores sit only in runs the sample
// skips (too many entries reach its threshold), or only in sampled runs (too few do). Both must
// take the exact fallback.
at::Tensor dense_rows(int64_t tokens, int64_t rows, RowPattern pattern, at::Generator& generator) {
  at::Tensor scores = at::randn({rows, tokens}, generator);
  const at::Tensor position = at::arange(tokens, at::kLong).unsqueeze(0).expand({rows, tokens});
  const int64_t stride = (tokens + 16383) / 16384;
  const at::Tensor sampled = (position.div(32, "floor").remainder(stride) == 0);
  switch (pattern) {
    case RowPattern::Random: break;
    case RowPattern::AllEqual: scores.fill_(0.5f); break;
    case RowPattern::FewValues: scores = scores.round().clamp(-1.0, 2.0); break;
    case RowPattern::Rising: scores = position.to(at::kFloat) * 1e-3f + scores * 1e-4f; break;
    case RowPattern::HiddenFromSample: scores = at::where(sampled, scores, scores + 100.0f); break;
    case RowPattern::OnlyInSample: scores = at::where(sampled, scores, at::full_like(scores, -100.0f)); break;
  }
  // Keys after the query are not causal: -inf, as the score kernel writes them (the reference
  // reads whole rows; the select reads [0, t] only).
  const at::Tensor query = at::arange(tokens - rows, tokens, at::kLong).unsqueeze(1);
  return scores.masked_fill(position > query, -std::numeric_limits<float>::infinity()).contiguous();
}

}  // namespace

struct DenseRowsCase {
  int64_t tokens, rows, k;
  RowPattern pattern;
};

void check_dense_rows(const DenseRowsCase& c) {
  const uint64_t seed = fresh_seed();
  INFO("tokens " << c.tokens << " rows " << c.rows << " k " << c.k << " pattern " << static_cast<int>(c.pattern)
                 << " seed " << seed);
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const at::Tensor scores = dense_rows(c.tokens, c.rows, c.pattern, generator);
  const at::Tensor device_scores = scores.to(kCuda);
  at::Tensor out = at::empty({c.rows, c.k}, device_scores.options().dtype(at::kLong));
  const int64_t first = c.tokens - c.rows;
  REQUIRE(kernels::select_topk_from_scores(device_scores.data_ptr<float>(), c.tokens, first, c.rows, c.k,
                                           out.data_ptr<int64_t>(), nullptr) == cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(at::equal(out.to(at::kCPU), select_topk(scores, first, c.k)));
}

TEST_CASE("gpu kernels: dense-row top-k matches select_topk on long rows", "[gpu][kernels]") {
  REQUIRE(at::hasCUDA());
  const std::vector<DenseRowsCase> cases = {
      {16384, 8, 2048, RowPattern::Random},            // rows that fit shared memory whole
      {16400, 24, 2048, RowPattern::Random},           // the first sampled rows (S = 2)
      {40000, 64, 2048, RowPattern::Random},           // S = 3
      {40000, 32, 100, RowPattern::Random},
      {40000, 16, 2048, RowPattern::AllEqual},         // every entry ties: fallback
      {40000, 16, 2048, RowPattern::FewValues},        // large tie groups
      {40000, 16, 2048, RowPattern::Rising},           // the best scores are the latest
      {40000, 16, 2048, RowPattern::HiddenFromSample},
      {40000, 16, 2048, RowPattern::OnlyInSample},
      {262144, 4, 2048, RowPattern::Random},           // the fp32 path's longest rows (S = 16)
  };
  for (const DenseRowsCase& c : cases) check_dense_rows(c);
}

TEST_CASE("gpu kernels: dense-row top-k (small, sanitizer)", "[gpu][kernels][sanitize]") {
  REQUIRE(at::hasCUDA());
  // One row of each path: whole row in shared memory (k below and at the register sort's 128),
  // sampled, and both fallbacks.
  check_dense_rows({3000, 2, 60, RowPattern::Random});
  check_dense_rows({3000, 2, 128, RowPattern::FewValues});
  check_dense_rows({20000, 2, 2048, RowPattern::Random});
  check_dense_rows({40000, 1, 2048, RowPattern::HiddenFromSample});
  check_dense_rows({40000, 1, 2048, RowPattern::OnlyInSample});
}

TEST_CASE("gpu kernels: fp8 quantisation matches the CPU simulation bit for bit", "[gpu][kernels][sanitize]") {
  REQUIRE(at::hasCUDA());
  const uint64_t seed = fresh_seed();
  INFO("seed " << seed);
  at::Generator generator = at::detail::createCPUGenerator(seed);
  // Rows of very different magnitudes, some with values near the e4m3 subnormal range.
  at::Tensor x = at::randn({333, 128}, generator) * at::exp(at::randn({333, 1}, generator) * 4.0);
  const at::Tensor device_x = x.to(kCuda);
  at::Tensor bytes = at::empty({333, 128}, device_x.options().dtype(at::kByte));
  at::Tensor scales = at::empty({333}, device_x.options());
  REQUIRE(kernels::fp8_quantize_rows_launch(device_x.data_ptr<float>(), 333, 128, bytes.data_ptr<uint8_t>(),
                                            scales.data_ptr<float>(), nullptr) == cudaSuccess);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  const at::Tensor ours = fp8_e4m3_decode(bytes.to(at::kCPU)) * scales.to(at::kCPU).unsqueeze(1);
  CHECK(at::equal(ours, fp8_quantize_rows(x)));
}

TEST_CASE("gpu kernels: overlap counts match the ATen accumulator", "[gpu][kernels][sanitize]") {
  REQUIRE(at::hasCUDA());
  struct Case {
    int64_t layers, tokens, k, stride;
  };
  std::vector<Case> cases = {{5, 300, 16, 1}, {70, 200, 16, 3}};
  if (std::getenv("INDEXCACHE_SANITIZER") == nullptr) {
    cases.push_back({5, 700, 64, 1});
    cases.push_back({70, 700, 64, 5});
    cases.push_back({3, 17000, 16, 997});  // more positions than one window (16384)
  }
  for (const Case& c : cases) {
    const uint64_t seed = fresh_seed();
    INFO("layers " << c.layers << " tokens " << c.tokens << " k " << c.k << " stride " << c.stride << " seed " << seed);
    at::Generator generator = at::detail::createCPUGenerator(seed);
    // Correlated layers: a shared random selection per row, each layer replacing a different
    // fraction of it. Positions are uniform in [0, t]; repeats inside a row are allowed (both
    // implementations count a row as a set).
    const at::Tensor limit = at::arange(c.tokens, at::kFloat).unsqueeze(1) + 1.0;
    const at::Tensor base = (at::rand({c.tokens, c.k}, generator) * limit).floor().to(at::kLong);
    std::vector<at::Tensor> cpu_topk, gpu_topk;
    for (int64_t layer = 0; layer < c.layers; ++layer) {
      const at::Tensor other = (at::rand({c.tokens, c.k}, generator) * limit).floor().to(at::kLong);
      const at::Tensor replace = at::rand({c.tokens, c.k}, generator) < 0.1 * static_cast<double>(layer % 7);
      cpu_topk.push_back(at::where(replace, other, base));
      gpu_topk.push_back(cpu_topk.back().to(kCuda));
    }
    OverlapAccumulator cpu(c.layers, c.k), gpu(c.layers, c.k);
    cpu.add(cpu_topk, c.stride);
    gpu.add(gpu_topk, c.stride);
    CHECK(gpu.measured_queries() == cpu.measured_queries());
    CHECK(at::equal(gpu.counts(), cpu.counts()));
  }
}
