#!/usr/bin/env python3
"""Regenerates tests/bad_inputs/README.md, the bad-input catalogue, from the tests that run it.

Rows come from three files, read as text (no build needed):
- tests/test_bad_input_catalogue.cpp: the table rows {"input", make, {"fragment", ...}};
- tests/test_tools_bad_input.cpp: SECTION("input") { ... expect_rejected(copy, {"fragment", ...}
- tests/test_plan.cpp: the rejected(...) command-line rows and the plan/journal checks, listed
  by hand below (they are not in table form).
Run from anywhere: python3 tests/bad_inputs/make_readme.py
"""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)

STRING = r'"(?:[^"\\]|\\.)*"'
GROUP = re.compile(r"\{(" + STRING + r"(?:,\s*" + STRING + r")*)\}")


def strings(text):
    return [bytes(s[1:-1], "utf-8").decode("unicode_escape") for s in re.findall(STRING, text)]


def catalogue_rows():
    text = open(os.path.join(TESTS, "test_bad_input_catalogue.cpp"), encoding="utf-8").read()
    rows = []
    for case in re.finditer(r'TEST_CASE\("catalogue: ([^"]+)"(.*?)\n\}\n', text, re.S):
        area, body = case.group(1), case.group(2)
        starts = [m.start() for m in re.finditer(r"\n      \{\"", body)]
        starts.append(len(body))
        for begin, end in zip(starts, starts[1:]):
            row = body[begin:end]
            title = strings(row)[0]
            groups = GROUP.findall(row)
            rows.append((area, title, strings(groups[-1]) if groups else []))
    return rows


def tools_bad_input_rows():
    text = open(os.path.join(TESTS, "test_tools_bad_input.cpp"), encoding="utf-8").read()
    rows = []
    for case in re.finditer(r'TEST_CASE\("([^"]+)"(.*?)\n\}\n', text, re.S):
        area = case.group(1).replace(" are rejected with exit 2", "").replace(" is rejected with exit 2", "")
        for section in re.finditer(r'SECTION\("([^"]+)"\)(.*?)(?=SECTION\(|\Z)', case.group(2), re.S):
            found = re.search(r"expect_rejected\(copy, " + GROUP.pattern, section.group(2))
            if found:
                rows.append((area, section.group(1), strings(found.group(1))))
    return rows


# tests/test_plan.cpp checks these in line (exit 2, one line, the fragment, nothing written).
PLAN_ROWS = [
    ("search command line", "--keep 0", ["--keep"]),
    ("search command line", "--keep 1.5", ["--keep"]),
    ("search command line", "--keep-layers 0", ["--keep-layers"]),
    ("search command line", "--keep-layers 7 on a 6-layer model", ["[1, 6]"]),
    ("search command line", "--keep and --keep-layers together", ["not both"]),
    ("search command line", "neither --keep nor --keep-layers", ["--keep"]),
    ("search command line", "--pp-stages 0,9 on a 6-layer model", ["--pp-stages"]),
    ("search command line", "--out in a missing directory", ["/nonexistent/dir"]),
    ("search command line", "--out in an unwritable directory (/proc)", ["not writable"]),
    ("search command line", "--resume without a journal", ["journal"]),
    ("search command line", "an unknown flag", ["bogus"]),
    ("journal", "a journal of a different run (--keep-layers 3 resumed as 2)",
     ["different run: target_kept was 3, now 2"]),
    ("plan", "--validate --pp-stages whose stage starts on an S layer", ["layer 3"]),
    ("plan", "--validate against other weights (fingerprint)", ["model.layers.0.self_attn.indexer.wq_b.weight"]),
    ("plan", "--validate against another model type", ["model.model_type"]),
    ("plan", "a pattern of the wrong length", ["bad.yaml"]),
    ("plan", "kept that does not match the pattern", ["kept"]),
    ("plan", "an unknown format", []),
    ("plan", "seq_len of the wrong YAML type", ["calibration.seq_len"]),
    ("plan", "a plan that is not YAML", []),
    ("plan", "a missing plan file", []),
]


