"""awqkit.open: info, modules, read, dequantize, against the peers' golden files and the awq command."""
import json

import numpy as np
import pytest

import awqkit
from conftest import DATA, awq, read_safetensors

GOLDEN = sorted(p for p in (DATA / "golden").iterdir() if (p / "expected.safetensors").exists())
GEMM = DATA / "models" / "llama-awq-gemm-g32"


def test_error_is_a_runtime_error_with_the_message(tmp_path):
    assert issubclass(awqkit.Error, RuntimeError)
    with pytest.raises(awqkit.Error, match="nowhere"):
        awqkit.open(tmp_path / "nowhere")


def test_info_is_what_inspect_json_prints(awq_binary):
    ck = awqkit.open(GEMM)
    assert ck.info == json.loads(awq("inspect", GEMM, "--json"))
    assert ck.modules == sorted(ck.modules) and len(ck.modules) > 0


@pytest.mark.parametrize("case", GOLDEN, ids=lambda p: p.name)
def test_dequantize_matches_the_reference_implementations(case):
    """expected.safetensors was made by each format's own code (AutoAWQ, auto_gptq, ...): bit for bit."""
    meta = json.loads((case / "meta.json").read_text())
    dtype = {"f16": "float16", "bf16": "bfloat16", "f32": "float32"}[meta.get("expected_dtype", "f16")]
    expected = read_safetensors(case / "expected.safetensors")
    ck = awqkit.open(case / meta.get("model_dir", "model"))
    assert ck.modules == meta["quantized_layers"]
    for m in ck.modules:
        got = ck.dequantize(m, dtype=dtype)
        want = expected[ck.dense_name(m)]
        assert got.shape == want.shape, m
        assert got.view(np.uint16 if dtype != "float32" else np.uint32).tobytes() == \
            want.view(np.uint16 if dtype != "float32" else np.uint32).tobytes(), m


def test_read_rebuilds_the_dequantized_weight():
    """w = s·(q − z) in f32 from the arrays read() gives equals dequantize(float32)."""
    ck = awqkit.open(GEMM)
    for m in ck.modules:
        d = ck.read(m)
        n, k = d["codes"].shape
        assert d["codes"].dtype == np.uint8 and d["codes"].max() < 16
        assert d["scales"].dtype == np.float32 and d["zeros"].dtype == np.int32
        assert d["scaled_zeros"] is None and d["g_idx"] is None and d["pre_quant_scale"] is None
        groups = np.arange(k) // d["group_size"]
        w = d["scales"][:, groups] * (d["codes"].astype(np.float32) - d["zeros"][:, groups].astype(np.float32))
        np.testing.assert_array_equal(w.astype(np.float32), ck.dequantize(m, dtype="float32"), err_msg=m)


def test_read_gives_g_idx_and_scaled_zeros_where_the_format_has_them():
    act = awqkit.open(DATA / "golden" / "gptq-actorder-g64" / "model")
    d = act.read(act.modules[0])
    assert d["g_idx"].dtype == np.int32 and d["g_idx"].shape == (d["codes"].shape[1],)
    fast = awqkit.open(DATA / "golden" / "awq-gemv-fast-g128" / "model")
    d = fast.read(fast.modules[0])
    assert d["zeros"] is None and d["scaled_zeros"].dtype == np.float32


def test_dequantize_equals_the_awq_dequantize_command(tmp_path, awq_binary):
    out = tmp_path / "dense"
    awq("dequantize", GEMM, "-o", out, "--dtype", "f16", "-q")
    dense = read_safetensors(out / "model.safetensors")
    ck = awqkit.open(GEMM)
    for m in ck.modules:
        got = ck.dequantize(m)  # float16 by default
        assert got.dtype == np.float16
        assert got.tobytes() == dense[m + ".weight"].tobytes(), m


def test_bad_module_and_dtype_raise():
    ck = awqkit.open(GEMM)
    with pytest.raises(awqkit.Error, match="no quantized module 'lm_head'"):
        ck.read("lm_head")
    with pytest.raises(awqkit.Error, match="float16, float32 or bfloat16"):
        ck.dequantize(ck.modules[0], dtype="int4")


def test_encrypted_checkpoint_opens_with_its_key_only(tmp_path, awq_binary):
    key, enc = tmp_path / "k.key", tmp_path / "enc"
    awq("keygen", "-o", key)
    awq("encrypt", GEMM, "-o", enc, "--key-file", key)
    with pytest.raises(awqkit.Error, match="encrypted"):
        awqkit.open(enc)
    ck = awqkit.open(enc, key_file=key)
    plain = awqkit.open(GEMM)
    assert ck.modules == plain.modules
    m = ck.modules[0]
    assert ck.dequantize(m).tobytes() == plain.dequantize(m).tobytes()
    other = tmp_path / "other.key"
    awq("keygen", "-o", other)
    with pytest.raises(awqkit.Error):
        awqkit.open(enc, key_file=other)
