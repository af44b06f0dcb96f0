#!/usr/bin/env python3
# Emulation of the score kernel's selection warps (kernels/lightning/candidate_buffer.cuh): per-tile
# appends above a running threshold, the 256-bin histogram, compaction with re-binning and the
# exact-tie rule, then the exact final selection - checked against a sorted reference on
# adversarial score rows (rising, falling, exact ties, +-0, few distinct values, huge ranges).
# It checks the algorithm, not the CUDA code; the GPU tests check the code.
#   python3 scripts/selection_emulation.py [seed]
import random, struct, sys
def score_key(f):
    b = struct.unpack('<I', struct.pack('<f', f))[0]
    if b == 0x80000000: b = 0
    return (~b & 0xffffffff) if (b & 0x80000000) else (b | 0x80000000)
def shift_for(span):
    bits = span.bit_length()
    return bits - 8 if bits > 8 else 0
def find_bin(hist, need):
    run = 0
    for b in range(255, -1, -1):
        if run + hist[b] >= need: return b, run, hist[b]
        run += hist[b]
    raise Exception("total < need")
def compact(buf, st, hist, k, cap):
    count = len(buf); maxkey = st['maxkey']; accept = k + (cap - k)//2
    above = 0; rlo = st['lo']; rhi = maxkey; rsh = st['shift']; open_top = True; tie=False; tie_need=0
    while True:
        b, gt, pop = find_bin(hist, k - above)
        edge = rlo + (b << rsh)
        bin_end = edge + (1 << rsh) - 1
        bin_last = rhi if (b == 255 and open_top) else min(bin_end, rhi)
        if above + gt + pop <= accept: break
        if edge == bin_last: tie = True; tie_need = k - above - gt; break
        above += gt; rlo = edge; rhi = bin_last; open_top = False; rsh = shift_for(rhi - rlo)
        hist[:] = [0]*256
        for v in buf:
            key = v >> 32
            if rlo <= key <= rhi: hist[(key - rlo) >> rsh] += 1
    new_lo = edge; new_shift = shift_for(maxkey - new_lo)
    hist[:] = [0]*256
    out = []; ties = 0
    for v in buf:
        key = v >> 32
        eq = tie and key == edge
        keep = (key > edge or (eq and ties < tie_need)) if tie else key >= edge
        if eq: ties += 1
        if keep:
            out.append(v); hist[min(255, (key - new_lo) >> new_shift)] += 1
    st['tau'] = edge if tie else edge - 1; st['lo'] = new_lo; st['shift'] = new_shift
    return out
def run(scores, t, k):
    cap = 2*k + 1024
    st = dict(tau=0, lo=1, shift=24, maxkey=0); hist = [0]*256; buf = []
    compactions = 0
    for tile in range(t // 64 + 1):
        for s in range(tile*64, tile*64+64):
            if s > t: continue
            key = score_key(scores[s])
            if key > st['tau']:
                buf.append((key << 32) | (0xffffffff - s))
                hist[min(255, (key - st['lo']) >> st['shift'])] += 1
                st['maxkey'] = max(st['maxkey'], key)
        assert len(buf) <= cap
        if len(buf) + 128 > cap:
            buf = compact(buf, st, hist, k, cap); compactions += 1
            assert len(buf) >= k
    # final exact
    top = sorted(buf, reverse=True)[:k]
    return [0xffffffff - (v & 0xffffffff) for v in top], compactions
def ref(scores, t, k):
    order = sorted(range(t+1), key=lambda s: (-score_key(scores[s]), s))
    return order[:k]
random.seed(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
kinds = ['random', 'rising', 'ties', 'zeros', 'falling', 'fewvals', 'mixed_sign']
for trial in range(60):
    kind = kinds[trial % len(kinds)]
    k = random.choice([1, 5, 16, 64, 200, 2048])
    T = random.randint(k + 1, 4*(2*k+1024) + 500)
    if kind == 'random': sc = [random.gauss(0, 1) for _ in range(T)]
    elif kind == 'rising': sc = [s / T + random.gauss(0, 1e-4) for s in range(T)]
    elif kind == 'falling': sc = [-s / T for s in range(T)]
    elif kind == 'ties': sc = [float(random.randint(0, 5)) for _ in range(T)]
    elif kind == 'zeros': sc = [random.choice([0.0, -0.0]) for _ in range(T)]
    elif kind == 'fewvals': sc = [random.choice([1.0, 1.0000001, 2.5, -3.0]) for _ in range(T)]
    else: sc = [random.gauss(0, 1) * (10 ** random.randint(-30, 30)) for _ in range(T)]
    sc = [struct.unpack('<f', struct.pack('<f', x))[0] for x in sc]
    t = T - 1
    got, nc = run(sc, t, k)
    exp = ref(sc, t, k)
    assert got == exp, (kind, k, T, got[:10], exp[:10])
    print(f"ok {kind:10s} k={k:5d} T={T:6d} compactions={nc}")
