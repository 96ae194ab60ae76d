// Tensor-parallel fitness of an AutoAWQ GEMM checkpoint under vLLM, from vLLM's own source
// (docs/formats.md §11). Two sets of rules: vLLM 0.20-0.23 (quantization/awq.py and
// awq_marlin.py; read in 0.20.0 and 0.23.0, identical checks) and vLLM 0.24-0.34 (both merged
// into quantization/auto_awq.py, Marlin tile shapes padded; read in 0.24.0 and 0.34.0, identical
// checks, padding also present in 0.25.0, 0.27.0, 0.31.0). Column-parallel layers (q/k/v, gate/up)
// split N, row-parallel ones (o, down) split K. vLLM fuses q/k/v into qkv_proj and gate/up into
// gate_up_proj, and builds each decoder layer's qkv_proj, o_proj, gate_up_proj, down_proj in that
// order (models/llama.py), so the first layer named below is the first one vLLM would build.
//
// The awq kernel (0.20-0.23 quantization/awq.py AWQLinearMethod.create_weights; 0.24-0.34
// quantization/auto_awq.py BaseAWQLinearMethod.create_weights, same checks): group_size -1 means
// one group of the full input (K); ValueError unless K_p % G == 0 and the *sum* of a fused layer's
// N_p % 8 == 0. A part whose own N_p is not a multiple of 8 while the sum is, is not refused:
// the loader floors its packed offset and size (parameter.py _adjust_shard_indexes_for_packing)
// and silently mis-splits its columns.
//
// Marlin (0.20-0.23 awq_marlin.py; 0.24-0.34 auto_awq.py) is used only for 4 bits with zero points and
// G in {-1, 32, 64, 128} (utils/marlin_utils.py check_marlin_supported: the zero-point-free types
// Marlin has are GPTQ's, so zero_point false never selects it). Then each layer is checked on its
// own (check_marlin_supports_layer) and one that fails falls back to the awq kernel for that
// layer only: 0.20-0.23 require the fused N_p % 64, K_p % 128, and K_p % G when G < K; 0.24-0.34 pad
// tile shapes (marlin_padded_nk) and requires only K_p % G when G < K. With G -1 both size a shard's
// scales as K_p // K groups, none for a row-parallel shard at TP > 1.
// Heads (llama.py LlamaAttention): num_attention_heads % TP == 0; kv heads split or replicate.
#include <algorithm>
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

// Position of a fused layer within its decoder layer, in vLLM's build order.
int build_rank(const std::string& v) {
  if (ends_with(v, "qkv_proj")) return 0;
  if (ends_with(v, "o_proj")) return 1;
  if (ends_with(v, "gate_up_proj")) return 2;
  if (ends_with(v, "down_proj")) return 3;
  return 4;
}

// One vLLM linear layer: a fused column-parallel layer (its parts) or a row-parallel one.
struct VLayer {
  std::string name;
  bool row = false;
  int64_t k = 0;
  std::vector<std::pair<std::string, int64_t>> parts;  // (module, N)
};

std::vector<VLayer> vllm_layers(const Ctx& c) {
  std::map<std::string, VLayer> by_name;
  for (const auto& m : c.reader->modules()) {
    ModuleInfo i;
    try {
      i = c.reader->check(m);
    } catch (const std::exception&) {
      continue;
    }
    const bool row = row_parallel(m);
    VLayer& l = by_name[row ? m : merged_name(m)];
    l.name = row ? m : merged_name(m);
    l.row = row;
    l.k = i.k;
    l.parts.emplace_back(m, i.n);
  }
  std::vector<VLayer> out;
  for (auto& [_, l] : by_name) out.push_back(std::move(l));
  std::stable_sort(out.begin(), out.end(), [](const VLayer& a, const VLayer& b) {
    const int64_t la = layer_index(a.name), lb = layer_index(b.name);
    if (la != lb) return (la < 0 ? INT64_MAX : la) < (lb < 0 ? INT64_MAX : lb);
    return build_rank(a.name) < build_rank(b.name);
  });
  return out;
}

struct Shape {
  int64_t tp, heads, kv, head_dim, g;
};

std::string s(int64_t v) { return std::to_string(v); }

// One layer's shard under `sh`: K_p and the parts' N_p ("" in `why` when it splits at all).
struct Shard {
  int64_t kp = 0, np_sum = 0;
  std::vector<std::pair<std::string, int64_t>> np;
  std::string why;
};

