#!/usr/bin/env python3
"""Dumps transformers' intermediates for one fixture prompt, named like worker-orcd's WO_TAP taps
(attn_norm, attn_out = attention output before o_proj, ffn_inp, router logits, l_out per layer;
result_norm), as raw little-endian float32 [tokens, features] plus index.json, to find the first
place where the C++ model departs from the reference.

Usage: python3 dump_taps.py FIXTURE_DIR PROMPT_INDEX OUT_DIR
"""
import json
import os
import sys

import torch
import transformers


def main():
    fx, k, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    cfg = json.load(open(os.path.join(fx, "config.json")))
    kw = {}
    if cfg.get("quantization_config", {}).get("quant_method") == "mxfp4":
        kw["quantization_config"] = transformers.Mxfp4Config(dequantize=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        fx, dtype=torch.float32, attn_implementation="eager", device_map="cpu", **kw).eval()
    ids = json.load(open(os.path.join(fx, "reference.json")))["prompts"][k]["ids"]
    taps, index = {}, []

    def save(name, il, t):
        t = t.detach().float().reshape(-1, t.shape[-1]).contiguous()
        fn = f"{name}-{il}.f32"
        t.numpy().astype("<f4").tofile(os.path.join(out, fn))
        index.append({"name": name, "layer": il, "file": fn, "shape": list(t.shape)})

    hooks = []
    for il, layer in enumerate(model.model.layers):
        hooks.append(layer.input_layernorm.register_forward_hook(lambda m, i, o, il=il: save("attn_norm", il, o)))
        hooks.append(layer.self_attn.o_proj.register_forward_pre_hook(lambda m, i, il=il: save("attn_out", il, i[0])))
        hooks.append(layer.post_attention_layernorm.register_forward_pre_hook(lambda m, i, il=il: save("ffn_inp", il, i[0])))
        if hasattr(layer.mlp, "router"):
            hooks.append(layer.mlp.router.register_forward_pre_hook(
                lambda m, i, il=il: save("router", il, torch.nn.functional.linear(i[0].reshape(-1, i[0].shape[-1]), m.weight, m.bias))))
        hooks.append(layer.register_forward_hook(lambda m, i, o, il=il: save("l_out", il, o[0] if isinstance(o, tuple) else o)))
    hooks.append(model.model.norm.register_forward_hook(lambda m, i, o: save("result_norm", -1, o)))
    with torch.no_grad():
        model(torch.tensor([ids]), use_cache=False)
    json.dump(index, open(os.path.join(out, "index.json"), "w"), indent=1)
    print("dumped", len(index), "taps for", len(ids), "tokens")


if __name__ == "__main__":
    main()
