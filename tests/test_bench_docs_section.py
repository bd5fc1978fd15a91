"""A benchmark rewrites only its own section of docs/performance.md."""

from __future__ import annotations

from benchmarks.docs_section import replace_section, write_section

DOC = "# Performance\n\n## A\n\na text\n\n## B\n\nb text\n"


def test_the_section_is_replaced_and_the_others_kept():
    assert replace_section(DOC, "## A", "## A\n\nnew\n") == "# Performance\n\n## A\n\nnew\n\n## B\n\nb text\n"
    assert replace_section(DOC, "## B", "## B\n\nnew\n") == "# Performance\n\n## A\n\na text\n\n## B\n\nnew\n"


def test_a_missing_section_goes_last_or_first():
    assert replace_section(DOC, "## C", "## C\n\nc\n").endswith("## B\n\nb text\n\n## C\n\nc\n")
    assert replace_section(DOC, "## C", "## C\n\nc\n", first=True) == (
        "# Performance\n\n## C\n\nc\n\n## A\n\na text\n\n## B\n\nb text\n"
    )


def test_write_section_creates_the_document(tmp_path):
    path = tmp_path / "performance.md"
    write_section(path, "## A", "## A\n\nx\n")
    write_section(path, "## A", "## A\n\ny\n")
    assert path.read_text(encoding="utf-8") == "# Performance\n\n## A\n\ny\n"