Shard shard(const VLayer& l, const Shape& sh) {
  Shard r;
  if (l.row) {
    if (l.k % sh.tp) r.why = l.name + " input " + s(l.k) + " does not split " + s(sh.tp) + " ways";
    r.kp = l.k / sh.tp;
    r.np_sum = l.parts[0].second;
    return r;
  }
  r.kp = l.k;
  for (const auto& [m, n] : l.parts) {
    const bool kv_proj = ends_with(m, "k_proj") || ends_with(m, "v_proj");
    int64_t np;
    if (kv_proj && sh.kv > 0 && sh.kv < sh.tp && sh.head_dim > 0) np = sh.head_dim;  // replicated kv heads
    else if (n % sh.tp) {
      r.why = m + " output " + s(n) + " does not split " + s(sh.tp) + " ways";
      return r;
    } else np = n / sh.tp;
    r.np.emplace_back(m, np);
    r.np_sum += np;
  }
  return r;
}

// The awq kernel on one layer: {refusal, silent mis-split}; both "" when it loads right.
std::pair<std::string, std::string> awq_kernel(const VLayer& l, const Shard& p, const Shape& sh) {
  const int64_t g = sh.g == -1 ? l.k : sh.g;
  if (p.kp % g)
    return {l.name + " input " + s(l.k) + "/" + s(sh.tp) + " = " + s(p.kp) + " is not a multiple of " +
                (sh.g == -1 ? "the per-channel group (the whole input, " + s(l.k) + ")" : "group size " + s(g)) +
                " (\"The input size is not aligned with the quantized weight shape\")",
            ""};
  if (p.np_sum % 8)
    return {l.name + " output per shard " + s(p.np_sum) + " is not a multiple of the pack factor 8 (\"The output size is not "
                "aligned with the quantized weight shape\")",
            ""};
  for (const auto& [m, np] : p.np)
    if (np % 8)
      return {"", m + " gets " + s(np) + " output columns per shard, not a multiple of 8: vLLM checks only the fused " + l.name +
                      " (" + s(p.np_sum) + ") and loads without an error, but splits the packed words at the wrong place, so the "
                      "outputs are wrong"};
  return {"", ""};
}

// Why Marlin rejects one layer in vLLM `v20` ? 0.20-0.23 : 0.24-0.34 ("" when it takes it).
std::string marlin_rejects(const VLayer& l, const Shard& p, const Shape& sh, bool v20) {
  if (v20 && p.np_sum % 64) return "output_size_per_partition " + s(p.np_sum) + " is not divisible by min_thread_n 64";
  if (v20 && p.kp % 128) return "input_size_per_partition " + s(p.kp) + " is not divisible by min_thread_k 128";
  if (sh.g != -1 && sh.g < l.k && p.kp % sh.g) return "input_size_per_partition " + s(p.kp) + " is not a multiple of group size " + s(sh.g);
  return "";
}

struct Verdict {
  bool ok = true;
  std::string text;  // why not, or the layers that fall back
};

Verdict heads_fail(const Shape& sh) {
  if (sh.heads > 0 && sh.heads % sh.tp) return {false, "num_attention_heads " + s(sh.heads) + " is not divisible by " + s(sh.tp)};
  if (sh.kv > 0 && (sh.kv >= sh.tp ? sh.kv % sh.tp : sh.tp % sh.kv))
    return {false, "num_key_value_heads " + s(sh.kv) + " neither splits nor replicates over " + s(sh.tp)};
  return {};
}

// The awq kernel on every layer, in build order: the first refusal, else the first mis-split.
Verdict awq_verdict(const std::vector<VLayer>& layers, const Shape& sh) {
  if (Verdict h = heads_fail(sh); !h.ok) return h;
  std::string split;
  for (const auto& l : layers) {
    const Shard p = shard(l, sh);
    if (!p.why.empty()) return {false, p.why};
    const auto [refused, missplit] = awq_kernel(l, p, sh);
    if (!refused.empty()) return {false, refused};
    if (split.empty()) split = missplit;
  }
  if (!split.empty()) return {false, "loads but " + split};
  return {};
}

