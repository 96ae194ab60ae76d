// Tensor-parallel fitness from vLLM's own rules (docs/formats.md §11; vllm awq.py, awq_marlin.py,
// marlin_utils.py). Column-parallel layers (q/k/v/gate/up) split N, row-parallel (o/down) split K.
//   awq:        N_p % 8 == 0 (pack factor) and K_p % G == 0; group_size -1 unusable.
//   awq_marlin: G in {-1, 32, 64, 128}; merged N_p % 64 == 0; K_p % 128 == 0; K_p % G == 0 when G < K.
// Heads must divide: num_attention_heads % tp == 0; kv heads split or replicate (tp % kv == 0).
#include <map>

#include "check/check_internal.h"

namespace awq::check_detail {
namespace {

bool row_parallel(const std::string& m) {
  return ends_with(m, "o_proj") || ends_with(m, "down_proj") || ends_with(m, ".w2") || ends_with(m, "dense") ||
         ends_with(m, "out_proj") || ends_with(m, "fc2");
}

// Name of the fused vLLM module a column-parallel layer joins ("...qkv_proj", "...gate_up_proj").
std::string merged_name(const std::string& m) {
  for (const char* s : {"q_proj", "k_proj", "v_proj"})
    if (ends_with(m, s)) return m.substr(0, m.size() - 6) + "qkv_proj";
  for (const char* s : {"gate_proj", "up_proj"})
    if (ends_with(m, s)) return m.substr(0, m.size() - std::string(s).size()) + "gate_up_proj";
  return m;
}

struct Kernel {
  const char* name;
  bool marlin;
};

// Why `tp` fails for the kernel, or "" when every layer fits.
std::string tp_failure(const Ctx& c, const Kernel& kern, int64_t tp, int64_t heads, int64_t kv, int64_t head_dim) {
  const int64_t g = c.reader->scheme().group_size;
  if (heads > 0 && heads % tp) return "num_attention_heads " + std::to_string(heads) + " is not divisible by " + std::to_string(tp);
  if (kv > 0 && (kv >= tp ? kv % tp : tp % kv)) return "num_key_value_heads " + std::to_string(kv) + " neither splits nor replicates over " + std::to_string(tp);
  if (!kern.marlin && g == -1) return "the awq kernel has no per-channel (group_size -1) path";
  if (kern.marlin && g != -1 && g != 32 && g != 64 && g != 128) return "awq_marlin supports group sizes -1, 32, 64, 128, not " + std::to_string(g);
  std::map<std::string, int64_t> merged_np;
  for (const auto& m : c.reader->modules()) {
    ModuleInfo i;
    try {
      i = c.reader->check(m);
    } catch (const std::exception&) {
      continue;
    }
    if (row_parallel(m)) {
      if (i.k % tp) return m + " input " + std::to_string(i.k) + " does not split " + std::to_string(tp) + " ways";
      const int64_t kp = i.k / tp;
      if (!kern.marlin && kp % g)
        return m + " input " + std::to_string(i.k) + "/" + std::to_string(tp) + " = " + std::to_string(kp) + " is not a multiple of group size " +
               std::to_string(g) + " (\"The input size is not aligned with the quantized weight shape\")";
      if (kern.marlin && kp % 128)
        return m + " input_size_per_partition " + std::to_string(kp) + " is not divisible by min_thread_k 128";
      if (kern.marlin && g != -1 && g < i.k && kp % g)
        return m + " input_size_per_partition " + std::to_string(kp) + " is not a multiple of group size " + std::to_string(g);
    } else {
      const bool kv_proj = ends_with(m, "k_proj") || ends_with(m, "v_proj");
      int64_t np;
      if (kv_proj && kv > 0 && kv < tp && head_dim > 0) np = head_dim;  // replicated kv heads
      else if (i.n % tp) return m + " output " + std::to_string(i.n) + " does not split " + std::to_string(tp) + " ways";
      else np = i.n / tp;
      if (!kern.marlin && np % 8)
        return m + " output " + std::to_string(i.n) + "/" + std::to_string(tp) + " = " + std::to_string(np) +
               " is not a multiple of the pack factor 8 (\"The output size is not aligned with the quantized weight shape\")";
      merged_np[merged_name(m)] += np;
      if (kern.marlin && i.k % 128) return m + " input_size_per_partition " + std::to_string(i.k) + " is not divisible by min_thread_k 128";
    }
  }
  if (kern.marlin)
    for (const auto& [m, np] : merged_np)
      if (np % 64) return m + " output_size_per_partition " + std::to_string(np) + " is not divisible by min_thread_n 64";
  return "";
}

}  // namespace

void check_tensor_parallel(const Ctx& c) {
  if (!c.reader || c.reader->modules().empty()) return;
  if (c.reader->scheme().format != "autoawq-gemm") {
    if (c.reader->scheme().format.rfind("autoawq-", 0) == 0)
      c.warn("vllm-unsupported-layout", "", "vLLM's awq and awq_marlin kernels read only the GEMM layout (they ignore \"version\"); this is " +
                                                c.reader->scheme().format + ", which transformers loads but vLLM cannot. "
                                                "Fix: awq convert MODEL -o OUT --to autoawq-gemm (codes and scales kept)");
    return;
  }
  const auto& cfg = c.dir->config();
  if (cfg.contains("torch_dtype") && cfg["torch_dtype"] == "bfloat16")
    c.note("dtype-risk", "config.json",
           "torch_dtype is bfloat16: vLLM's awq kernel runs float16 only (\"torch.bfloat16 is not supported for quantization "
           "method awq\"); awq_marlin (SM >= 80) accepts bfloat16. Forcing --dtype half can overflow bf16-trained activations "
           "(outputs of \"!!!!\"); prefer awq_marlin");
  const int64_t heads = config_int(cfg, "num_attention_heads");
  int64_t kv = config_int(cfg, "num_key_value_heads");
  if (kv < 0) kv = heads;
  int64_t head_dim = config_int(cfg, "head_dim");
  const int64_t hidden = config_int(cfg, "hidden_size");
  if (head_dim < 0 && heads > 0 && hidden > 0) head_dim = hidden / heads;
  for (const Kernel& k : {Kernel{"awq", false}, Kernel{"awq_marlin", true}}) {
    std::string ok, why;
    for (int64_t tp : {1, 2, 4, 8}) {
      const std::string f = tp_failure(c, k, tp, heads, kv, head_dim);
      if (f.empty()) ok += (ok.empty() ? "" : ", ") + std::to_string(tp);
      else why += "; TP " + std::to_string(tp) + " fails: " + f;
    }
    c.note(k.marlin ? "tp-awq-marlin" : "tp-awq", "",
           std::string("vLLM ") + k.name + " accepts TP " + (ok.empty() ? "none of 1, 2, 4, 8" : ok) + why +
               (k.marlin ? " (vLLM then falls back to the awq kernel)" : ""));
  }
}

}  // namespace awq::check_detail
