#!/usr/bin/env python3
"""Builds calibration_data/: four domain sets (code, legal, docs, math), each with a
`calibration` and a `heldout` split, from text that Debian packages install on this machine.

Usage:  python3 scripts/build_calibration_data.py [--install] [--out calibration_data]

Everything is deterministic: candidate files come from the packages' file lists (sorted), and
the order in which files are taken is the SHA-256 of "<domain>:<pool>:<path>", so the same
packages at the same versions always give byte-identical output. Which files were used, with
package, version, licence and SHA-256, is written to calibration_data/manifest.json and
calibration_data/SOURCES.md. scripts/build_training_text.py imports this module: it uses the
same pools and takes only files that this script did not use.

Licences: a pool either fixes the licence of its files (checked by hand against the package's
copyright file, see POOLS) or reads it per file (an SPDX line in the file, or the DEP-5
stanza of a Debian copyright file). Files whose licence is not in ALLOWED_LICENCE are skipped.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

SALT = "indexcache-calibration-v1"
REPO = Path(__file__).resolve().parent.parent
SPLITS = ("calibration", "heldout")

# Licences that permit redistribution (copyleft or permissive). Matched at the start of the
# licence name, case-insensitively.
ALLOWED_LICENCE = re.compile(
    r"^(L?GPL|GFDL|BSD|0BSD|Expat|MIT|ISC|Apache|PSF|public-domain|CC0|Artistic|Zlib|X11|"
    r"MPL|curl|FSFAP|FSFUL|Linux-man-pages-copyleft|licence text|DFSG)", re.IGNORECASE)

# Debian packages the pools read. --install installs the missing ones with apt-get.
PACKAGES = [
    "libpython3.11-minimal", "libpython3.11-stdlib", "libc6-dev", "libstdc++-12-dev",
    "base-files", "manpages", "manpages-dev", "git-man", "coreutils", "iproute2", "systemd",
    "openssl", "util-linux", "maxima-doc", "pari-doc", "r-doc-info", "octave-doc", "man-db",
    "bsdextrautils",
]


# ----------------------------------------------------------------------------------------------
# Text clean-up and document splitting
# ----------------------------------------------------------------------------------------------

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_text(text: str) -> str:
    """Newlines normalised, control characters (backspaces, form feeds, info separators) removed,
    trailing blank space trimmed: what is left is plain UTF-8 text."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = CONTROL.sub("", text)
    return text.strip("\n") + "\n"


def read_bytes(path: str) -> bytes:
    data = Path(path).read_bytes()
    return gzip.decompress(data) if path.endswith(".gz") else data


