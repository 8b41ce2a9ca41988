#!/usr/bin/env python3
"""Lists the C functions of the given files (or src/ by default) with their length in lines, longest first.

A function's length counts its lines from the first line of its signature to its closing brace. The scan
strips comments, strings and character literals and follows the braces, so it needs no compiler.

  tools/func_lengths.py [--top N] [--over N] [FILE...]

--over N prints only the functions longer than N lines and exits 1 when there is one
(tests/sh/lint_functions.sh uses it; STYLE.md: functions under ~100 lines)."""
import argparse
import glob
import re
import signal
import sys

IDENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\($")


def strip(text):
    """The text with comments, strings and char literals blanked (newlines kept, so line numbers hold)."""
    out = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(c + " " * (min(j, n) - i - 1) + (c if j < n else ""))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def functions(path):
    """(name, first line, last line) of every function defined at file scope in path."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = strip(f.read()).split("\n")
    # drop preprocessor lines (with their continuations): macros are not functions
    cont = False
    for k, ln in enumerate(lines):
        is_pp = cont or ln.lstrip().startswith("#")
        cont = is_pp and ln.rstrip().endswith("\\")
        if is_pp:
            lines[k] = ""
    found = []
    depth = 0
    head = []        # the file-scope text since the last ';' or '}' at depth 0, with line numbers
    start = None     # (name, first line) of the function being read
    for ln_no, ln in enumerate(lines, 1):
        for c in ln:
            if depth == 0:
                if c == "{":
                    sig = "".join(ch for ch, _ in head)
                    m = None
                    paren = sig.find("(")
                    if paren > 0 and "=" not in sig[:paren] and not re.match(r"\s*(typedef|struct|union|enum)\b", sig):
                        m = IDENT.search(sig[: paren + 1].rstrip()[:-1].rstrip() + "(")
                    if m:
                        first = next((l for ch, l in head if not ch.isspace()), ln_no)
                        start = (m.group(1), first)
                    else:
                        start = None
                    head = []
                    depth = 1
                elif c == ";":
                    head = []
                else:
                    head.append((c, ln_no))
            else:
                if c == "{":
                    depth += 1
                elif c == "}":
                    depth -= 1
                    if depth == 0:
                        if start:
                            found.append((start[0], start[1], ln_no))
                        start = None
                        head = []
        if depth == 0:
            head.append(("\n", ln_no))
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=0, help="print only the N longest")
    ap.add_argument("--over", type=int, default=0, help="print only those longer than N lines; exit 1 if any")
    ap.add_argument("files", nargs="*")
    a = ap.parse_args()
    files = a.files or sorted(glob.glob("src/*/*.c") + glob.glob("src/*/*.h") + glob.glob("include/*/*.h"))
    rows = []
    for p in files:
        for name, first, last in functions(p):
            rows.append((last - first + 1, p, first, name))
    rows.sort(key=lambda r: (-r[0], r[1], r[2]))
    if a.over:
        rows = [r for r in rows if r[0] > a.over]
    if a.top:
        rows = rows[: a.top]
    for n, p, first, name in rows:
        print(f"{n:5d}  {p}:{first}  {name}")
    return 1 if a.over and rows else 0


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # | head
    sys.exit(main())
