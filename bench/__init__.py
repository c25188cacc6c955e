"""Side-by-side benchmarks: lamina and the reference tools in one run (python -m bench)."""
