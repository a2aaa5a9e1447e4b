"""Benchmarks of ingest and queries against ceilings measured in the same run.

`datahub bench ingest` (bench/ingest.py) measures the broker's and the database's ceilings
(bench/ceilings.py), a naive integration and the real ingest, run as processes;
`datahub bench query` (bench/query.py) loads a data set (bench/dataset.py) and times the
real API over HTTP; bench/plot.py draws both. See docs/performance.md.
"""
