// llama.cpp's own logits for a prompt: loads a GGUF with libllama, tokenizes the prompt with the
// model's vocabulary (special tokens added as the GGUF's metadata says), decodes it in one batch
// with logits for every position, and writes them as raw f32 [n_tokens][n_vocab] to OUT; prints
// the token ids as a JSON list. Built and run by tools/verify_gguf_llamacpp.py against the
// llama.cpp that tools/build_llamacpp.sh builds (it is not part of the awq build).
//   llamacpp_logits MODEL.gguf "PROMPT" OUT.f32 [THREADS]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llama.h"

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.gguf PROMPT OUT.f32 [THREADS]\n", argv[0]);
    return 2;
  }
  llama_backend_init();
  struct llama_model_params mp = llama_model_default_params();
  struct llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (!model) return 1;
  const struct llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);
  const char* text = argv[2];
  int cap = (int)strlen(text) + 8;
  llama_token* toks = malloc(sizeof(llama_token) * (size_t)cap);
  const int n = llama_tokenize(vocab, text, (int)strlen(text), toks, cap, true, false);
  if (n < 0) return 1;
  struct llama_context_params cp = llama_context_default_params();
  cp.n_ctx = (unsigned)(n + 16);
  cp.n_batch = (unsigned)(n + 16);
  cp.n_threads = cp.n_threads_batch = argc > 4 ? atoi(argv[4]) : 2;
  struct llama_context* ctx = llama_init_from_model(model, cp);
  if (!ctx) return 1;
  struct llama_batch batch = llama_batch_init(n, 0, 1);
  for (int i = 0; i < n; ++i) {
    batch.token[i] = toks[i];
    batch.pos[i] = i;
    batch.n_seq_id[i] = 1;
    batch.seq_id[i][0] = 0;
    batch.logits[i] = 1;
  }
  batch.n_tokens = n;
  if (llama_decode(ctx, batch) != 0) return 1;
  FILE* f = fopen(argv[3], "wb");
  if (!f) return 1;
  for (int i = 0; i < n; ++i) fwrite(llama_get_logits_ith(ctx, i), sizeof(float), (size_t)n_vocab, f);
  fclose(f);
  printf("[");
  for (int i = 0; i < n; ++i) printf("%s%d", i ? ", " : "", toks[i]);
  printf("]\n");
  llama_batch_free(batch);
  llama_free(ctx);
  llama_model_free(model);
  return 0;
}
