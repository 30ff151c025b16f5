"""Fixed-width text tables for the playbooks' reports (verify, site summary, cipher benchmark)."""


def text_table(rows, rule=True):
    """Render rows (the first is the header) as lines whose columns are as wide as their widest cell.

    rule: a dashed line under the header. Trailing blanks are cut, so a long last column (free text)
    never widens the others' lines.
    """
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in cells]
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return lines
