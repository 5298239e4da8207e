#!/usr/bin/env python3
import json, sys, random
# the doc's table: each run's EM/F1 with its own 95% interval (the lw JSON's), and the
# same on the first 50 and 20 rows (percentile bootstrap here, 1000 resamples, Python's random seed 1)
def boot(v, n=1000, seed=1):
    r = random.Random(seed); m = []
    for _ in range(n):
        s = [v[r.randrange(len(v))] for _ in v]; m.append(sum(s)/len(s))
    m.sort(); return m[int(0.025*n)], m[int(0.975*n)-1]
for path in sys.argv[1:]:
    j = json.load(open(path)); rows = j['rows']
    em = [r['em'] for r in rows]; f1 = [r['f1'] for r in rows]
    print(f"{path}: n {j['n']} EM {j['exact_match']:.3f} {j['exact_match_ci95']} F1 {j['f1']:.3f} {j['f1_ci95']}")
    for k in (50, 20):
        if len(rows) < k: continue
        ek, fk = em[:k], f1[:k]
        lo, hi = boot(fk); elo, ehi = boot(ek)
        print(f"   first {k}: EM {sum(ek)/k:.3f} [{elo:.3f}, {ehi:.3f}] F1 {sum(fk)/k:.3f} [{lo:.3f}, {hi:.3f}]")
    print("   prompt tokens", j.get('mean_prompt_tokens'), "gen", j.get('mean_generated_tokens'), "s/row", j.get('seconds_per_example'))
