from ssl_coded.tables import markdown_table


def test_a_markdown_table_is_a_header_a_rule_and_a_line_per_row():
    text = markdown_table(["a", "b"], [["1", "2"], ["3", "-"]])
    assert text.splitlines() == ["| a | b |", "|---|---|", "| 1 | 2 |", "| 3 | - |"]
    assert markdown_table(["only"], []) == "| only |\n|---|"
