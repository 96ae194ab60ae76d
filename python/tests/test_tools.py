"""awqkit.check, awqkit.convert, awqkit.quantize."""
import json

import pytest

import awqkit
from conftest import DATA, SOURCE_DIR, awq

GEMM = DATA / "models" / "llama-awq-gemm-g32"
KJV = SOURCE_DIR / "models" / "kjv-llama"


def test_check_is_what_check_json_prints(awq_binary):
    r = awqkit.check(GEMM)
    assert r["format"] == "autoawq-gemm"
    cli = json.loads(awq("check", GEMM, "--json"))
    assert r["findings"] == cli["findings"]


def test_convert_keeps_every_weight(tmp_path):
    out = tmp_path / "gemv"
    r = awqkit.convert(GEMM, out, to="autoawq-gemv")
    assert r["from"] == "autoawq-gemm" and r["to"] == "autoawq-gemv" and r["modules"] > 0
    a, b = awqkit.open(GEMM), awqkit.open(out)
    assert a.info["format"] == "autoawq-gemm" and b.info["format"] == "autoawq-gemv"
    assert a.modules == b.modules
    for m in a.modules:
        assert a.dequantize(m).tobytes() == b.dequantize(m).tobytes(), m


def test_convert_refuses_an_unknown_target_and_writes_nothing(tmp_path):
    with pytest.raises(awqkit.Error):
        awqkit.convert(GEMM, tmp_path / "x", to="nonsense")
    assert not (tmp_path / "x").exists()


def test_quantize_writes_what_awq_quantize_writes(tmp_path, awq_binary):
    """AWQ on the bundled model with a small calibration: the files are byte-identical to the
    command's with the same options (both deterministic), and the result is readable."""
    calib = tmp_path / "calib.txt"
    calib.write_text((KJV / "calib.txt").read_text()[:4000])
    awq("quantize", KJV, "-o", tmp_path / "cli", "--calib", calib, "--samples", "2", "--seqlen", "64",
        "--group-size", "64", "--threads", "1", "-q")
    r = awqkit.quantize(KJV, tmp_path / "py", calib=calib, samples=2, seqlen=64, group_size=64, threads=1)
    assert r["modules"] > 0 and r["layers"] == 4 and r["calibration_blocks"] == 2
    for f in sorted(p.name for p in (tmp_path / "cli").iterdir()):
        assert (tmp_path / "py" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f
    assert awqkit.open(tmp_path / "py").info["format"] == "autoawq-gemm"


def test_quantize_errors_raise_and_write_nothing(tmp_path):
    with pytest.raises(awqkit.Error):
        awqkit.quantize(KJV, tmp_path / "q", method="gptq")
    with pytest.raises(awqkit.Error, match="calib"):
        awqkit.quantize(KJV, tmp_path / "q", calib=tmp_path / "missing.txt")
    assert not (tmp_path / "q").exists()
