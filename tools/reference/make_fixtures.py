#!/usr/bin/env python3
"""Reference fixtures for worker-orcd: tiny, seeded, random-weight HF checkpoints of each supported
architecture, saved as safetensors + config.json in the layout of the real hub checkpoints, with
reference logits and greedy continuations computed by HF transformers in float32 on the CPU.

Usage: python3 make_fixtures.py --out DIR [--only NAME ...]
Writes DIR/<fixture>/{config.json, *.safetensors[, model.safetensors.index.json], reference.json,
logits_<i>.f32}. reference.json lists, per prompt, the token ids, the 32-token greedy continuation,
and the logits file: little-endian float32, row-major [n_rows, vocab], row r = the next-token logits
after token r of (prompt + continuation[:-1]). See tests/fixtures/README.md.

The reference model is always re-loaded from the saved directory with from_pretrained, so what
transformers computes is what it reads from exactly the files the C++ converter reads.
"""
import argparse
import inspect
import json
import math
import os
import sys
import traceback

import torch
import transformers
from safetensors.torch import save_file

N_GEN = 32
# E2M1 magnitudes (OCP MX v1.0); bit 3 of a code is the sign.
FP4 = [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0]


def mxfp4_quantize(w):
    """w [..., K] (K % 32 == 0) -> (codes uint8 [..., K], e8m0 uint8 [..., K/32], dequantized f32)."""
    shp = w.shape
    b = w.reshape(*shp[:-1], shp[-1] // 32, 32).double()
    amax = b.abs().amax(-1)
    # Scale so the block maximum lands in [4, 8) (ggml's reference choice); above 6 saturates.
    e = torch.where(amax > 0, torch.floor(torch.log2(amax.clamp_min(1e-30))) - 2, torch.full_like(amax, -127.0))
    e = (e + 127).clamp(1, 254)
    scale = torch.pow(2.0, e - 127)
    x = b / scale[..., None]
    lut = torch.tensor(FP4[:8], dtype=torch.float64)
    idx = (x.abs()[..., None] - lut).abs().argmin(-1)
    code = idx + torch.where(x < 0, 8, 0)
    deq = torch.tensor(FP4, dtype=torch.float64)[code] * scale[..., None]
    return code.to(torch.uint8).reshape(shp), e.to(torch.uint8), deq.reshape(shp).float()


def hf_pack_blocks(codes):
    """codes [..., K] -> HF `*_blocks` [..., K/32, 16]: byte i = element 2i | element 2i+1 << 4."""
    c = codes.reshape(*codes.shape[:-1], codes.shape[-1] // 32, 16, 2).to(torch.int32)
    return (c[..., 0] | (c[..., 1] << 4)).to(torch.uint8)


def rounded(t, dtype):
    """Round to the storage dtype and back, so f32 compute uses exactly the stored values."""
    return t.to(dtype).to(torch.float32)


def randn(g, *shape, std=1.0, mean=0.0):
    return torch.randn(*shape, generator=g, dtype=torch.float32) * std + mean


def init_params(model, g, storage, conv1d=False, tied=False):
    """Seeded weights with O(1) activations and logits spread over a few units (HF's 0.02 init makes
    near-uniform logits whose greedy choice is a coin toss). Returns {name: stored tensor}."""
    out = {}
    for name, p in model.named_parameters():
        if ".experts." in name:
            continue
        if p.dim() == 1:
            if "norm" in name or "ln_" in name:
                v = randn(g, *p.shape, std=0.1, mean=1.0) if name.endswith("weight") else randn(g, *p.shape, std=0.05)
            elif name.endswith("sinks"):
                v = randn(g, *p.shape, std=1.0)
            else:
                v = randn(g, *p.shape, std=0.1)
        elif "embed_tokens" in name or "wte" in name:
            v = randn(g, *p.shape, std=0.5 if tied else 1.0)
        elif "wpe" in name:
            v = randn(g, *p.shape, std=0.3)
        else:
            fan_in = p.shape[0] if conv1d else p.shape[1]
            gain = 2.0 if "lm_head" in name else 1.0
            v = randn(g, *p.shape, std=gain / math.sqrt(fan_in))
        v = rounded(v, storage)
        with torch.no_grad():
            p.copy_(v)
        out[name] = v.to(storage).contiguous()
    return out


def save_tensors(d, tensors, shards=1):
    meta = {"format": "pt"}
    for n, t in tensors.items():
        if ".layers." not in n and ".h." not in n or ".0." in n:
            print(f"  tensor {n} {tuple(t.shape)} {t.dtype}")
    if shards == 1:
        save_file(tensors, os.path.join(d, "model.safetensors"), metadata=meta)
        return
    names = list(tensors)
    per = (len(names) + shards - 1) // shards
    weight_map, total = {}, 0
    for s in range(shards):
        fn = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        part = {n: tensors[n] for n in names[s * per:(s + 1) * per]}
        save_file(part, os.path.join(d, fn), metadata=meta)
        for n, t in part.items():
            weight_map[n] = fn
            total += t.numel() * t.element_size()
    with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def reference(model, prompt):
    """Greedy continuation by full recomputation, then one forward over prompt + continuation[:-1]."""
    ids = list(prompt)
    margins = []
    with torch.no_grad():
        for _ in range(N_GEN):
            last = model(torch.tensor([ids]), use_cache=False).logits[0, -1]
            top = torch.topk(last, 2)
            margins.append(float(top.values[0] - top.values[1]))
            ids.append(int(top.indices[0]))
        full = model(torch.tensor([ids[:-1]]), use_cache=False).logits[0].float().contiguous()
    greedy = ids[len(prompt):]
    again = full[len(prompt) - 1:].argmax(-1).tolist()
    if again != greedy:
        raise RuntimeError(f"greedy from incremental and full forward differ: {greedy} vs {again}")
    return greedy, full, min(margins)


def write_reference(d, name, model, prompts, notes):
    entries = []
    for i, prompt in enumerate(prompts):
        greedy, logits, margin = reference(model, prompt)
        fn = f"logits_{i}.f32"
        logits.numpy().astype("<f4").tofile(os.path.join(d, fn))
        entries.append({"ids": prompt, "greedy": greedy, "logits_file": fn, "n_rows": logits.shape[0],
                        "n_vocab": logits.shape[1], "min_greedy_margin": margin})
        print(f"  {name} prompt {i}: {len(prompt)} tokens, greedy {greedy[:8]}..., min top-2 margin {margin:.4f}")
    ref = {"fixture": name, "transformers": transformers.__version__, "torch": torch.__version__,
           "compute": "float32, CPU, eager attention", "notes": notes, "prompts": entries}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)


def prompts_for(seed, vocab, lengths):
    g = torch.Generator().manual_seed(seed + 1000)
    return [torch.randint(0, vocab, (n,), generator=g).tolist() for n in lengths]


def load_reference_model(d, **kw):
    return transformers.AutoModelForCausalLM.from_pretrained(
        d, dtype=torch.float32, attn_implementation="eager", device_map="cpu", **kw).eval()


def build_dense(name, out, cfg, storage=torch.float32, shards=1, conv1d=False, seed=0, lengths=(8, 24)):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    tensors = init_params(model, g, storage, conv1d=conv1d, tied=cfg.tie_word_embeddings)
    cfg.architectures = [type(model).__name__]
    cfg.save_pretrained(d)
    save_tensors(d, tensors, shards)
    ref = load_reference_model(d)
    # The reloaded model must hold exactly the weights that were written.
    sd = dict(ref.named_parameters())
    for n, t in tensors.items():
        if not torch.equal(sd[n].detach(), t.float()):
            raise RuntimeError(f"{name}: reloaded {n} differs from what was saved")
    notes = f"weights stored as {str(storage).replace('torch.', '')}" + (f" in {shards} shards" if shards > 1 else "")
    write_reference(d, name, ref, prompts_for(seed, cfg.vocab_size, lengths), notes)


def gpt_oss_config(E, H, FF, L):
    return transformers.GptOssConfig(
        num_hidden_layers=L, num_local_experts=E, num_experts_per_tok=4, vocab_size=512, hidden_size=H,
        intermediate_size=FF, head_dim=64, num_attention_heads=4, num_key_value_heads=2, sliding_window=128,
        layer_types=["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)],
        max_position_embeddings=131072, rms_norm_eps=1e-5, pad_token_id=None, bos_token_id=None, eos_token_id=None)


def build_gpt_oss(out, seed=5):
    name = "gpt-oss-tiny"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    E, H, FF, L = 16, 64, 96, 4
    cfg = gpt_oss_config(E, H, FF, L)
    print("gpt-oss config:", cfg.to_json_string())
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    print("GptOssExperts.forward source:\n" + inspect.getsource(type(model.model.layers[0].mlp.experts).forward)[:3000])
    bf16 = torch.bfloat16
    tensors = init_params(model, g, bf16)
    # Expert weights in the checkpoint's own orientation: rows are outputs, blocks run along K.
    # gate_up rows interleave gate (even) and up (odd), as in the hub checkpoint.
    canon = {}
    for il in range(L):
        p = f"model.layers.{il}.mlp.experts."
        w1 = randn(g, E, 2 * FF, H, std=3.0 / math.sqrt(H))
        w2 = randn(g, E, H, FF, std=1.0 / math.sqrt(FF))
        for part, w in (("gate_up_proj", w1), ("down_proj", w2)):
            codes, scales, deq = mxfp4_quantize(w)
            tensors[p + part + "_blocks"] = hf_pack_blocks(codes).contiguous()
            tensors[p + part + "_scales"] = scales.contiguous()
            canon[p + part] = deq
        b1 = rounded(randn(g, E, 2 * FF, std=1.0), bf16)
        b2 = rounded(randn(g, E, H, std=0.1), bf16)
        tensors[p + "gate_up_proj_bias"] = b1.to(bf16)
        tensors[p + "down_proj_bias"] = b2.to(bf16)
        canon[p + "gate_up_proj_bias"] = b1
        canon[p + "down_proj_bias"] = b2
    cfg.architectures = [type(model).__name__]
    cfg.save_pretrained(d)
    with open(os.path.join(d, "config.json")) as f:
        cj = json.load(f)
    cj["quantization_config"] = {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]}
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cj, f, indent=2)
    save_tensors(d, tensors)

    # Path B: set the dequantized experts directly (layout detected by shape, which is unambiguous
    # because hidden != 2*ff and hidden != ff).
    manual = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    sd = dict(manual.named_parameters())
    with torch.no_grad():
        for n, t in tensors.items():
            if n in sd:
                sd[n].copy_(t.float())
        for n, t in canon.items():
            q = sd[n]
            if q.shape == t.shape:
                q.copy_(t)
            elif q.dim() == 3 and q.shape == t.transpose(1, 2).shape:
                q.copy_(t.transpose(1, 2))
            else:
                raise RuntimeError(f"{n}: model shape {tuple(q.shape)} vs checkpoint {tuple(t.shape)}")
    # Path A: transformers' own MXFP4 loader (dequantize=True) reading our blocks/scales. It must
    # read exactly the intended values (this proves the checkpoint layout); the reference is then
    # the float32 model B, because the loader may keep the experts in bf16 and compute in bf16.
    ref, how = manual, "experts set by this script (transformers' MXFP4 loader failed, see log)"
    try:
        loaded = load_reference_model(d, quantization_config=transformers.Mxfp4Config(dequantize=True))
        la = dict(loaded.named_parameters())
        worst = 0.0
        for n, q in sd.items():
            a = la[n].detach().float()
            b = q.detach().float()
            if a.shape != b.shape:
                raise RuntimeError(f"{n}: loaded shape {tuple(a.shape)} vs manual {tuple(b.shape)}")
            worst = max(worst, float((a - b).abs().max()))
        print("gpt-oss: loader param dtypes:", sorted({str(p.dtype) for p in la.values()}))
        print(f"gpt-oss: transformers MXFP4 loader vs manual weights: max |diff| = {worst}")
        if worst != 0.0:
            raise RuntimeError("transformers' dequantized checkpoint differs from the intended weights")
        ids = torch.tensor([prompts_for(seed, 512, (8,))[0]])
        with torch.no_grad():
            la_logits = loaded(ids, use_cache=False).logits
            ma_logits = manual(ids, use_cache=False).logits
        rel = float((la_logits - ma_logits).norm() / ma_logits.norm())
        print(f"gpt-oss: logits of the loaded model vs the float32 model: relative L2 {rel:.3g}")
        how = ("float32 model holding the dequantized experts; transformers' Mxfp4Config(dequantize=True) loader "
               f"reads exactly these values from the checkpoint (its own forward differs by relative L2 {rel:.2g})")
    except Exception:
        traceback.print_exc()
    print("gpt-oss reference:", how)
    notes = ("non-expert weights BF16, experts MXFP4 (HF _blocks/_scales layout, gate/up rows interleaved), "
             "biases BF16; reference model " + how)
    write_reference(d, name, ref, prompts_for(seed, 512, (8, 24, 160)), notes)


