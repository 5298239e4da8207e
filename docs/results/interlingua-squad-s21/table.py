#!/usr/bin/env python3
"""Stop 21's SQuAD table: the token budget (both readers) and the interlingua (each reader alone, joint)
on the same dev rows, pooled over slices evaluated separately (the first 10 rows, then rows 11-30).

  python3 docs/results/interlingua-squad-s21/table.py DEV.jsonl SLICE_START:TB.json:STB.json:IL.json ...

Each row is scored again here with the official SQuAD v1.1 functions (max over all the row's golds, from
DEV.jsonl, which the lw JSON's "gold" (the first) does not hold), checked against the lw JSON's own per-row F1
where it has one; intervals: percentile bootstrap of the mean, 1000 resamples, Python's random seed 1."""
import importlib.util, json, os, random, sys

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "m", os.path.join(here, "..", "..", "..", "tests", "golden", "make_squad_metric_goldens.py"))
m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m)


def boot(v, n=1000, seed=1):
    r = random.Random(seed)
    s = sorted(sum(v[r.randrange(len(v))] for _ in v) / len(v) for _ in range(n))
    return s[int(0.025 * n)], s[int(0.975 * n) - 1]


dev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cols = {"token budget, receiver": [], "token budget, sender": [], "interlingua, receiver": [],
        "interlingua, sender": [], "interlingua, joint": []}
rows_seen = []
for spec_ in sys.argv[2:]:
    start, tb, stb, il = spec_.split(":")
    start = int(start)
    tbj, stbj, ilj = (json.load(open(p)) for p in (tb, stb, il))
    n = ilj["n"]
    assert tbj["n"] == stbj["n"] == n, "the slices differ in length"
    for i in range(n):
        golds = dev[start + i]["answers"]
        assert ilj["rows"][i]["gold"] == golds[0] == tbj["rows"][i]["gold"], f"row {start + i}: another gold"
        rows_seen.append(start + i)
        for name, ans, lw_f1 in (("token budget, receiver", tbj["rows"][i]["answer"], tbj["rows"][i]["f1"]),
                                 ("token budget, sender", stbj["rows"][i]["answer"], stbj["rows"][i]["f1"]),
                                 ("interlingua, receiver", ilj["rows"][i]["receiver"], None),
                                 ("interlingua, sender", ilj["rows"][i]["sender"], None),
                                 ("interlingua, joint", ilj["rows"][i]["joint"], ilj["rows"][i]["joint_f1"])):
            em = float(m.metric_max_over_ground_truths(m.exact_match_score, ans, golds))
            f1 = float(m.metric_max_over_ground_truths(m.f1_score, ans, golds))
            if lw_f1 is not None:
                assert abs(f1 - lw_f1) < 1e-9, f"row {start + i} {name}: F1 {f1} here, {lw_f1} in lw's JSON"
            cols[name].append((em, f1, ans))
n = len(rows_seen)
print(f"dev rows {min(rows_seen) + 1}-{max(rows_seen) + 1} ({n} rows)\n")
print("| run (M = 16) | EM [95%] | F1 [95%] | distinct answers |")
print("|---|---|---|---|")
for name, v in cols.items():
    em = [x[0] for x in v]
    f1 = [x[1] for x in v]
    (elo, ehi), (flo, fhi) = boot(em), boot(f1)
    print(f"| {name} | {sum(em) / n:.3f} [{elo:.3f}, {ehi:.3f}] | {sum(f1) / n:.3f} [{flo:.3f}, {fhi:.3f}] | "
          f"{len(set(x[2] for x in v))} of {n} |")
