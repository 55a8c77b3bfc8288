"""README.md's result tables are the ones benchmarks/tables.py makes from the committed JSON."""

from conftest import ROOT, load_script


def load_tables():
    return load_script(ROOT / "benchmarks" / "tables.py")


def test_readme_tables_match_the_committed_results():
    assert load_tables().main(["--check"]) == 0


def test_check_catches_a_stale_table_and_a_rewrite_fixes_it(tmp_path):
    tables = load_tables()
    import re

    readme = (ROOT / "README.md").read_text()
    row = re.search(r"^\| vtok-fsq \| \d+\.\d\d \|", readme, re.M).group(0)  # the quality table's row
    stale = tmp_path / "README.md"
    stale.write_text(readme.replace(row, "| vtok-fsq | 99.99 |", 1))
    assert tables.stale_tables(stale.read_text(), ROOT / "benchmarks" / "results") == ["quality"]
    assert tables.main(["--check", "--readme", str(stale)]) == 1
    assert tables.main(["--readme", str(stale)]) == 0
    assert stale.read_text() == readme
