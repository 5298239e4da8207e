#!/usr/bin/env python3
"""EM/F1 goldens for runtime/train/answer_metrics.c (tests/check_answer_metrics.c).

normalize_answer, f1_score and exact_match_score below are copied verbatim
from the official SQuAD v1.1 evaluation script (evaluate-v1.1.py,
https://rajpurkar.github.io/SQuAD-explorer/); metric_max_over_ground_truths
too. They run on the pairs below (punctuation, articles, case, Unicode,
white space, empty strings, several golds) and the results go to
tests/golden/answers/squad_metric.json: for each case the prediction, the
golds, the normalised prediction, and the max EM and F1.

    python3 tests/golden/make_squad_metric_goldens.py
"""
import json
import os
import re
import string
import sys
from collections import Counter


# ---- evaluate-v1.1.py (verbatim) -------------------------------------------
def normalize_answer(s):
    """Lower text and remove punctuation, articles and extra whitespace."""
    def remove_articles(text):
        return re.sub(r'\b(a|an|the)\b', ' ', text)

    def white_space_fix(text):
        return ' '.join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return ''.join(ch for ch in text if ch not in exclude)

    def lower(text):
        return text.lower()

    return white_space_fix(remove_articles(remove_punc(lower(s))))


def f1_score(prediction, ground_truth):
    prediction_tokens = normalize_answer(prediction).split()
    ground_truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(ground_truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(prediction_tokens)
    recall = 1.0 * num_same / len(ground_truth_tokens)
    f1 = (2 * precision * recall) / (precision + recall)
    return f1


def exact_match_score(prediction, ground_truth):
    return (normalize_answer(prediction) == normalize_answer(ground_truth))


def metric_max_over_ground_truths(metric_fn, prediction, ground_truths):
    scores_for_ground_truths = []
    for ground_truth in ground_truths:
        score = metric_fn(prediction, ground_truth)
        scores_for_ground_truths.append(score)
    return max(scores_for_ground_truths)
# ---- end of the official code -----------------------------------------------


CASES = [
    ("Denver Broncos", ["Denver Broncos"]),
    ("the Denver Broncos", ["Denver Broncos"]),
    ("The Denver Broncos.", ["Denver Broncos", "Broncos"]),
    ("Broncos", ["Denver Broncos"]),
    ("Carolina Panthers", ["Denver Broncos"]),
    ("", ["Denver Broncos"]),
    ("", [""]),
    ("   ", [""]),
    ("the", [""]),
    ("a an the", ["the a"]),
    ("A", ["a"]),
    ("an apple", ["apple"]),
    ("anapple", ["apple"]),
    ("theatre", ["the atre"]),
    ("the_end", ["end"]),
    ("The end_the", ["end the"]),
    ("Santa Clara, California", ["Santa Clara California"]),
    ("Levi's Stadium", ["Levis Stadium"]),
    ("Levi\u2019s Stadium", ["Levis Stadium"]),
    ("U.S.", ["US"]),
    ("(1,000) people", ["1000 people"]),
    ("$5.5 million", ["5.5 million", "$5,5 million"]),
    ("50-yard line", ["50 yard line"]),
    ("state-of-the-art", ["state of art"]),
    ("state - of - the - art", ["state of art"]),
    ("the the the cat", ["cat the"]),
    ("cat cat dog", ["cat dog dog"]),
    ("cat cat cat", ["cat"]),
    ("New York City", ["New York", "York City", "NYC"]),
    ("in the 1990s", ["1990s", "the 1990s"]),
    ("\u00c9cole Normale Sup\u00e9rieure", ["\u00e9cole normale sup\u00e9rieure"]),
    ("\u00c9COLE", ["\u00e9cole"]),
    ("Stra\u00dfe", ["strasse"]),
    ("\u0130stanbul", ["istanbul"]),
    ("\u0391\u0398\u0397\u039d\u0391", ["\u03b1\u03b8\u03b7\u03bd\u03b1"]),
    ("\u041c\u043e\u0441\u043a\u0432\u0430", ["\u043c\u043e\u0441\u043a\u0432\u0430"]),
    ("\u6771\u4eac\u3002", ["\u6771\u4eac"]),
    ("caf\u00e9 \u2014 the bar", ["caf\u00e9 bar"]),
    ("\u00e9a the", ["\u00e9a"]),
    ("a\u0301 b", ["b"]),
    ("the\u00a0cat", ["cat"]),
    ("the\u3000cat", ["cat"]),
    ("tab\tand\nnewline", ["tab and newline"]),
    ("\u201cquoted\u201d", ["quoted"]),
    ("\u00bfqu\u00e9?", ["qu\u00e9"]),
    ("2\u00bd hours", ["2 hours"]),
    ("The Normans (Norman: Nourmands; French: Normands)", ["Normans"]),
    ("10th and 11th centuries", ["10th and 11th centuries", "in the 10th and 11th centuries"]),
    ("...", ["..."]),
    ("!!!", ["Denver"]),
    ("Seine", ["the Seine river", "Seine", "river Seine"]),
    ("a b c d e", ["e d c b a"]),
    ("x\u001fy", ["x y"]),
    ("\u2160 Corps", ["i corps"]),
]


def main():
    out = []
    for pred, golds in CASES:
        em = metric_max_over_ground_truths(exact_match_score, pred, golds)
        f1 = metric_max_over_ground_truths(f1_score, pred, golds)
        out.append({"prediction": pred, "golds": golds, "normalized": normalize_answer(pred),
                    "em": float(em), "f1": float(f1)})
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "answers", "squad_metric.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"source": "SQuAD v1.1 evaluate-v1.1.py functions, Python %s" % sys.version.split()[0],
                   "cases": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote %d cases to %s" % (len(out), path))


if __name__ == "__main__":
    main()
