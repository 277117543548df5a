"""hostd's benchmarks (not tests): `sudo python3 -m bench`; see BENCHMARKS.md."""