def build_gpt_oss_bf16(out, seed=6):
    """gpt-oss as a bf16 fine-tune is published: every weight BF16, the experts as plain tensors
    (`mlp.experts.gate_up_proj`, `down_proj` and their biases, in transformers' own parameter layout)
    whose values are NOT on the MXFP4 grid, and no quantization_config. The converter must keep
    such experts in the output type (issue 14); --type bf16 is then lossless."""
    name = "gpt-oss-bf16-tiny"
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    E, H, FF, L = 8, 64, 96, 2
    cfg = gpt_oss_config(E, H, FF, L)
    print("gpt-oss-bf16 config:", cfg.to_json_string())
    model = transformers.AutoModelForCausalLM.from_config(cfg, attn_implementation="eager").float().eval()
    bf16 = torch.bfloat16
    tensors = init_params(model, g, bf16)
    for n, p in model.named_parameters():
        if ".experts." not in n:
            continue
        if n.endswith("_bias"):
            std = 1.0 if "gate_up" in n else 0.1
        else:
            std = 3.0 / math.sqrt(H) if "gate_up" in n else 1.0 / math.sqrt(FF)
        v = rounded(randn(g, *p.shape, std=std), bf16)
        with torch.no_grad():
            p.copy_(v)
        tensors[n] = v.to(bf16).contiguous()
        if not n.endswith("_bias"):
            # Blocks of 32 along either axis of a matrix: MXFP4 would change most values.
            for ax in (1, 2):
                x = v.transpose(ax, 2).contiguous()
                changed = float((mxfp4_quantize(x)[2] != x).float().mean())
                print(f"  {n} {tuple(p.shape)}: MXFP4 along axis {ax} would change {changed:.0%} of the values")
                if changed < 0.5:
                    raise RuntimeError(f"{n} is too close to the MXFP4 grid for this fixture")
    cfg.architectures = [type(model).__name__]
    cfg.save_pretrained(d)
    save_tensors(d, tensors)
    ref = load_reference_model(d)
    sd = dict(ref.named_parameters())
    if set(sd) != set(tensors):
        raise RuntimeError(f"{name}: parameters {sorted(set(sd) ^ set(tensors))} are not both saved and loaded")
    for n, t in tensors.items():
        if sd[n].dtype != torch.float32 or not torch.equal(sd[n].detach(), t.float()):
            raise RuntimeError(f"{name}: reloaded {n} differs from what was saved")
    print("gpt-oss-bf16: reloaded expert shapes:",
          {n: tuple(t.shape) for n, t in sd.items() if n.startswith("model.layers.0.mlp.experts.")})
    notes = ("every weight BF16; experts as plain BF16 tensors off the MXFP4 grid (transformers' parameter "
             "layout, no quantization_config); reference: the checkpoint re-loaded by from_pretrained in float32")
    write_reference(d, name, ref, prompts_for(seed, 512, (8, 24)), notes)


