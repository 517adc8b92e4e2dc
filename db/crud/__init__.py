"""crud functions, one module per table group. Each takes a keyword-only `session` and calls `flush()`, never
`commit()`: the calling service owns the transaction (`with sessions.begin() as session:`)."""
