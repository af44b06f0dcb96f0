#!/usr/bin/env python3
"""Builds the training text of the bundled tiny DSA model: ~20-40 MB of the same four kinds of
text as calibration_data/ (code, legal, docs, math), from *other files* than the calibration
and held-out sets, written to build-data/train/<domain>.jsonl (git-ignored) with MANIFEST.tsv.

Usage:  python3 scripts/build_training_text.py [--out build-data/train]

It reuses the pools of scripts/build_calibration_data.py and skips every file that
calibration_data/manifest.json lists (by path and by content). Then, so that no training text
leaks into the held-out measurements, it removes from the training documents every paragraph
of 200+ characters that also occurs in a calibration or held-out document (and repeats of such
paragraphs within the training text: licence headers and the like). At the end it checks and
prints the overlap, and exits non-zero if any file, document or long paragraph is shared.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_calibration_data as calibration  # noqa: E402  (the pools and their readers)

# Bytes of text per domain. The domains run out at different sizes; what each gives is printed.
TRAIN_BUDGET = {"code": 12_000_000, "legal": 6_000_000, "docs": 10_000_000, "math": 8_000_000}
# Whole-file pools: larger files (generated tables, huge modules) are skipped.
MAX_TRAIN_FILE_BYTES = 400_000
MIN_PARAGRAPH_CHARS = 200
NGRAM = 13


# Blank lines, and the " ." lines that stand for blank lines inside Debian copyright files.
PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\.?[ \t]*\n")


def paragraphs(text: str) -> list[str]:
    return PARAGRAPH_BREAK.split(text)


def paragraph_key(paragraph: str) -> str | None:
    """Whitespace-insensitive hash of a long paragraph; None for short ones (blank lines,
    `}` and the like repeat legitimately)."""
    normal = " ".join(paragraph.split())
    if len(normal) < MIN_PARAGRAPH_CHARS:
        return None
    return hashlib.sha1(normal.encode()).hexdigest()


def document_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def load_calibration(root: Path) -> tuple[list[dict], dict[str, list[str]]]:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    documents: dict[str, list[str]] = {}
    for domain in calibration.DOMAINS:
        documents[domain] = []
        for split in calibration.SPLITS:
            with (root / domain / f"{split}.jsonl").open(encoding="utf-8") as lines:
                documents[domain].extend(json.loads(line)["text"] for line in lines)
    return manifest, documents


def strip_paragraphs(text: str, seen: set[str]) -> tuple[str, int]:
    """The document without the long paragraphs already in `seen` (adds its own to it)."""
    kept, removed = [], 0
    for paragraph in paragraphs(text):
        key = paragraph_key(paragraph)
        if key is not None and key in seen:
            removed += 1
            continue
        if key is not None:
            seen.add(key)
        kept.append(paragraph)
    return "\n\n".join(kept).strip("\n") + "\n", removed


def training_candidates(domain: str, index, used_paths: set[str], used_content: set[str]):
    """All pool files of the domain that the calibration data did not use, in one hash order
    over the pools (so every pool is represented whatever the budget)."""
    candidates = []
    for pool in calibration.DOMAINS[domain]:
        for path in calibration.candidate_paths(pool, index):
            if path in used_paths:
                continue
            candidates.append(calibration.Candidate(
                domain, pool, path, calibration.order_key(domain, pool, path)))
    candidates.sort(key=lambda c: c.key)
    return [c for c in candidates if calibration.file_sha256(c.path) not in used_content]


def build_domain(domain: str, index, used_paths, used_content, seen_paragraphs, out: Path,
                 manifest_rows: list[str]) -> dict:
    stats = {"files": 0, "documents": 0, "bytes": 0, "paragraphs_removed": 0}
    taken_content: set[str] = set()
    candidates = training_candidates(domain, index, used_paths, used_content)
    with (out / f"{domain}.jsonl").open("w", encoding="utf-8") as sink:
        for candidate, prepared in calibration.prefetch(candidates, index, None):
            if stats["bytes"] >= TRAIN_BUDGET[domain]:
                break
            if prepared is None:
                continue
            digest = calibration.file_sha256(candidate.path)
            if digest in taken_content:
                continue
            documents, licence = prepared
            if (candidate.pool.whole_files_only
                    and sum(len(d.encode()) for d in documents) > MAX_TRAIN_FILE_BYTES):
                continue
            taken_content.add(digest)
            written = 0
            for document in documents:
                text, removed = strip_paragraphs(document, seen_paragraphs)
                stats["paragraphs_removed"] += removed
                if len(text.strip()) < 200:
                    continue
                sink.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
                written += 1
                stats["bytes"] += len(text.encode())
            if written:
                stats["files"] += 1
                stats["documents"] += written
                package = index.owner.get(candidate.path, "")
                manifest_rows.append("\t".join([
                    domain, candidate.pool.name, candidate.path, package,
                    index.versions.get(package, ""), licence, digest, str(written)]))
    return stats


# ----------------------------------------------------------------------------------------------
# Overlap check
# ----------------------------------------------------------------------------------------------

def ngram_keys(text: str) -> set[int]:
    words = text.split()
    return {hash(tuple(words[i:i + NGRAM])) for i in range(len(words) - NGRAM + 1)}


def check_overlap(out: Path, manifest: list[dict], calibration_documents: dict[str, list[str]],
                  training_rows: list[str]) -> bool:
    """Prints the overlap between the training text and the calibration/held-out sets; False if
    any file, identical document or long paragraph is shared. Shared 13-word sequences are
    reported for information: common phrases ("under the terms of the GNU General Public
    License") cannot and need not be avoided."""
    calibration_paths = {row["path"] for row in manifest}
    calibration_content = {row["sha256"] for row in manifest}
    training_paths = {row.split("\t")[2] for row in training_rows}
    training_content = {row.split("\t")[6] for row in training_rows}
    shared_paths = calibration_paths & training_paths
    shared_content = calibration_content & training_content
    print(f"overlap check: files shared by path {len(shared_paths)}, "
          f"by content {len(shared_content)}")
    ok = not shared_paths and not shared_content
    for domain in calibration.DOMAINS:
        held_documents = {document_key(d) for d in calibration_documents[domain]}
        held_paragraphs = {k for d in calibration_documents[domain] for p in paragraphs(d)
                           if (k := paragraph_key(p)) is not None}
        held_ngrams: set[int] = set()
        for d in calibration_documents[domain]:
            held_ngrams |= ngram_keys(d)
        same_documents = same_paragraphs = 0
        matched_ngrams: set[int] = set()
        with (out / f"{domain}.jsonl").open(encoding="utf-8") as lines:
            for line in lines:
                text = json.loads(line)["text"]
                same_documents += document_key(text) in held_documents
                same_paragraphs += sum(1 for p in paragraphs(text)
                                       if paragraph_key(p) in held_paragraphs)
                matched_ngrams |= ngram_keys(text) & held_ngrams
        share = 100.0 * len(matched_ngrams) / max(1, len(held_ngrams))
        print(f"  {domain:6} identical documents {same_documents}, shared paragraphs of "
              f"{MIN_PARAGRAPH_CHARS}+ chars {same_paragraphs}, calibration/held-out "
              f"{NGRAM}-word sequences also in training {share:.1f}% (information)")
        ok = ok and same_documents == 0 and same_paragraphs == 0
    print("overlap check: " + ("PASS" if ok else "FAIL"))
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(calibration.REPO / "build-data" / "train"))
    parser.add_argument("--calibration", default=str(calibration.REPO / "calibration_data"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    manifest, calibration_documents = load_calibration(Path(args.calibration))
    index = calibration.PackageIndex.load()
    missing = calibration.missing_packages(index)
    if missing:
        print("missing Debian packages (see build_calibration_data.py --install): "
              + " ".join(missing), file=sys.stderr)
        return 1
    used_paths = {row["path"] for row in manifest}
    used_content = {row["sha256"] for row in manifest}
    # Long paragraphs of the calibration/held-out text: removed wherever they recur.
    seen_paragraphs = {k for documents in calibration_documents.values() for d in documents
                       for p in paragraphs(d) if (k := paragraph_key(p)) is not None}
    rows: list[str] = []
    total = 0
    for domain in calibration.DOMAINS:
        stats = build_domain(domain, index, used_paths, used_content, seen_paragraphs, out, rows)
        total += stats["bytes"]
        print(f"{domain:6} files {stats['files']:5}  documents {stats['documents']:6}  "
              f"bytes {stats['bytes']:9}  long paragraphs removed {stats['paragraphs_removed']}")
    header = "domain\tpool\tpath\tpackage\tversion\tlicence\tsha256\tdocuments"
    (out / "MANIFEST.tsv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    print(f"total {total} bytes of text in {out}")
    return 0 if check_overlap(out, manifest, calibration_documents, rows) else 1


if __name__ == "__main__":
    sys.exit(main())
