"""Keep the numbers in Markdown documents equal to the files that commands generate.

A document marks a block with the generated file it shows, relative to the document:

    <!-- include studies/fashion-mnist/results.md -->
    | row | seeds | ... (the file's text, refreshed by this tool) |
    <!-- end include -->

Headings in the file are demoted below the heading the block sits under, so an included report keeps
its outline inside the document's. `python docs/includes.py docs/RESULTS.md README.md`
rewrites every block from its file (atomically); `--check` only reports stale blocks and exits 1.
The test suite checks the committed documents, so a table in the docs cannot drift from the study's
or the attack harness's output.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from ssl_coded.io import write_text


class IncludeError(ValueError):
    """A block whose file is missing; the message names the fix."""


BLOCK = re.compile(r"(<!-- include (?P<path>\S+) -->\n)(?P<body>.*?)(<!-- end include -->)", flags=re.S)
FENCE = re.compile(r"^```.*?^```[^\n]*$", flags=re.S | re.M)
HEADING = re.compile(r"^(#{1,6}) ", flags=re.M)


def refresh(document: Path) -> str:
    """The document's text with every include block replaced by its file's current text."""

    def body(match: re.Match[str]) -> str:
        source = document.parent / match["path"]
        if not source.is_file():
            raise IncludeError(f"{document}: included file {source} does not exist; run the command that makes it")
        outline = BLOCK.sub(lambda block: block[1] + block[4], match.string[: match.start()])  # own headings only
        headings = HEADING.findall(FENCE.sub("", outline))
        text = demote(source.read_text(), len(headings[-1]) if headings else 0)
        return match[1] + text + ("" if text.endswith("\n") else "\n") + match[4]

    return BLOCK.sub(body, document.read_text())


def demote(text: str, depth: int) -> str:
    """Headings `depth` levels deeper (at most 6, Markdown's deepest), code blocks untouched."""

    def deeper(heading: re.Match[str]) -> str:
        return "#" * min(6, len(heading[1]) + depth) + " "

    pieces, last = [], 0
    for fence in FENCE.finditer(text):
        pieces += [HEADING.sub(deeper, text[last : fence.start()]), fence[0]]
        last = fence.end()
    return "".join(pieces) + HEADING.sub(deeper, text[last:])


def stale(document: Path) -> list[str]:
    """The included paths whose block differs from the file (in document order; a path may repeat)."""
    current = [(m["path"], m["body"]) for m in BLOCK.finditer(document.read_text())]
    fresh = [m["body"] for m in BLOCK.finditer(refresh(document))]
    return [path for (path, body), new in zip(current, fresh, strict=True) if body != new]


def main(argv: list[str]) -> int:
    check = "--check" in argv
    documents = [Path(a) for a in argv if a != "--check"]
    try:
        if check:
            outdated = {str(d): paths for d in documents if (paths := stale(d))}
            for document, paths in outdated.items():
                print(f"{document}: stale blocks {paths}; run `python -m docs.includes {document}`")
            return 1 if outdated else 0
        for document in documents:
            write_text(document, refresh(document))
    except IncludeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
