"""Database insight: ORM query spans, SQL summaries, slow queries, N+1 detection, EXPLAIN."""
