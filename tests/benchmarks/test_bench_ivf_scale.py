"""bench_ivf_scale: runs at a small size, and its crossover reads the rows as documented."""

from benchmarks.bench_ivf_scale import crossover, main


def test_it_runs_and_prints_the_crossover(capsys):
    assert main(["--sizes", "3000", "--queries", "100", "--k", "20", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| 3,000 | exact |" in out and "IVF nprobe 32" in out and "crossover:" in out


def test_the_crossover_is_the_smallest_size_fast_and_faithful_enough():
    def rows(size, exact, build, speedup, agreement):
        return [
            {"size": size, "method": "exact", "seconds": exact, "agreement": 1.0},
            {"size": size, "method": "IVF build (nlist 9)", "seconds": build},
            {
                "size": size,
                "method": "IVF nprobe 8",
                "seconds": exact / speedup,
                "speedup": speedup,
                "agreement": agreement,
            },
        ]

    measured = rows(10, 1.0, 5.0, 20.0, 0.98) + rows(100, 10.0, 9.0, 12.0, 0.995) + rows(1000, 100.0, 50.0, 40.0, 1.0)
    line = crossover(measured)
    assert line.startswith("crossover: at 100 items IVF nprobe 8 is 12.0x exact at 99.5%")
    assert "pays back after 1.0 such query batches" in line  # 9 s of build / (10 - 10/12) s saved per batch
    assert "no size" in crossover(rows(10, 1.0, 5.0, 5.0, 1.0))