def decode_utf8(data: bytes) -> str | None:
    """Files that are not valid UTF-8 are skipped rather than guessed at."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def whole_file(path: str) -> list[str]:
    text = decode_utf8(read_bytes(path))
    return [] if text is None else [clean_text(text)]


def info_nodes(path: str) -> list[str]:
    """An info file split into its nodes (one document each). The preamble, the indirect table
    and the tag table are navigation data, not text, and are dropped."""
    text = decode_utf8(read_bytes(path))
    if text is None:
        return []
    documents = []
    for chunk in text.split("\x1f"):
        chunk = chunk.lstrip("\n")
        if not chunk.startswith("File: "):
            continue
        body = chunk.split("\n", 1)[1] if "\n" in chunk else ""
        if len(body.strip()) >= 200:
            documents.append(clean_text(body))
    return documents


TEX_SECTION = re.compile(r"^(?=\\section\{)", re.MULTILINE)


def tex_sections(path: str) -> list[str]:
    """A TeX chapter split at \\section (one document per section, the text before the first
    section being one more)."""
    text = decode_utf8(read_bytes(path))
    if text is None:
        return []
    return [clean_text(part) for part in TEX_SECTION.split(text) if len(part.strip()) >= 200]


def man_page(path: str) -> list[str]:
    """A man page rendered to plain text by man-db (80 columns, no hyphenation or justification,
    overstrike removed by col -bx). Pages that only redirect (.so) are skipped."""
    raw = read_bytes(path)
    if raw.lstrip().startswith(b".so "):
        return []
    environment = dict(os.environ, MANWIDTH="80", LANG="C.UTF-8", LC_ALL="C.UTF-8")
    environment.pop("MAN_KEEP_FORMATTING", None)
    rendered = subprocess.run(
        ["sh", "-c", 'man -E UTF-8 --no-hyphenation --no-justification -l "$1" 2>/dev/null | col -bx',
         "sh", path], capture_output=True, env=environment, check=False).stdout
    text = decode_utf8(rendered)
    if text is None or len(text.strip()) < 500:
        return []
    return [clean_text(text)]


# ----------------------------------------------------------------------------------------------
# Licences per file
# ----------------------------------------------------------------------------------------------

SPDX = re.compile(rb"SPDX-License-Identifier:\s*([^\s*]+(?:\s+(?:WITH|OR|AND)\s+[^\s*]+)*)")


def spdx_licence(path: str) -> str | None:
    match = SPDX.search(read_bytes(path)[:8192])
    return match.group(1).decode("ascii", "replace") if match else None


def dep5_paragraphs(text: str) -> list[dict[str, str]]:
    paragraphs = []
    for block in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        name = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and name:
                fields[name] += "\n" + line.strip()
            elif ":" in line:
                name, value = line.split(":", 1)
                name = name.strip().lower()
                fields[name] = value.strip()
        paragraphs.append(fields)
    return paragraphs


def copyright_file_licence(path: str) -> str | None:
    """The licence of a machine-readable (DEP-5) Debian copyright file itself: that of the
    stanza covering debian/* (the packaging, where the file lives), else that of Files: *.
    Free-form copyright files return None and are skipped."""
    text = decode_utf8(read_bytes(path))
    if text is None or not text.startswith("Format:") or "copyright-format" not in text[:200]:
        return None
    paragraphs = [p for p in dep5_paragraphs(text) if "files" in p and "license" in p]
    for wanted in ("debian/*", "*"):
        for paragraph in paragraphs:
            if wanted in paragraph["files"].split():
                return paragraph["license"].split("\n", 1)[0].strip()
    return None


def free_form_copyright_licence(path: str) -> str | None:
    """Free-form (not DEP-5) copyright files, used as training text only."""
    text = decode_utf8(read_bytes(path))
    if text is None or (text.startswith("Format:") and "copyright-format" in text[:200]):
        return None
    return "DFSG-free (Debian main packaging, free-form copyright file)"


def licence_text_notice(path: str) -> str:
    """Licence texts are redistributable verbatim; say where the text itself says so."""
    head = read_bytes(path)[:4000].decode("utf-8", "replace")
    if "Everyone is permitted to copy and distribute verbatim copies" in head:
        return "licence text (verbatim copying permitted by its own notice)"
    return "licence text (standard licence text, redistributed verbatim)"


def keyword_licence(default: str) -> Callable[[str], str]:
    """Source files: an SPDX line if present, else a recognisable licence notice, else the
    package's licence (checked by hand against its copyright file)."""
    def licence(path: str) -> str:
        spdx = spdx_licence(path)
        if spdx:
            return spdx
        head = read_bytes(path)[:6000].decode("utf-8", "replace")
        if "GNU Lesser General Public" in head:
            return "LGPL-2.1+" if "2.1" in head else "LGPL-2+"
        if "GCC Runtime Library Exception" in head:
            return "GPL-3+ WITH GCC-exception-3.1"
        if "GNU General Public License" in head:
            return "GPL-2+" if "version 2" in head else "GPL-3+" if "version 3" in head else "GPL"
        return default
    return licence


def fixed_licence(name: str) -> Callable[[str], str]:
    return lambda path: name


# ----------------------------------------------------------------------------------------------
# Pools: where each domain's files come from
# ----------------------------------------------------------------------------------------------

@dataclass
class Pool:
    name: str
    packages: list[str]              # Debian packages whose file lists are searched ("*": all)
    pattern: str                     # regular expression a path must match (re.fullmatch)
    split: Callable[[str], list[str]]
    licence: Callable[[str], str | None]
    share: float                     # fraction of the domain's calibration/held-out budget
    max_file_bytes: int = 120_000    # calibration/held-out: larger files are cut (split files)
    whole_files_only: bool = True    # or skipped (files that are one document)
    in_calibration: bool = True      # False: training text only


DOMAINS: dict[str, list[Pool]] = {
    "code": [
        Pool("python-stdlib", ["libpython3.11-minimal", "libpython3.11-stdlib"],
             r"/usr/lib/python3\.11/.*\.py", whole_file, fixed_licence("PSF-2.0"), 0.6),
        Pool("glibc-headers", ["libc6-dev"], r"/usr/include/.*\.h", whole_file,
             keyword_licence("LGPL-2.1+"), 0.2),
        Pool("libstdc++-headers", ["libstdc++-12-dev"], r"/usr/include/c\+\+/12/.*", whole_file,
             keyword_licence("GPL-3+ WITH GCC-exception-3.1"), 0.2),
    ],
    "legal": [
        Pool("common-licenses", ["base-files"], r"/usr/share/common-licenses/.*", whole_file,
             licence_text_notice, 0.2),
        Pool("debian-copyright", ["*"], r"/usr/share/doc/[^/]+/copyright", whole_file,
             copyright_file_licence, 0.8),
        # Training text only: free-form copyright files do not state their own licence; as
        # packaging of Debian main they are DFSG-free, but that is too vague to redistribute.
        Pool("debian-copyright-free-form", ["*"], r"/usr/share/doc/[^/]+/copyright", whole_file,
             free_form_copyright_licence, 0.0, in_calibration=False),
    ],
    "docs": [
        Pool("linux-man-pages", ["manpages", "manpages-dev"], r"/usr/share/man/man[1-8]/.*\.gz",
             man_page, lambda path: spdx_licence(path) or "GPL-2+", 0.6),
        Pool("tool-man-pages", ["git-man", "coreutils", "iproute2", "systemd", "openssl",
                                "util-linux"],
             r"/usr/share/man/man[1-8]/.*\.gz", man_page, None, 0.4),  # licence: TOOL_LICENCES
    ],
    "math": [
        Pool("maxima-manual", ["maxima-doc"], r"/usr/share/info/.*\.info(-\d+)?\.gz", info_nodes,
             fixed_licence("GPL-2"), 0.55, max_file_bytes=250_000, whole_files_only=False),
        Pool("pari-manual", ["pari-doc"], r"/usr/share/pari/doc/(users|tutorial|develop|refcard).*\.tex",
             tex_sections, fixed_licence("GPL-2+"), 0.45, max_file_bytes=250_000,
             whole_files_only=False),
        Pool("r-manuals", ["r-doc-info"], r"/usr/share/info/R-.*\.gz", info_nodes,
             fixed_licence("GPL-2+ (R Core manual permission notice: verbatim copies)"), 0.0,
             whole_files_only=False, in_calibration=False),
        Pool("octave-manual", ["octave-doc"], r"/usr/share/info/(lib)?octave\.info.*\.gz",
             info_nodes, fixed_licence("GPL-3+"), 0.0, whole_files_only=False,
             in_calibration=False),
    ],
}

# Package licences of the tool man pages (DEP-5 "Files: *" stanza of each copyright file,
# checked by hand; an SPDX line in a page wins).
TOOL_LICENCES = {
    "git-man": "GPL-2", "coreutils": "GPL-3+", "iproute2": "GPL-2", "systemd": "LGPL-2.1+",
    "openssl": "Apache-2.0", "util-linux": "GPL-2+",
}

# Budget of document text per domain and split (bytes of UTF-8).
BUDGET = {"calibration": 800_000, "heldout": 300_000}


# ----------------------------------------------------------------------------------------------
# Package metadata
# ----------------------------------------------------------------------------------------------

@dataclass
class PackageIndex:
    files: dict[str, list[str]] = field(default_factory=dict)   # package -> its paths
    owner: dict[str, str] = field(default_factory=dict)         # path -> package
    versions: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def load() -> "PackageIndex":
        index = PackageIndex()
        info = Path("/var/lib/dpkg/info")
        for listing in sorted(info.glob("*.list")):
            package = listing.stem.split(":", 1)[0]
            paths = listing.read_text(encoding="utf-8", errors="replace").splitlines()
            index.files.setdefault(package, []).extend(paths)
            for path in paths:
                index.owner.setdefault(path, package)
        query = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\n"],
                               capture_output=True, text=True, check=True).stdout
        for line in query.splitlines():
            package, version = line.split("\t")
            index.versions[package] = version
        return index


def candidate_paths(pool: Pool, index: PackageIndex) -> list[str]:
    packages = sorted(index.files) if pool.packages == ["*"] else pool.packages
    pattern = re.compile(pool.pattern)
    paths = set()
    for package in packages:
        for path in index.files.get(package, []):
            if pattern.fullmatch(path) and os.path.isfile(path) and not os.path.islink(path):
                paths.add(path)
    return sorted(paths)


def order_key(domain: str, pool: Pool, path: str) -> str:
    return hashlib.sha256(f"{SALT}:{domain}:{pool.name}:{path}".encode()).hexdigest()


def file_sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def licence_of(pool: Pool, path: str, index: PackageIndex) -> str | None:
    if pool.licence is not None:
        return pool.licence(path)
    return spdx_licence(path) or TOOL_LICENCES.get(index.owner.get(path, ""))


# ----------------------------------------------------------------------------------------------
# Selection
# ----------------------------------------------------------------------------------------------

@dataclass
class Candidate:
    domain: str
    pool: Pool
    path: str
    key: str


@dataclass
class Taken:
    domain: str
    split: str
    pool: str
    path: str
    package: str
    version: str
    licence: str
    sha256: str             # of the installed file's bytes (compressed where it is .gz)
    documents: list[str]


def ordered_candidates(domain: str, index: PackageIndex) -> dict[str, list[Candidate]]:
    """Per pool, its files in the fixed hash order."""
    result = {}
    for pool in DOMAINS[domain]:
        candidates = [Candidate(domain, pool, path, order_key(domain, pool, path))
                      for path in candidate_paths(pool, index)]
        result[pool.name] = sorted(candidates, key=lambda c: c.key)
    return result


def prepare(candidate: Candidate, index: PackageIndex, limit: int | None
            ) -> tuple[list[str], str] | None:
    """The documents a file gives (cut to `limit` bytes where the pool allows cutting) and its
    licence; None when the file is unusable (licence not allowed, not UTF-8, too big, empty)."""
    licence = licence_of(candidate.pool, candidate.path, index)
    if not licence or not ALLOWED_LICENCE.match(licence):
        return None
    documents = candidate.pool.split(candidate.path)
    if not documents:
        return None
    size = sum(len(d.encode()) for d in documents)
    if limit is not None and size > limit:
        if candidate.pool.whole_files_only:
            return None
        documents = leading_documents(documents, limit)
    return documents, licence


def leading_documents(documents: list[str], limit: float) -> list[str]:
    """The first documents of a file, stopping once `limit` bytes are reached (at least one)."""
    kept, total = [], 0
    for document in documents:
        if kept and total >= limit:
            break
        kept.append(document)
        total += len(document.encode())
    return kept


def prefetch(candidates: list[Candidate], index: PackageIndex, limit: int | None, window: int = 64):
    """Yields (candidate, prepared) in order, preparing a window ahead on two threads (man page
    rendering runs a subprocess per page)."""
    with ThreadPoolExecutor(max_workers=2) as executor:
        for start in range(0, len(candidates), window):
            batch = candidates[start:start + window]
            for candidate, prepared in zip(batch, executor.map(
                    lambda c: prepare(c, index, limit), batch)):
                yield candidate, prepared


def take_split(domain: str, split: str, ordered: dict[str, list[Candidate]], used: set[str],
               seen_content: set[str], index: PackageIndex) -> list[Taken]:
    """Files for one split: per pool, in hash order, until the pool's share of the budget is met.
    A file whose bytes equal an already taken file (same text in two packages) is skipped."""
    taken = []
    for pool in DOMAINS[domain]:
        if not pool.in_calibration:
            continue
        budget = BUDGET[split] * pool.share
        total = 0
        remaining = [c for c in ordered[pool.name] if c.path not in used]
        for candidate, prepared in prefetch(remaining, index, pool.max_file_bytes, window=16):
            if total >= budget:
                break
            if prepared is None:
                continue
            digest = file_sha256(candidate.path)
            if digest in seen_content:
                continue
            documents, licence = prepared
            if not pool.whole_files_only:  # a cut file stops at the pool's budget
                documents = leading_documents(documents, budget - total)
            seen_content.add(digest)
            used.add(candidate.path)
            package = index.owner.get(candidate.path, "")
            taken.append(Taken(domain, split, pool.name, candidate.path, package,
                               index.versions.get(package, ""), licence, digest, documents))
            total += sum(len(d.encode()) for d in documents)
    return taken


def select_all(index: PackageIndex) -> list[Taken]:
    taken: list[Taken] = []
    for domain in DOMAINS:
        ordered = ordered_candidates(domain, index)
        used: set[str] = set()
        seen: set[str] = set()
        for split in SPLITS:
            taken.extend(take_split(domain, split, ordered, used, seen, index))
    return taken


# ----------------------------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------------------------

def write_jsonl(path: Path, documents: Iterable[str]) -> None:
    with path.open("w", encoding="utf-8") as out:
        for document in documents:
            out.write(json.dumps({"text": document}, ensure_ascii=False) + "\n")


def write_sets(out: Path, taken: list[Taken]) -> dict:
    stats = {}
    for domain in DOMAINS:
        (out / domain).mkdir(parents=True, exist_ok=True)
        for split in SPLITS:
            files = sorted((t for t in taken if t.domain == domain and t.split == split),
                           key=lambda t: (t.pool, t.path))
            documents = [d for t in files for d in t.documents]
            write_jsonl(out / domain / f"{split}.jsonl", documents)
            stats[(domain, split)] = {
                "files": len(files), "documents": len(documents),
                "text_bytes": sum(len(d.encode()) for d in documents),
                "file_bytes": (out / domain / f"{split}.jsonl").stat().st_size,
                "licences": sorted({t.licence for t in files}),
            }
    return stats


def write_manifest(out: Path, taken: list[Taken]) -> None:
    records = [{"domain": t.domain, "split": t.split, "pool": t.pool, "path": t.path,
                "package": t.package, "version": t.version, "licence": t.licence,
                "sha256": t.sha256, "documents": len(t.documents),
                "text_bytes": sum(len(d.encode()) for d in t.documents)}
               for t in sorted(taken, key=lambda t: (t.domain, t.split, t.pool, t.path))]
    (out / "manifest.json").write_text(json.dumps(records, indent=1) + "\n", encoding="utf-8")


SOURCES_HEADER = """# Sources and licences of the bundled calibration data

Generated by `scripts/build_calibration_data.py` (do not edit by hand). Every record of
`<domain>/<split>.jsonl` is text from one of the files below, installed by the named Debian 12
("bookworm") package at the named version. `manifest.json` holds the same table as data.

How the text was derived from each file:

- **code**: the file as is (Python modules, C and C++ headers).
- **legal**: the file as is. Debian `copyright` files are taken only when machine-readable
  (DEP-5); the licence given is that of the stanza covering `debian/*` (where the file lives),
  else that of `Files: *`. The texts in `/usr/share/common-licenses` are licence texts,
  redistributed verbatim.
- **docs**: man pages rendered to plain text with man-db
  (`MANWIDTH=80 man -E UTF-8 --no-hyphenation --no-justification -l PAGE | col -bx`). The
  licence is the page's own `SPDX-License-Identifier` line where it has one, else the package's
  licence (the `Files: *` stanza of its copyright file).
- **math**: info manuals split into nodes (one record per node; navigation tables dropped),
  TeX chapters split at `\\section`. A file larger than 250 KB contributes its leading nodes or
  sections only.

In every domain control characters (backspaces, form feeds, info separators) were removed and
line ends normalised; files that are not valid UTF-8 were skipped. The full texts of the
licences named here are in `/usr/share/common-licenses` on any Debian system, several of them
are records of `legal/`, and `LICENSES/` holds copies of those that the files below name.
"""


def write_sources(out: Path, taken: list[Taken], stats: dict) -> None:
    lines = [SOURCES_HEADER, "## Summary\n",
             "| domain | split | files | documents | text bytes | licences |",
             "| --- | --- | ---: | ---: | ---: | --- |"]
    for (domain, split), s in stats.items():
        lines.append(f"| {domain} | {split} | {s['files']} | {s['documents']} | "
                     f"{s['text_bytes']} | {', '.join(s['licences'])} |")
    lines.append("\n## Packages\n")
    lines.append("| package | version | source |")
    lines.append("| --- | --- | --- |")
    for package, version in sorted({(t.package, t.version) for t in taken}):
        lines.append(f"| {package} | {version} | Debian 12 |")
    for domain in DOMAINS:
        for split in SPLITS:
            lines.append(f"\n## {domain} / {split}\n")
            lines.append("| file | package | licence | documents | bytes | sha256 (first 16) |")
            lines.append("| --- | --- | --- | ---: | ---: | --- |")
            for t in sorted((t for t in taken if t.domain == domain and t.split == split),
                            key=lambda t: (t.pool, t.path)):
                size = sum(len(d.encode()) for d in t.documents)
                lines.append(f"| `{t.path}` | {t.package} | {t.licence} | {len(t.documents)} | "
                             f"{size} | {t.sha256[:16]} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


# Full texts of the licences named in SOURCES.md, copied so that the folder carries them.
LICENCE_TEXTS = {
    "GPL-1": "/usr/share/common-licenses/GPL-1", "GPL-2": "/usr/share/common-licenses/GPL-2",
    "GPL-3": "/usr/share/common-licenses/GPL-3", "LGPL-2": "/usr/share/common-licenses/LGPL-2",
    "LGPL-2.1": "/usr/share/common-licenses/LGPL-2.1",
    "LGPL-3": "/usr/share/common-licenses/LGPL-3",
    "Apache-2.0": "/usr/share/common-licenses/Apache-2.0",
    "Artistic": "/usr/share/common-licenses/Artistic",
    "PSF-2.0": "/usr/lib/python3.11/LICENSE.txt",
}


def roff_notice(path: str) -> str:
    """The comment block at the top of a man page's source: its copyright and licence notice,
    which rendering drops (the Linux man-pages and BSD licences ask formatted copies to carry
    it)."""
    lines = []
    for line in read_bytes(path).decode("utf-8", "replace").splitlines():
        if not (line.startswith('.\\"') or line.startswith("'\\\"")):
            if lines:
                break
            continue
        lines.append(line[3:].rstrip())
    text = "\n".join(lines).strip("\n")
    return text if re.search(r"copyright|licen[cs]e|\(c\)", text, re.IGNORECASE) else ""


def package_notice(package: str) -> str:
    """For a page whose source has no notice: the Files: * stanza of its package's copyright
    file (copyright holders and licence)."""
    path = f"/usr/share/doc/{package}/copyright"
    text = decode_utf8(read_bytes(path)) or ""
    for paragraph in dep5_paragraphs(text):
        if "*" in paragraph.get("files", "").split():
            return (f"From {path}, Files: *\nCopyright: {paragraph.get('copyright', '')}\n"
                    f"License: {paragraph.get('license', '').splitlines()[0]}")
    return f"See {path}."


def write_notices(out: Path, taken: list[Taken]) -> None:
    lines = ["# Notices of the rendered man pages", "",
             "Rendering a man page drops the comments of its source, where its copyright and "
             "licence notice are. They are reproduced here, per page, as the licences ask of "
             "formatted copies. (Code, licence texts and manuals are included with their "
             "notices in the text itself.)", ""]
    for t in sorted((t for t in taken if t.domain == "docs"), key=lambda t: t.path):
        notice = roff_notice(t.path) or package_notice(t.package)
        lines.append(f"## `{t.path}` ({t.package} {t.version}, {t.licence})\n")
        lines.append("```\n" + notice + "\n```\n")
    (out / "NOTICES.md").write_text("\n".join(lines), encoding="utf-8")


def write_licences(out: Path) -> None:
    folder = out / "LICENSES"
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in LICENCE_TEXTS.items():
        (folder / name).write_bytes(Path(source).read_bytes())
    # The man-pages licence is stated only inside the manpages package's copyright file.
    (folder / "Linux-man-pages-copyleft").write_text(
        standalone_licence("/usr/share/doc/manpages/copyright", "Linux-man-pages-copyleft"),
        encoding="utf-8")


def standalone_licence(path: str, name: str) -> str:
    """The text of a stand-alone "License: NAME" paragraph of a DEP-5 copyright file."""
    for paragraph in dep5_paragraphs(decode_utf8(read_bytes(path)) or ""):
        if "files" not in paragraph and paragraph.get("license", "").startswith(name):
            body = paragraph["license"].split("\n", 1)[1]
            return "\n".join("" if line == "." else line for line in body.splitlines()) + "\n"
    raise SystemExit(f"{path}: no stand-alone License: {name} paragraph")


def missing_packages(index: PackageIndex) -> list[str]:
    return [p for p in PACKAGES if p not in index.versions]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(REPO / "calibration_data"))
    parser.add_argument("--install", action="store_true",
                        help="apt-get update and install the Debian packages the pools read")
    args = parser.parse_args()
    index = PackageIndex.load()
    missing = missing_packages(index)
    if missing and args.install:
        apt_environment = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update"], check=True, env=apt_environment)
        subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing],
                       check=True, env=apt_environment)
        index = PackageIndex.load()
        missing = missing_packages(index)
    if missing:
        print("missing Debian packages (run with --install): " + " ".join(missing), file=sys.stderr)
        return 1
    out = Path(args.out)
    taken = select_all(index)
    stats = write_sets(out, taken)
    write_manifest(out, taken)
    write_sources(out, taken, stats)
    write_licences(out)
    write_notices(out, taken)
    for (domain, split), s in stats.items():
        print(f"{domain:6} {split:12} files {s['files']:4}  documents {s['documents']:5}  "
              f"bytes {s['file_bytes']:8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
