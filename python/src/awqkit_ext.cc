// awqkit._awqkit: the Python extension over the public C++ API (include/awq/ only). The package's
// __init__.py re-exports it; python/README in the repository README documents the Python API.
// Every awq::Error surfaces as awqkit.Error (a RuntimeError) carrying the C++ message. Calls that
// read, convert or compute release the GIL.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "awq/check.h"
#include "awq/convert.h"
#include "awq/dtype.h"
#include "awq/error.h"
#include "awq/formats.h"
#include "awq/inspect.h"
#include "awq/layer_cache.h"
#include "awq/model.h"
#include "awq/model_dir.h"
#include "awq/quant_linear.h"
#include "awq/quantize.h"
#include "awq/sealed.h"
#include "awq/tokenizer.h"

namespace py = pybind11;

namespace {

// The library reads sealed files with the process-wide default key (sealed.h); an explicit
// key_file is installed for the duration of one open (the files are decrypted into memory there)
// and the previous default restored, so checkpoints opened with different keys do not interfere.
std::mutex g_key_mu;

template <class F>
auto with_key(const std::optional<std::string>& key_file, F&& fn) {
  if (!key_file) return fn();
  const awq::SealKey key = awq::read_key_file(*key_file);
  std::lock_guard<std::mutex> lock(g_key_mu);
  const std::optional<awq::SealKey> saved = awq::default_seal_key();
  awq::set_default_seal_key(key);
  try {
    auto r = fn();
    awq::set_default_seal_key(saved);
    return r;
  } catch (...) {
    awq::set_default_seal_key(saved);
    throw;
  }
}

// JSON (nlohmann) -> Python objects, through the json module (one parse; inspect reports are small).
py::object to_python(const nlohmann::ordered_json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

template <class T>
py::object array_or_none(const std::vector<T>& v, std::vector<py::ssize_t> shape) {
  if (v.empty()) return py::none();
  py::array_t<T> a(shape);
  std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
  return std::move(a);
}

class Checkpoint {
 public:
  Checkpoint(const std::string& path, const std::optional<std::string>& key_file) {
    py::gil_scoped_release nogil;
    with_key(key_file, [&] {
      dir_ = std::make_unique<awq::ModelDir>(path);
      reader_ = awq::open_format(*dir_);
      info_ = awq::inspect_model(*dir_, *reader_);
      return 0;
    });
  }

  py::object info() const { return to_python(info_); }
  std::vector<std::string> modules() const { return reader_->modules(); }
  std::string path() const { return dir_->path(); }
  std::string format() const { return reader_->scheme().format; }
  std::string dense_name(const std::string& module) const { return reader_->dense_name(module); }

  py::dict read(const std::string& module) const {
    awq::QuantLinear q;
    {
      py::gil_scoped_release nogil;
      q = read_module(module);
    }
    const py::ssize_t n = q.n, k = q.k, g = q.n_groups;
    py::dict d;
    d["codes"] = array_or_none(q.codes, {n, k});
    d["scales"] = array_or_none(q.scales, {n, g});
    d["zeros"] = q.zero_mode == awq::ZeroMode::kInteger ? array_or_none(q.zeros, {n, g}) : py::none();
    d["scaled_zeros"] = q.zero_mode == awq::ZeroMode::kScaledFma ? array_or_none(q.scaled_zeros, {n, g}) : py::none();
    d["g_idx"] = array_or_none(q.g_idx, {k});
    d["pre_quant_scale"] = array_or_none(q.pre_quant_scale, {k});
    d["bias"] = array_or_none(q.bias, {n});
    d["bits"] = q.bits;
    d["group_size"] = q.group_size;
    d["zero_mode"] = q.zero_mode == awq::ZeroMode::kInteger     ? "integer"
                     : q.zero_mode == awq::ZeroMode::kScaledFma ? "scaled_fma"
                                                                : "symmetric";
    return d;
  }

  // W [n][k] as float16 / float32 numpy, or bfloat16 bits as uint16.
  py::array dequantize(const std::string& module, const std::string& dtype) const {
    awq::DType out;
    if (dtype == "float16" || dtype == "f16") out = awq::DType::F16;
    else if (dtype == "float32" || dtype == "f32") out = awq::DType::F32;
    else if (dtype == "bfloat16" || dtype == "bf16") out = awq::DType::BF16;
    else throw awq::Error("dequantize: dtype '" + dtype + "': expected float16, float32 or bfloat16");
    awq::QuantLinear q;
    {
      py::gil_scoped_release nogil;
      q = read_module(module);
    }
    const std::vector<py::ssize_t> shape{py::ssize_t(q.n), py::ssize_t(q.k)};
    py::array a = out == awq::DType::F32   ? py::array(py::dtype("float32"), shape)
                  : out == awq::DType::F16 ? py::array(py::dtype("float16"), shape)
                                           : py::array(py::dtype("uint16"), shape);
    auto* dst = static_cast<uint8_t*>(a.mutable_data());
    {
      py::gil_scoped_release nogil;
      awq::dequantize_ref(q, out, dst);
    }
    return a;
  }

 private:
  awq::QuantLinear read_module(const std::string& module) const {
    const auto& m = reader_->modules();
    if (!std::binary_search(m.begin(), m.end(), module))
      throw awq::Error(dir_->path() + ": no quantized module '" + module + "' (see .modules)");
    return reader_->read(module);
  }
  std::unique_ptr<awq::ModelDir> dir_;
  std::unique_ptr<awq::FormatReader> reader_;
  nlohmann::ordered_json info_;
};

class PyModel {
 public:
  // cache_bytes: a cache of its own of that many bytes; cache: a LayerCache shared with other models.
  PyModel(const std::string& path, std::optional<int> threads, const std::optional<std::string>& key_file,
          std::optional<uint64_t> cache_bytes, int prefetch, std::shared_ptr<awq::LayerCache> cache) {
    if (prefetch < 0) throw awq::Error("prefetch must be >= 0");
    if (cache_bytes && cache) throw awq::Error("Model: give cache_bytes or cache, not both");
    py::gil_scoped_release nogil;
    with_key(key_file, [&] {
      awq::ModelOptions o;
      o.threads = threads.value_or(0);
      if (cache_bytes) cache = std::make_shared<awq::LayerCache>(size_t(*cache_bytes));
      if (cache) {
        o.layer_cache = std::move(cache);
        o.prefetch = prefetch;
      }
      model_ = awq::Model::load(path, o);
      try {
        tok_ = awq::load_tokenizer(path);
      } catch (const awq::Error& e) {
        tok_error_ = e.what();  // a model without a tokenizer still runs on ids
      }
      return 0;
    });
  }

  std::vector<int32_t> tokenize(const std::string& text) const { return tokenizer().encode(text); }
  std::string detokenize(const std::vector<int32_t>& ids, bool skip_special) const {
    return tokenizer().decode(ids, skip_special);
  }

  py::array_t<float> logits(const std::vector<int32_t>& ids) const {
    std::vector<float> out;
    {
      py::gil_scoped_release nogil;
      out = model_->prompt_logits(ids);
    }
    const py::ssize_t vocab = model_->config().vocab;
    py::array_t<float> a({py::ssize_t(ids.size()), vocab});
    std::memcpy(a.mutable_data(), out.data(), out.size() * sizeof(float));
    return a;
  }

  int64_t vocab() const { return model_->config().vocab; }
  int threads() const { return model_->threads(); }
  std::string architecture() const { return model_->config().architecture; }

 private:
  const awq::Tokenizer& tokenizer() const {
    if (!tok_) throw awq::Error(tok_error_);
    return *tok_;
  }
  std::unique_ptr<awq::Model> model_;
  std::unique_ptr<awq::Tokenizer> tok_;
  std::string tok_error_;
};

py::object check(const std::string& path, bool numeric, const std::optional<std::string>& key_file) {
  nlohmann::ordered_json j;
  {
    py::gil_scoped_release nogil;
    j = with_key(key_file, [&] {
      awq::CheckOptions o;
      o.numeric = numeric;
      return awq::check_json(awq::check_model(path, o));
    });
  }
  return to_python(j);
}

py::dict convert(const std::string& path, const std::string& out, const std::string& to,
                 const std::string& gptq_format, bool force, bool requantize,
                 const std::optional<std::string>& key_file) {
  awq::ConvertResult r;
  {
    py::gil_scoped_release nogil;
    r = with_key(key_file, [&] {
      awq::ModelDir dir(path);
      auto reader = awq::open_format(dir);
      awq::ConvertOptions o;
      o.out_dir = out;
      o.to = to;
      o.gptq_format = gptq_format;
      o.force = force;
      o.requantize = requantize;
      o.progress = false;
      return awq::convert_model(dir, *reader, o);
    });
  }
  py::dict d;
  d["from"] = r.from;
  d["to"] = r.to;
  d["modules"] = r.modules;
  d["tensors"] = r.tensors;
  d["shards"] = r.shards;
  d["bytes"] = r.bytes;
  d["arithmetic_differs"] = r.arithmetic_differs;
  d["max_abs_diff"] = r.max_abs_diff;
  d["max_diff_module"] = r.max_diff_module;
  py::list rq;
  for (const auto& x : r.requantized) {
    py::dict e;
    e["module"] = x.module;
    e["reason"] = x.reason;
    e["max_abs"] = x.max_abs;
    e["rel_rms"] = x.rel_rms;
    rq.append(e);
  }
  d["requantized"] = rq;
  return d;
}

// `awq quantize`: the same options and defaults; the calibration text (AWQ, or mixed precision)
// is calib_tokens if given, else the file calib (default: MODEL/calib.txt) tokenized by MODEL's
// tokenizer. Returns what was written.
py::dict quantize(const std::string& path, const std::string& out, const std::string& method, int bits,
                  int64_t group_size, bool zero_point, const std::string& format,
                  const std::optional<std::string>& calib, const std::optional<std::vector<int32_t>>& calib_tokens,
                  int64_t samples, int64_t seqlen, std::optional<int> threads, bool force,
                  const std::vector<std::string>& skip, bool clip, const std::string& sanitize) {
  awq::QuantizeOptions o;
  if (method != "awq" && method != "rtn") throw awq::Error("quantize: method '" + method + "': expected awq or rtn");
  if (sanitize != "error" && sanitize != "zero")
    throw awq::Error("quantize: sanitize '" + sanitize + "': expected error or zero");
  o.out_dir = out;
  o.method = method == "rtn" ? awq::QuantMethod::kRtn : awq::QuantMethod::kAwq;
  o.bits = bits;
  o.group_size = group_size;
  o.zero_point = zero_point;
  o.format = format;
  o.samples = samples;
  o.seqlen = seqlen;
  o.threads = threads.value_or(0);
  o.force = force;
  o.progress = false;
  o.not_convert = skip;
  o.clip = clip;
  o.sanitize = sanitize == "zero" ? awq::SanitizePolicy::kZero : awq::SanitizePolicy::kError;
  awq::QuantizeResult r;
  {
    py::gil_scoped_release nogil;
    if (o.method == awq::QuantMethod::kAwq) {
      if (calib_tokens) {
        o.calib_tokens = *calib_tokens;
      } else {
        const std::string file = calib ? *calib : (std::filesystem::path(path) / "calib.txt").string();
        std::ifstream f(file, std::ios::binary);
        if (!f) throw awq::Error(file + ": cannot read the calibration text (give calib= or calib_tokens=)");
        std::stringstream text;
        text << f.rdbuf();
        o.calib_tokens = awq::load_tokenizer(path)->encode(text.str());
        o.inputs.push_back(file);  // never written or removed by the output
      }
    }
    r = awq::quantize_model(path, o);
  }
  py::dict d;
  d["modules"] = r.modules;
  d["layers"] = r.layers;
  d["resumed_layers"] = r.resumed_layers;
  d["calibration_blocks"] = r.blocks;
  d["sanitized"] = r.sanitized;
  d["warnings"] = r.warnings;
  return d;
}

}  // namespace

PYBIND11_MODULE(_awqkit, m) {
  m.doc() = "awqkit: read, dequantize, check, convert and run 4-bit AWQ/GPTQ checkpoints (the awq C++ library)";
  py::register_exception<awq::Error>(m, "Error", PyExc_RuntimeError);  // subclasses too (caught by base)

  py::class_<Checkpoint>(m, "Checkpoint")
      .def(py::init<const std::string&, const std::optional<std::string>&>(), py::arg("path"),
           py::arg("key_file") = py::none())
      .def_property_readonly("info", &Checkpoint::info)
      .def_property_readonly("modules", &Checkpoint::modules)
      .def_property_readonly("path", &Checkpoint::path)
      .def_property_readonly("format", &Checkpoint::format)
      .def("dense_name", &Checkpoint::dense_name, py::arg("module"))
      .def("read", &Checkpoint::read, py::arg("module"))
      .def("dequantize", &Checkpoint::dequantize, py::arg("module"), py::arg("dtype") = "float16");

  // A cache of ready layers bounded in bytes, shared by the Models given it (thread-safe).
  py::class_<awq::LayerCache, std::shared_ptr<awq::LayerCache>>(m, "LayerCache")
      .def(py::init<size_t>(), py::arg("budget_bytes"))
      .def_property("budget", &awq::LayerCache::budget, &awq::LayerCache::set_budget)
      .def("stats", [](const awq::LayerCache& c) {
        const awq::LayerCache::Stats s = c.stats();
        py::dict d;
        d["hits"] = s.hits;
        d["misses"] = s.misses;
        d["evictions"] = s.evictions;
        d["bytes"] = s.bytes;
        d["entries"] = s.entries;
        d["budget"] = s.budget;
        return d;
      });

  py::class_<PyModel>(m, "Model")
      .def(py::init<const std::string&, std::optional<int>, const std::optional<std::string>&, std::optional<uint64_t>,
                    int, std::shared_ptr<awq::LayerCache>>(),
           py::arg("path"), py::arg("threads") = py::none(), py::arg("key_file") = py::none(),
           py::arg("cache_bytes") = py::none(), py::arg("prefetch") = 1, py::arg("cache") = py::none())
      .def("tokenize", &PyModel::tokenize, py::arg("text"))
      .def("detokenize", &PyModel::detokenize, py::arg("ids"), py::arg("skip_special") = false)
      .def("logits", &PyModel::logits, py::arg("ids"))
      .def_property_readonly("vocab", &PyModel::vocab)
      .def_property_readonly("threads", &PyModel::threads)
      .def_property_readonly("architecture", &PyModel::architecture);

  m.def("check", &check, py::arg("path"), py::arg("numeric") = true, py::arg("key_file") = py::none());
  m.def("convert", &convert, py::arg("path"), py::arg("out"), py::arg("to") = "autoawq-gemm",
        py::arg("gptq_format") = "v1", py::arg("force") = false, py::arg("requantize") = false,
        py::arg("key_file") = py::none());
  m.def("convert_targets", &awq::convert_targets);
  m.def("quantize", &quantize, py::arg("path"), py::arg("out"), py::arg("method") = "awq", py::arg("bits") = 4,
        py::arg("group_size") = 128, py::arg("zero_point") = true, py::arg("format") = "autoawq-gemm",
        py::arg("calib") = py::none(), py::arg("calib_tokens") = py::none(), py::arg("samples") = 64,
        py::arg("seqlen") = 512, py::arg("threads") = py::none(), py::arg("force") = false,
        py::arg("skip") = std::vector<std::string>{}, py::arg("clip") = false, py::arg("sanitize") = "error");
}
