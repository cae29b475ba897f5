import sys

import pytest

from benchmarks import bench_embed


@pytest.mark.slow
def test_the_benchmark_embeds_each_size_and_writes_its_table(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bench"
    monkeypatch.setattr(sys, "argv", ["bench_embed", "--sizes", "300", "600", "--out-dir", str(out)])
    bench_embed.main()
    table = (out / "bench-embed.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| 300") or line.startswith("| 600")]
    assert len(rows) == 2 and table in capsys.readouterr().out
    megabytes = [float(row.split("|")[3]) for row in rows]  # embeddings.npy grows with the images
    assert megabytes[1] > megabytes[0] > 0
