"""One voting service for polls and the monthly agenda (DESIGN.md "Votes"): ballots, the
append-only log with receipts, the tally and the audit."""
