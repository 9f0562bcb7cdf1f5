"""Build the copy of the Pang-Lee sentence polarity data the text suites ship (run once, by hand).

    python thesis/tools/make_sentiment_subset.py [--source ../shared/data/sentiment/sentence_polarity.zip]

This is the only code in the repository that reads the shared data folder; the package
never reads ``../shared`` at run time (a user's clone has none). It writes
``thesis/equivtest_thesis/data/sentence_polarity.json.gz``: all 5,331 positive and 5,331 negative
sentences of rt-polarity v1.0, in file order, whitespace at the ends stripped, with the
source, the licence and the SHA-256 of the original files. gzip with mtime 0, so the
same input gives the same bytes. Read it with ``equivtest_thesis.zoo.text_data.load_polarity``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "thesis" / "equivtest_thesis" / "data" / "sentence_polarity.json.gz"
MEMBERS = {"pos": "sentence_polarity/rt-polarity.pos", "neg": "sentence_polarity/rt-polarity.neg"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "data" / "sentiment" / "sentence_polarity.zip")
    args = parser.parse_args()
    data = {
        "source": "Pang and Lee (2005), sentence polarity data set v1.0 (rt-polarity), "
                  "https://www.cs.cornell.edu/people/pabo/movie-review-data/",
        "licence": "CC BY 4.0 (per the data set's README)",
        "sha256": {},
    }
    with zipfile.ZipFile(args.source) as archive:
        for label, member in MEMBERS.items():
            raw = archive.read(member)
            data["sha256"][member] = hashlib.sha256(raw).hexdigest()
            lines = [line.strip() for line in raw.decode("utf-8").splitlines()]
            data[label] = [line for line in lines if line]
            print(f"{member}: {len(data[label])} sentences")
    blob = json.dumps(data, ensure_ascii=False, sort_keys=True).encode()
    OUT.write_bytes(gzip.compress(blob, compresslevel=9, mtime=0))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
