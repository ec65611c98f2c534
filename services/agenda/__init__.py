"""议事厅: the monthly agenda cycle (DESIGN.md): proposals, moderation and support, the vote
(a poll of services/voting), the publication, and the council's decisions and follow-up."""
