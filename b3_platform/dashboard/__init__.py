"""The picture layer: an index dashboard built from the catalog's answers, Dagster-free.

queries.py (the SQL), data.py (answers shaped for the charts, gaps marked), specs.py (Vega-Lite
charts), page.py (the self-contained HTML page), picture.py (PNGs of an index's main charts),
site.py (builds the page and writes it under the lake).
"""
