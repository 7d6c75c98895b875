"""Insights for admins: daily rollups, the figures of a date range, SVG charts, CSV tables.

``counters`` keeps the FAQ's daily counters, ``rollup`` the per-day tables of closed days,
``queries`` reads the figures of a range (closed days from the rollups, today live),
``period`` validates the range asked for, ``svg`` draws the charts and ``export`` writes
the CSV files. The web layer (``helpdesk.web.insights``) only parses, calls and renders.
"""