def qwen2_config():
    kw = dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True,
              bos_token_id=1, eos_token_id=2)
    try:  # transformers 5 keeps the RoPE base in rope_parameters; 4.x took rope_theta
        return transformers.Qwen2Config(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, **kw)
    except TypeError:
        return transformers.Qwen2Config(rope_theta=1000000.0, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    print("transformers", transformers.__version__, "torch", torch.__version__)
    T = transformers
    builds = {
        "gpt-oss-tiny": lambda: build_gpt_oss(a.out),
        "gpt-oss-bf16-tiny": lambda: build_gpt_oss_bf16(a.out),
        "gpt2-tiny": lambda: build_dense("gpt2-tiny", a.out, T.GPT2Config(
            vocab_size=512, n_positions=256, n_embd=64, n_layer=2, n_head=4, activation_function="gelu_new",
            layer_norm_epsilon=1e-5, bos_token_id=0, eos_token_id=0), conv1d=True, seed=1),
        "llama-tiny": lambda: build_dense("llama-tiny", a.out, T.LlamaConfig(
            vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5, tie_word_embeddings=False,
            bos_token_id=1, eos_token_id=2), shards=3, seed=2),
        "qwen2-tiny": lambda: build_dense("qwen2-tiny", a.out, qwen2_config(), storage=torch.float16, seed=3),
        "phi3-tiny": lambda: build_dense("phi3-tiny", a.out, T.Phi3Config(
            vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256, original_max_position_embeddings=256,
            rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=None, pad_token_id=0, bos_token_id=1,
            eos_token_id=2), seed=4),
    }
    failed = []
    for name, fn in builds.items():
        if a.only and name not in a.only:
            continue
        print(f"== {name}")
        try:
            fn()
        except Exception:
            traceback.print_exc()
            failed.append(name)
    print("failed:", failed or "none")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
