"""coder's benchmarks (DESIGN §8): `make bench`; figures are ratios to baselines run alongside."""
