"""awqkit.Model: tokenize/detokenize and logits, against `awq tokenize`, `awq run --logits-out`
and the transformers golden logits."""
import json
import threading

import numpy as np
import pytest

import awqkit
from conftest import DATA, SOURCE_DIR, awq, read_safetensors

KJV = SOURCE_DIR / "models" / "kjv-llama"
PROMPT = "In the beginning God created the heaven and the earth."


def test_tokenize_matches_the_awq_command(tmp_path, awq_binary):
    m = awqkit.Model(KJV, threads=1)
    text = tmp_path / "t.txt"
    text.write_text(PROMPT)
    ids = m.tokenize(PROMPT)
    assert ids == json.loads(awq("tokenize", KJV, "--text", text))["ids"]
    assert PROMPT in m.detokenize(ids)


def test_logits_equal_awq_run_logits_out(tmp_path, awq_binary):
    out = tmp_path / "logits.safetensors"
    awq("run", KJV, "--prompt", PROMPT, "-n", "0", "--logits-out", out, "--threads", "1")
    want = read_safetensors(out)["logits"]
    m = awqkit.Model(KJV, threads=1)
    got = m.logits(m.tokenize(PROMPT))
    assert got.dtype == np.float32 and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def test_quantized_logits_match_transformers():
    d = DATA / "models" / "llama-awq-gemm-g32"
    g = read_safetensors(d / "logits.safetensors")
    m = awqkit.Model(d)
    for ids, want in zip(g["input_ids"], g["logits"]):
        got = m.logits(ids.tolist())
        assert np.abs(got - want).max() / want.std() < 1e-2
        assert (got.argmax(-1) == want.argmax(-1)).all()


def test_concurrent_calls_from_threads_agree():
    """Calls release the GIL; two threads on one model serialise inside and get the same logits."""
    m = awqkit.Model(KJV, threads=1)
    ids = m.tokenize(PROMPT)
    ref = m.logits(ids)
    results = [None] * 4

    def work(i):
        results[i] = m.logits(ids)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for r in results:
        assert r.tobytes() == ref.tobytes()


def test_bad_ids_raise():
    m = awqkit.Model(KJV, threads=1)
    with pytest.raises(awqkit.Error):
        m.logits([10**9])
    with pytest.raises(awqkit.Error):
        m.logits([])


def test_streamed_layers_give_the_same_logits():
    """cache_bytes below one layer: every layer read again on every use, logits byte-identical."""
    whole = awqkit.Model(KJV, threads=1)
    streamed = awqkit.Model(KJV, threads=1, cache_bytes=1, prefetch=1)
    ids = whole.tokenize(PROMPT)
    assert streamed.logits(ids).tobytes() == whole.logits(ids).tobytes()


def test_two_models_share_one_layer_cache():
    """A LayerCache smaller than both models, shared: both keep their logits, the budget holds, and
    closing a model drops its layers."""
    whole = awqkit.Model(KJV, threads=1)
    ids = whole.tokenize(PROMPT)
    want = whole.logits(ids).tobytes()
    probe = awqkit.LayerCache(1 << 40)
    held = awqkit.Model(KJV, threads=1, cache=probe)
    held.logits(ids)
    model_bytes = probe.stats()["bytes"]
    del held
    assert model_bytes > 0
    shared = awqkit.LayerCache(model_bytes // 2)
    a = awqkit.Model(KJV, threads=1, cache=shared)
    b = awqkit.Model(KJV, threads=1, cache=shared, prefetch=0)
    for m in (a, b, a):
        assert m.logits(ids).tobytes() == want
    s = shared.stats()
    assert 0 < s["bytes"] <= s["budget"] == model_bytes // 2 and s["evictions"] > 0
    del a, b, m  # m: the loop variable still holds a
    import gc
    gc.collect()
    assert shared.stats()["entries"] == 0
    with pytest.raises(awqkit.Error):
        awqkit.Model(KJV, cache_bytes=10, cache=shared)
