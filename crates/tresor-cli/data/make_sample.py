#!/usr/bin/env python3
"""Write chitchat-sample.json.gz: the first N conversations of the chitchat corpus, unchanged.

Usage: python3 make_sample.py [DATASET_JSON_GZ] [N]
Defaults: ../../../../shared/data/chitchat/dataset.json.gz (relative to this file), N = 300.

The corpus file is exactly `json.dumps(corpus)` (default separators, ASCII), so the sample's
JSON is byte-for-byte the corpus's text for those conversations, in file order. The gzip
header's mtime is 0 so re-running the script gives the same bytes (with the same zlib).
"""
import gzip
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    here, "..", "..", "..", "..", "shared", "data", "chitchat", "dataset.json.gz")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300

with gzip.open(src, "rb") as f:
    raw = f.read()
corpus = json.loads(raw)  # dicts keep file order (Python 3.7+)
assert json.dumps(corpus).encode() == raw, "corpus is not in json.dumps form"
sample = dict(list(corpus.items())[:n])
text = json.dumps(sample).encode()
out = os.path.join(here, "chitchat-sample.json.gz")
with open(out, "wb") as f:
    f.write(gzip.compress(text, compresslevel=9, mtime=0))
messages = sum(len(turn) for conv in sample.values() for turn in conv["messages"])
print(f"{out}: {len(sample)} conversations, {messages} messages, "
      f"{len(text)} bytes JSON")
