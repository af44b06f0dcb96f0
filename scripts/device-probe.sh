#!/usr/bin/env bash
# Records what the GPU machine has (versions, paths) and copies the reference modeling sources
# of transformers, so host-side work can read the exact semantics we must match.
set -u
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT/ref"
{
  nvidia-smi; nvcc --version; cmake --version; g++ --version | head -1
  python3 -c 'import torch,transformers,tokenizers,safetensors;print(torch.__version__,transformers.__version__,tokenizers.__version__,safetensors.__version__);print(torch.utils.cmake_prefix_path)'
  ls /usr/include/catch2 | head; ls /usr/lib/x86_64-linux-gnu/cmake | head -50
  ls /usr/include/CLI /usr/include/yaml-cpp /usr/include/nlohmann 2>&1 | head -20
  ls /usr/include/pcre2.h /usr/lib/x86_64-linux-gnu/libpcre2* 2>&1
  which compute-sanitizer ncu chromium chromium-browser ccache ninja 2>&1
  dpkg -l | grep -E 'catch2|cli11|yaml-cpp|nlohmann|pcre2|ccache' 
  nproc; free -g; df -h /tmp
} > "$OUT/env.txt" 2>&1
T=$(python3 -c 'import transformers,os;print(os.path.dirname(transformers.__file__))')
tar czf "$OUT/ref/transformers-ref.tgz" -C "$T" models/deepseek_v32 models/glm_moe_dsa models/deepseek_v3 models/glm4_moe modeling_rope_utils.py integrations/finegrained_fp8.py activations.py 2>>"$OUT/env.txt"
ls -la "$OUT" "$OUT/ref" >> "$OUT/env.txt"