// Marlin per layer with the awq kernel for the layers it rejects.
Verdict marlin_verdict(const std::vector<VLayer>& layers, const Shape& sh, bool v20) {
  if (Verdict h = heads_fail(sh); !h.ok) return h;
  size_t fallback = 0;
  std::string first_fallback, split;
  for (const auto& l : layers) {
    const Shard p = shard(l, sh);
    if (!p.why.empty()) return {false, p.why};
    const std::string why = marlin_rejects(l, p, sh, v20);
    if (why.empty()) {
      if (sh.g == -1 && l.row && sh.tp > 1)
        return {false, l.name + ": per-channel scales are sized (K/TP) // K = 0 groups per shard (awq_marlin create_weights)"};
      continue;
    }
    if (fallback++ == 0) first_fallback = l.name + ": " + why;
    const auto [refused, missplit] = awq_kernel(l, p, sh);
    if (!refused.empty()) return {false, "Marlin rejects " + l.name + " (" + why + ") and the awq kernel refuses it: " + refused};
    if (split.empty()) split = missplit;
  }
  if (!split.empty()) return {false, "loads but " + split};
  if (fallback) return {true, s(int64_t(fallback)) + " of " + s(int64_t(layers.size())) + " layers fall back to the awq kernel (first built: " + first_fallback + ")"};
  return {};
}

std::string join_tp(const std::vector<int64_t>& v) {
  std::string r;
  for (int64_t t : v) r += (r.empty() ? "" : ", ") + s(t);
  return r.empty() ? "none of 1, 2, 4, 8" : r;
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
           "torch_dtype is bfloat16: in vLLM 0.20-0.23 the awq method runs float16 only (\"torch.bfloat16 is not supported for "
           "quantization method awq\"), awq_marlin (SM >= 80) accepts bfloat16; from 0.24 both are auto_awq, which accepts it. Forcing --dtype half "
           "can overflow bf16-trained activations (outputs of \"!!!!\"); prefer awq_marlin");
  const QuantScheme& q = c.reader->scheme();
  Shape sh{1, c.dims->heads, c.dims->kv_heads, c.dims->head_dim, q.group_size};
  const auto layers = vllm_layers(c);

  std::vector<int64_t> ok;
  std::string why;
  for (int64_t tp : {1, 2, 4, 8}) {
    sh.tp = tp;
    const Verdict v = awq_verdict(layers, sh);
    if (v.ok) ok.push_back(tp);
    else why += "; TP " + s(tp) + (starts_with(v.text, "loads but") ? " " : " fails: ") + v.text;
  }
  c.note("tp-awq", "",
         "vLLM's awq kernel (same checks in vLLM 0.20 to 0.34) accepts TP " + join_tp(ok) + why);

  // vLLM decides from the config's zero_point (AWQ GEMM tensors always carry qzeros).
  const auto& qc = c.dir->quant_config();
  const bool zp = qc.is_object() && qc.contains("zero_point") && qc["zero_point"].is_boolean() ? qc["zero_point"].get<bool>() : q.zero_point;
  const bool marlin_type = q.bits == 4 && zp && (q.group_size == -1 || q.group_size == 32 || q.group_size == 64 || q.group_size == 128);
  if (!marlin_type) {
    c.note("tp-awq-marlin", "",
           std::string("vLLM never picks Marlin for this checkpoint (") +
               (q.bits != 4 ? "bits " + s(q.bits) : !zp ? "zero_point false: Marlin's zero-point-free types are GPTQ's"
                                                                 : "group size " + s(q.group_size) + " is not -1, 32, 64 or 128") +
               "; marlin_utils.py check_marlin_supported, vLLM 0.20 to 0.34): every layer runs on the awq kernel, see tp-awq");
    return;
  }
  std::vector<int64_t> good20, good34;
  std::string detail;
  auto said = [](const Verdict& v) { return std::string(v.ok ? ": " : starts_with(v.text, "loads but") ? " " : " fails: ") + v.text; };
  for (int64_t tp : {1, 2, 4, 8}) {
    sh.tp = tp;
    const Verdict a = marlin_verdict(layers, sh, true), b = marlin_verdict(layers, sh, false);
    if (a.ok) good20.push_back(tp);
    if (b.ok) good34.push_back(tp);
    if (a.ok == b.ok && a.text == b.text) {
      if (!a.text.empty()) detail += "; TP " + s(tp) + said(a);
      continue;
    }
    detail += "; TP " + s(tp) + " in 0.20-0.23" + (a.text.empty() ? ": Marlin takes every layer" : said(a)) + ", in 0.24-0.34" +
              (b.text.empty() ? ": Marlin takes every layer" : said(b));
  }
  c.note("tp-awq-marlin", "",
         "vLLM awq_marlin (Marlin per layer; a layer it rejects falls back to the awq kernel alone) accepts TP " + join_tp(good20) +
             " in vLLM 0.20-0.23 and TP " + join_tp(good34) + " in 0.24-0.34 (which pad Marlin tile shapes)" + detail);
}

}  // namespace awq::check_detail
