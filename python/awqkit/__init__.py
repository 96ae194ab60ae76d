"""awqkit: read, dequantize, check, convert and run 4-bit quantized LLM checkpoints.

The Python face of the awq C++ library (imported as ``awqkit``: AutoAWQ owns the name ``awq``).

    ck = awqkit.open(path, key_file=None)   # any checkpoint `awq inspect` reads
    ck.info, ck.modules, ck.read(module), ck.dequantize(module, dtype="float16")
    m = awqkit.Model(path, threads=None)
    m.tokenize(text), m.detokenize(ids), m.logits(ids)
    awqkit.check(path), awqkit.convert(path, out, to=...), awqkit.quantize(path, out, **options)

Every failure raises awqkit.Error (a RuntimeError) with the library's message.
"""
from ._awqkit import Error, Checkpoint, LayerCache, convert_targets
from . import _awqkit

__all__ = ["Error", "Checkpoint", "LayerCache", "Model", "open", "check", "convert", "quantize", "convert_targets"]


class Model(_awqkit.Model):
    """A model ready to run: Model(path, threads=None, key_file=None, cache_bytes=None, prefetch=1, cache=None).

    .tokenize(text) -> list[int], .detokenize(ids) -> str, .logits(ids) -> float32 [len(ids), vocab].
    cache_bytes streams the decoder layers through a cache of its own bounded to that many bytes;
    cache=LayerCache(n) through one shared with other models. prefetch: layers read ahead."""

    def __init__(self, path, threads=None, key_file=None, cache_bytes=None, prefetch=1, cache=None):
        super().__init__(str(path), threads, None if key_file is None else str(key_file), cache_bytes, prefetch,
                         cache)


def open(path, key_file=None):
    """Opens a checkpoint (directory, .safetensors or .npz; encrypted given key_file).

    Returns a Checkpoint: .info (the dict `awq inspect --json` prints), .modules (quantized module
    names, sorted), .read(module) (dict of numpy arrays), .dequantize(module, dtype)."""
    return Checkpoint(str(path), None if key_file is None else str(key_file))


def check(path, numeric=True, key_file=None):
    """Runs `awq check`: returns {"path", "format", "findings": [{"severity", "code", "tensor", "message"}]}."""
    return _awqkit.check(str(path), numeric, None if key_file is None else str(key_file))


def convert(path, out, to="autoawq-gemm", gptq_format="v1", force=False, requantize=False, key_file=None):
    """Runs `awq convert PATH -o OUT --to TO`; returns a dict summarising what was written."""
    return _awqkit.convert(str(path), str(out), to, gptq_format, force, requantize,
                           None if key_file is None else str(key_file))


def quantize(path, out, method="awq", bits=4, group_size=128, zero_point=True, format="autoawq-gemm",
             calib=None, calib_tokens=None, samples=64, seqlen=512, threads=None, force=False, skip=(),
             clip=False, sanitize="error"):
    """Runs `awq quantize PATH -o OUT` (a dense checkpoint to 4 bits; same options and defaults).

    method "awq" (calibrated: calib_tokens, a list of ids, else the text file calib, default
    PATH/calib.txt, tokenized by PATH's tokenizer) or "rtn". Returns {"modules", "layers",
    "resumed_layers", "calibration_blocks", "sanitized", "warnings"}."""
    return _awqkit.quantize(str(path), str(out), method, bits, group_size, zero_point, format,
                            None if calib is None else str(calib),
                            None if calib_tokens is None else list(calib_tokens), samples, seqlen, threads,
                            force, list(skip), clip, sanitize)
