from pathlib import Path

import pytest

from tests.docs import includes

main, refresh, stale = includes.main, includes.refresh, includes.stale

ROOT = Path(__file__).resolve().parents[2]


def test_a_block_is_replaced_by_its_file_and_the_rest_is_kept(tmp_path):
    (tmp_path / "tables").mkdir()
    (tmp_path / "tables" / "t.md").write_text("| a |\n|---|\n| 0.91 |\n")
    doc = tmp_path / "doc.md"
    doc.write_text("intro\n<!-- include tables/t.md -->\n| a |\n| 0.12 |\n<!-- end include -->\noutro\n")
    assert stale(doc) == ["tables/t.md"]
    assert main(["--check", str(doc)]) == 1
    assert main([str(doc)]) == 0
    assert (
        doc.read_text() == "intro\n<!-- include tables/t.md -->\n| a |\n|---|\n| 0.91 |\n<!-- end include -->\noutro\n"
    )
    assert stale(doc) == [] and main(["--check", str(doc)]) == 0


def test_a_missing_file_is_a_clear_error_and_the_document_is_untouched(tmp_path, capsys):
    doc = tmp_path / "doc.md"
    text = "<!-- include gone.md -->\nold\n<!-- end include -->\n"
    doc.write_text(text)
    assert main([str(doc)]) == 2
    assert "gone.md does not exist" in capsys.readouterr().err
    assert doc.read_text() == text


@pytest.mark.slow
def test_the_committed_documents_show_the_current_generated_tables():
    # RESULTS.md and the README quote study and attack outputs; a rerun must be followed by a refresh
    for document in (ROOT / "README.md", ROOT / "docs" / "RESULTS.md"):
        assert stale(document) == [], f"run `python docs/includes.py {document.relative_to(ROOT)}`"
        assert refresh(document) == document.read_text()


def test_included_headings_nest_below_the_enclosing_section(tmp_path):
    (tmp_path / "report.md").write_text("# Report\n\n## Table\n| a |\n")
    doc = tmp_path / "doc.md"
    block = "<!-- include report.md -->\n<!-- end include -->\n"
    doc.write_text(f"# Doc\n\n## Section\n{block}\n# Top\n{block}")
    assert main([str(doc)]) == 0
    text = doc.read_text()
    assert "## Section\n<!-- include report.md -->\n### Report\n\n#### Table\n| a |\n" in text
    assert "# Top\n<!-- include report.md -->\n## Report\n\n### Table\n" in text  # the included headings don't count
    assert main([str(doc)]) == 0 and doc.read_text() == text


def test_code_blocks_keep_their_comments_and_a_file_included_twice_is_checked_twice(tmp_path):
    (tmp_path / "report.md").write_text("# Report\n```bash\n# a comment, not a heading\n```\n###### Deepest\n")
    doc = tmp_path / "doc.md"
    block = "<!-- include report.md -->\n<!-- end include -->\n"
    doc.write_text(f"# Doc\n```bash\n#### not the outline\n```\n{block}{block}")
    assert main([str(doc)]) == 0
    text = doc.read_text()
    assert text.count("## Report\n```bash\n# a comment, not a heading\n```\n###### Deepest\n") == 2
    doc.write_text(text.replace("## Report", "## Stale", 1))  # only the first of the two blocks
    assert stale(doc) == ["report.md"] and main(["--check", str(doc)]) == 1
