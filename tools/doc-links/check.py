#!/usr/bin/env python3
"""Checks the internal links of the repository's Markdown: README.md, the
book (docs/src/), and every other tracked *.md file.

For each relative link (inline, image, reference definition, or an HTML
href/src) it checks that the file exists and, for a #fragment, that the
target file has a heading (or an explicit id) with that anchor, computed
the way GitHub and mdBook do. Links inside the book must stay inside
docs/src, since mdBook publishes nothing else, and every page of the book
must be listed in docs/src/SUMMARY.md.

External links (a scheme such as https: or mailto:) are not checked: the
check runs offline.

    tools/doc-links/check.py            check the repository it lives in
    tools/doc-links/check.py FILE...    check these files only

Exit status 1, with one line per broken link, when anything is broken.
"""

import re
import subprocess
import sys
import unicodedata
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOOK = REPO / "docs" / "src"

FENCE = re.compile(r"^\s{0,3}(```+|~~~+)")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target): the target up to whitespace or ")".
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_LINK = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
HTML_ID = re.compile(r"""\b(?:id|name)\s*=\s*["']([^"']+)["']""")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text):
    """The lines outside fenced code blocks, with their numbers."""
    fence = None
    for number, line in enumerate(text.split("\n"), 1):
        match = FENCE.match(line)
        if match:
            marker = match.group(1)
            if fence is None:
                fence = marker[0] * 3
            elif marker.startswith(fence):
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading):
    """The anchor GitHub and mdBook give a heading: its text without markup,
    lower case, letters, digits, '-' and '_' kept, spaces as '-'."""
    text = INLINE_CODE.sub(lambda m: m.group(2), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links: their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.replace("*", "")
    out = []
    for ch in text.lower():
        if ch.isalnum() or ch in "-_":
            out.append(ch)
        elif ch == " ":
            out.append("-")
        elif unicodedata.category(ch).startswith("M"):
            out.append(ch)
    return "".join(out)


_anchors = {}


def anchors(path):
    if path not in _anchors:
        found, seen = set(), {}
        for _, line in prose_lines(path.read_text(encoding="utf-8")):
            match = HEADING.match(line)
            if match:
                base = slug(match.group(2))
                count = seen.get(base, 0)
                seen[base] = count + 1
                found.add(base if count == 0 else f"{base}-{count}")
            found.update(HTML_ID.findall(line))
        _anchors[path] = found
    return _anchors[path]


def links(path):
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        bare = INLINE_CODE.sub("", line)
        for regex in (INLINE_LINK, REFERENCE_DEF, HTML_LINK):
            for match in regex.finditer(bare):
                yield number, match.group(1)


def in_book(path):
    return BOOK in path.parents


def check_file(path):
    problems = []
    where = path.relative_to(REPO)
    for number, target in links(path):
        if not target or SCHEME.match(target):
            continue  # external: not checked offline
        file_part, _, fragment = target.partition("#")
        if file_part.startswith("/"):
            problems.append(f"{where}:{number}: {target}: an absolute path; use a relative link")
            continue
        resolved = (path.parent / file_part).resolve() if file_part else path
        if not resolved.exists():
            problems.append(f"{where}:{number}: {target}: no such file {resolved.relative_to(REPO) if REPO in resolved.parents else resolved}")
            continue
        if in_book(path) and not in_book(resolved):
            problems.append(
                f"{where}:{number}: {target}: leaves the book (docs/src), which mdBook does not publish; "
                "name the file in `code` instead"
            )
            continue
        if fragment:
            if resolved.is_dir() or resolved.suffix != ".md":
                problems.append(f"{where}:{number}: {target}: an anchor into a file that is not Markdown")
            elif fragment not in anchors(resolved):
                problems.append(f"{where}:{number}: {target}: no heading with anchor #{fragment} in {resolved.relative_to(REPO)}")
    return problems


def summary_problems():
    summary = BOOK / "SUMMARY.md"
    if not summary.exists():
        return [f"{summary.relative_to(REPO)}: missing"]
    listed = {(BOOK / target).resolve() for _, target in links(summary) if not SCHEME.match(target)}
    problems = []
    for page in sorted(BOOK.rglob("*.md")):
        if page != summary and page.resolve() not in listed:
            problems.append(f"{page.relative_to(REPO)}: a page of the book that docs/src/SUMMARY.md does not list")
    return problems


def tracked_markdown():
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "--cached", "--others", "--exclude-standard", "*.md"],
        check=True, capture_output=True, text=True,
    ).stdout
    return [REPO / name for name in out.split("\n") if name and (REPO / name).exists()]


def main(argv):
    files = [Path(name).resolve() for name in argv] if argv else tracked_markdown()
    problems = []
    for path in files:
        problems.extend(check_file(path))
    if not argv:
        problems.extend(summary_problems())
    for problem in problems:
        print(problem)
    count = sum(1 for path in files for _ in links(path))
    if problems:
        print(f"doc-links: {len(problems)} broken of {count} links in {len(files)} files", file=sys.stderr)
        return 1
    print(f"doc-links: {count} links in {len(files)} files, none broken (external links not checked)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
