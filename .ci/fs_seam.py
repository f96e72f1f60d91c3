#!/usr/bin/env python3
"""Finds file-system calls in the library outside src/fs/ (the seam).

Reads every src/**/*.rs except src/fs/ and src/bin/, drops the items under
#[cfg(test)] (tests may set up files directly), and prints every line that
names std::fs, rustix::fs or rustix::io, libc, a std File/OpenOptions
constructor or a method that is a system call on a file or a path. Type
names alone (File, FileType, Metadata, Stat) are fine: the seam hands them
out. Exit status 1 if anything is found. `--except DIR/` leaves a folder
of src/ out (one whose calls are being moved onto the seam).
"""
import pathlib, re, sys

CALLS = [
    r"std::fs::(?!File\b|FileType\b|Metadata\b|ReadDir\b)\w+",
    r"(?<!crate::)\bfs::(read|read_to_string|write|create_dir|create_dir_all|remove_file|remove_dir|remove_dir_all|rename|metadata|symlink_metadata|copy|hard_link|read_dir|read_link|canonicalize|set_permissions|exists)\(",
    r"rustix::(fs|io)::[a-z_]+\(",
    r"use rustix::(fs|io)::\{?[^}]*\b[a-z_]+\b(?<!\bFileType)(?<!\bStat)",
    r"\blibc::",
    r"\bFile::(open|create|options|create_new)\(",
    r"\bOpenOptions\b",
    r"\.(sync_all|sync_data|set_len|set_permissions|read_at|write_at|write_all_at|try_lock|try_lock_shared|lock_shared)\(",
    r"\.(canonicalize|symlink_metadata|read_link)\(\)",
    r"\bPath(Buf)?::new\([^)]*\)\.(exists|is_dir|is_file|metadata)\(\)",
    r"\.(exists|metadata)\(\)",
    r"\.seek\(",
    r"\bio::copy\(",
    r"FileExt\b",
    r"\btempfile::(Builder|tempdir|NamedTempFile|tempfile)\b",
]
PATTERN = re.compile("|".join(f"(?:{c})" for c in CALLS))


def without_tests(text):
    """The text with every item that follows #[cfg(test)] blanked out."""
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        j = text.find("{", m.end())
        semi = text.find(";", m.end())
        if semi != -1 and (j == -1 or semi < j):
            end = semi + 1
        else:
            depth, end = 0, j
            while end < len(text):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                end += 1
                if depth == 0:
                    break
        out.append("\n" * text.count("\n", m.start(), end))
        i = end
    out.append(text[i:])
    return "".join(out)


def main():
    args = sys.argv[1:]
    skip = ("fs/", "bin/")
    while "--except" in args:
        i = args.index("--except")
        skip += (args[i + 1],)
        del args[i : i + 2]
    src = pathlib.Path(args[0] if args else "src")
    found = 0
    for path in sorted(src.rglob("*.rs")):
        rel = path.relative_to(src).as_posix()
        if rel.startswith(skip):
            continue
        for n, line in enumerate(without_tests(path.read_text()).splitlines(), 1):
            code = line.split("//")[0]
            if PATTERN.search(code):
                print(f"src/{rel}:{n}: {line.strip()}")
                found += 1
    print(f"{found} file-system call(s) outside src/fs/", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