# The issue's list of required inputs (issue 8), each with a pattern over the row titles (and
# area) that finds the rows covering it.
ISSUE_ITEMS = [
    ("truncated files at several offsets", r"truncated|missing its last byte"),
    ("header length of 0", r"header length (of )?0"),
    ("header length > file size", r"header length (past|one byte more)"),
    ("overlapping tensors", r"overlapping"),
    ("NaN/Inf in weights (the tensor named)", r"NaN|Inf"),
    ("wrong shapes for the config", r"wrong shape|does not match the tensor shapes|scale of the wrong shape"),
    ("config fields of the wrong JSON type", r"is a float|is a string|wrong JSON type|wrong YAML type|format is a number"),
    ("huge dimensions that overflow size computations", r"overflow|2\^40|a million"),
    ("symlink loops", r"symlink loop"),
    ("a directory where a file is expected", r"is a directory|names a directory|names a file, not"),
    ("permission denied", r"permission denied|unwritable"),
    ("disk full (tmpfs ENOSPC, RLIMIT_FSIZE)", r"disk full|file size limit"),
    ("invalid UTF-8 in text data", r"invalid UTF-8"),
    ("a 10 MB single-line document", r"10 MB"),
    ("input_ids negative or above the vocabulary", r"input_ids|input id|beyond the model's vocabulary"),
]


def coverage(sections):
    lines = ["| issue item | rows |", "|---|---|"]
    for item, pattern in ISSUE_ITEMS:
        found = []
        for prefix, rows in sections:
            for number, (area, title, _) in enumerate(rows, 1):
                if re.search(pattern, title, re.I):
                    found.append(f"{prefix}{number}")
        lines.append(f"| {item} | {', '.join(found) or 'MISSING'} |")
    return "\n".join(lines)


def table(rows, prefix):
    lines = ["| # | area | input | expected in the message |", "|---|---|---|---|"]
    for number, (area, title, fragments) in enumerate(rows, 1):
        shown = ", ".join("`" + f.replace("|", "\\|") + "`" for f in fragments) or "(exit 2, one line)"
        lines.append(f"| {prefix}{number} | {area} | {title.replace('|', '/')} | {shown} |")
    return "\n".join(lines)


def main():
    catalogue = catalogue_rows()
    tools = tools_bad_input_rows()
    total = len(catalogue) + len(tools) + len(PLAN_ROWS)
    titles = [title for _, title, _ in catalogue + tools + PLAN_ROWS]
    duplicates = sorted({t for t in titles if titles.count(t) > 1})
    text = f"""# Bad-input catalogue

Every input below makes `indexcache-calibrate` exit with status 2 and print one line,
`error: <file or option>: <problem>`, holding the listed fragments; no output file or
temporary file is left behind, and nothing crashes or hangs. {total} cases in all.

Generated by `tests/bad_inputs/make_readme.py` from the tests that run them; edit the tests,
then regenerate. Inputs are made by the tests (copies of the golden checkpoints with one thing
broken), so this folder holds no data files.

How the harder cases are made:
- permission denied: root ignores permission bits, so the tool runs under
  `setpriv --bounding-set=-dac_override,-dac_read_search` (root without the capabilities that
  bypass them) on a `chmod 000` file; skipped with a WARN where setpriv cannot do that;
- disk full: a full 16 KiB tmpfs mounted in the test's folder (ENOSPC; skipped with a WARN
  where mount is not allowed), and `ulimit -f 1` (RLIMIT_FSIZE, EFBIG) everywhere;
- FIFOs stand where a file is expected, to check that no reader blocks on one;
- symlink loops (a link to itself) and directories where a file is expected.

Rows are numbered C (catalogue), T (tools) and P (plan). The issue's list, and the rows that
cover each item:

{coverage([("C", catalogue), ("T", tools), ("P", PLAN_ROWS)])}

Crash safety (SIGKILL during journal writes, NaN/Inf activations and losses) is tested in
`tests/test_crash_safety.cpp`; the fuzz targets are in `tests/fuzz/`.

## tests/test_bad_input_catalogue.cpp ({len(catalogue)} cases)

{table(catalogue, "C")}

## tests/test_tools_bad_input.cpp ({len(tools)} cases)

{table(tools, "T")}

## tests/test_plan.cpp ({len(PLAN_ROWS)} cases)

{table(PLAN_ROWS, "P")}
"""
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8") as out:
        out.write(text)
    print(f"{total} cases ({len(set(titles))} distinct titles; repeated: {duplicates})")


if __name__ == "__main__":
    main()
