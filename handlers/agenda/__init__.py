"""议事厅 in chat: `/agenda` (propose, support, vote, results, history), staff moderation and
follow-up, the notices of the cycle and its tick (services/agenda/)."""
