#!/usr/bin/env python3
"""Shows that an lwc LoRA file loads in PyTorch / PEFT by name (not run by CI).

usage: python3 tests/load_lora_peft.py LORA.safetensors [OUT_DIR]
           [--unpermute-qk N_HEADS N_KV_HEADS]   (llama receivers read from GGUF)
           [--check-model HF_MODEL_DIR | FILE.gguf]   (needs peft + transformers)

Reads the file with safetensors.torch.load_file, prints the tensors and the
adapter_config kept in __metadata__, and writes OUT_DIR/adapter_model.safetensors
+ OUT_DIR/adapter_config.json: the layout PeftModel.from_pretrained reads.
With --check-model it loads the base model (a Hugging Face folder, or a GGUF
file that transformers dequantises), applies OUT_DIR with
PeftModel.from_pretrained and checks that every LoRA tensor PEFT holds is the
file's tensor of the same name, value for value.

Row order: lwc's q/k rows are those of the weights it loaded. For llama models
converted to GGUF, llama.cpp permuted q_proj/k_proj rows (interleaved RoPE);
--unpermute-qk undoes that on lora_B (lora_A is [r, hidden], unaffected).
Gemma 3 GGUF files and safetensors weights are not permuted.
"""
import json
import os
import sys

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file


def unpermute(w, n_head):
    """Inverse of llama.cpp's convert_hf_to_gguf permute() on rows of w [out, ...]."""
    out = w.shape[0]
    return w.reshape(n_head, out // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(argv):
    path = argv[1]
    out_dir = argv[2] if len(argv) > 2 and not argv[2].startswith("--") else None
    weights = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata() or {}
    config = json.loads(meta["adapter_config"])
    print("adapter_config:", json.dumps(config, sort_keys=True))
    for name, t in sorted(weights.items()):
        print(f"  {name:72s} {str(t.dtype):14s} {list(t.shape)}")
        assert name.startswith("base_model.model.model.layers.") and name.endswith((".lora_A.weight", ".lora_B.weight"))
        if name.endswith("lora_A.weight"):
            assert t.shape[0] == config["r"], (name, t.shape)
        else:
            assert t.shape[1] == config["r"], (name, t.shape)

    if "--unpermute-qk" in argv:
        i = argv.index("--unpermute-qk")
        n_head, n_kv = int(argv[i + 1]), int(argv[i + 2])
        for name in list(weights):
            if name.endswith("q_proj.lora_B.weight"):
                weights[name] = unpermute(weights[name], n_head).contiguous()
            elif name.endswith("k_proj.lora_B.weight"):
                weights[name] = unpermute(weights[name], n_kv).contiguous()

    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        save_file(weights, os.path.join(out_dir, "adapter_model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(out_dir, "adapter_config.json"), "w") as f:
            json.dump(config, f, indent=2)
        print("wrote", out_dir)

    if "--check-model" in argv and out_dir:
        # PEFT applies the same y = W x + (lora_alpha / r) B A x, so this loads strictly by name.
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        base_path = argv[argv.index("--check-model") + 1]
        if base_path.endswith(".gguf"):
            base = AutoModelForCausalLM.from_pretrained(os.path.dirname(base_path) or ".",
                                                        gguf_file=os.path.basename(base_path), torch_dtype=torch.float32)
        else:
            base = AutoModelForCausalLM.from_pretrained(base_path, torch_dtype=torch.float32)
        model = PeftModel.from_pretrained(base, out_dir)
        # PEFT names the adapter: ...q_proj.lora_A.default.weight for the file's ...q_proj.lora_A.weight
        loaded = {k.replace(".default.", "."): v for k, v in model.state_dict().items() if "lora_" in k}
        assert sorted(loaded) == sorted(weights), sorted(set(loaded) ^ set(weights))[:8]
        for name, t in weights.items():
            assert torch.equal(loaded[name], t), name
        print("PEFT loaded", len(loaded), "LoRA tensors into", type(base).__name__, "by name, each equal to the file's")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv)
